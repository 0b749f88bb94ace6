/*
 * record.c - the record's field table: names, types, enum spellings and
 * by-number accessors (see record.h).
 *
 * Rules name record fields as strings ("merchant_id", "entry_mode == chip");
 * they resolve each name once, at compile time, to a pg_field_t, and at run
 * time read values through pg_record_str / pg_record_int. The JSON codec
 * uses the same lookups for the keys of every input line, so the lookups are
 * written for the hot path: a switch on the length and one memcmp, no
 * hashing and no loop over the table.
 *
 * Everything here is constant data or a pure function: safe from any thread.
 */
#include "record.h"

#include <string.h>

typedef struct field_def {
        const char *name;
        pg_field_type_t type;
} field_def_t;

/* Indexed by pg_field_t; the order is also the order in which the JSON codec
 * checks the fields of a record (codec_json.c). */
static const field_def_t fields[PG_F__COUNT] = {
    [PG_F_TXN_ID] = {"txn_id", PG_FT_STRING},
    [PG_F_KIND] = {"kind", PG_FT_ENUM},
    [PG_F_STATUS] = {"status", PG_FT_ENUM},
    [PG_F_MERCHANT_ID] = {"merchant_id", PG_FT_STRING},
    [PG_F_TERMINAL_ID] = {"terminal_id", PG_FT_STRING},
    [PG_F_STAN] = {"stan", PG_FT_STRING},
    [PG_F_RRN] = {"rrn", PG_FT_STRING},
    [PG_F_CARD_TOKEN] = {"card_token", PG_FT_STRING},
    [PG_F_PAN_MASKED] = {"pan_masked", PG_FT_STRING},
    [PG_F_AMOUNT] = {"amount", PG_FT_INT},
    [PG_F_CURRENCY] = {"currency", PG_FT_STRING},
    [PG_F_EXPECTED_AMOUNT] = {"expected_amount", PG_FT_INT},
    [PG_F_ORDER_ID] = {"order_id", PG_FT_STRING},
    [PG_F_ORIGINAL_RRN] = {"original_rrn", PG_FT_STRING},
    [PG_F_EVENT_TIME] = {"event_time", PG_FT_INT},
    [PG_F_ENTRY_MODE] = {"entry_mode", PG_FT_ENUM},
    [PG_F_RETRANSMISSION] = {"retransmission", PG_FT_BOOL},
};

static const char *const kind_names[PG_KIND__COUNT] = {
    [PG_KIND_PURCHASE] = "purchase",
    [PG_KIND_REFUND] = "refund",
    [PG_KIND_REVERSAL] = "reversal",
    [PG_KIND_VOID] = "void",
};

static const char *const status_names[PG_STATUS__COUNT] = {
    [PG_STATUS_APPROVED] = "approved",
    [PG_STATUS_DECLINED] = "declined",
    [PG_STATUS_ERROR] = "error",
};

/* "none" is how an absent entry_mode is stored and printed; it is not a
 * value a record or a rule may spell, so pg_record_enum_lookup skips it. */
static const char *const entry_names[PG_ENTRY__COUNT] = {
    [PG_ENTRY_NONE] = "none",   [PG_ENTRY_CHIP] = "chip",
    [PG_ENTRY_SWIPE] = "swipe", [PG_ENTRY_CONTACTLESS] = "contactless",
    [PG_ENTRY_KEYED] = "keyed", [PG_ENTRY_ECOM] = "ecom",
};

static inline int is(const char *name, size_t len, const char *lit,
                     size_t litlen)
{
        return len == litlen && memcmp(name, lit, litlen) == 0;
}

#define IS(lit) is(name, len, lit, sizeof(lit) - 1)

int pg_record_field_lookup(const char *name, size_t len)
{
        if (!name)
                return -1;
        /* Field names have distinct (length, first byte) pairs except for
         * a few collisions the memcmp settles. */
        switch (len) {
        case 3:
                return IS("rrn") ? PG_F_RRN : -1;
        case 4:
                if (IS("kind"))
                        return PG_F_KIND;
                return IS("stan") ? PG_F_STAN : -1;
        case 6:
                if (IS("txn_id"))
                        return PG_F_TXN_ID;
                if (IS("status"))
                        return PG_F_STATUS;
                return IS("amount") ? PG_F_AMOUNT : -1;
        case 8:
                if (IS("currency"))
                        return PG_F_CURRENCY;
                return IS("order_id") ? PG_F_ORDER_ID : -1;
        case 10:
                if (IS("card_token"))
                        return PG_F_CARD_TOKEN;
                if (IS("pan_masked"))
                        return PG_F_PAN_MASKED;
                if (IS("event_time"))
                        return PG_F_EVENT_TIME;
                return IS("entry_mode") ? PG_F_ENTRY_MODE : -1;
        case 11:
                if (IS("merchant_id"))
                        return PG_F_MERCHANT_ID;
                return IS("terminal_id") ? PG_F_TERMINAL_ID : -1;
        case 12:
                return IS("original_rrn") ? PG_F_ORIGINAL_RRN : -1;
        case 14:
                return IS("retransmission") ? PG_F_RETRANSMISSION : -1;
        case 15:
                return IS("expected_amount") ? PG_F_EXPECTED_AMOUNT : -1;
        default:
                return -1;
        }
}

const char *pg_record_field_name(pg_field_t f)
{
        if ((unsigned)f >= PG_F__COUNT)
                return NULL;
        return fields[f].name;
}

pg_field_type_t pg_record_field_type(pg_field_t f)
{
        /* An out-of-range field reads as a string field: pg_record_str then
         * gives the empty string, the safest answer for a caller's bug. */
        if ((unsigned)f >= PG_F__COUNT)
                return PG_FT_STRING;
        return fields[f].type;
}

const char *pg_kind_name(int v)
{
        return v >= 0 && v < PG_KIND__COUNT ? kind_names[v] : NULL;
}

const char *pg_status_name(int v)
{
        return v >= 0 && v < PG_STATUS__COUNT ? status_names[v] : NULL;
}

const char *pg_entry_mode_name(int v)
{
        return v >= 0 && v < PG_ENTRY__COUNT ? entry_names[v] : NULL;
}

/* Linear search is right here: at most five names, each rejected by its
 * length or first byte almost always. */
static int lookup_in(const char *const *names, int first, int count,
                     const char *name, size_t len)
{
        for (int v = first; v < count; v++) {
                const char *n = names[v];
                if (n[0] == name[0] && strlen(n) == len &&
                    memcmp(n, name, len) == 0)
                        return v;
        }
        return -1;
}

int pg_record_enum_lookup(pg_field_t f, const char *name, size_t len)
{
        if (!name || len == 0)
                return -1;
        switch (f) {
        case PG_F_KIND:
                return lookup_in(kind_names, 0, PG_KIND__COUNT, name, len);
        case PG_F_STATUS:
                return lookup_in(status_names, 0, PG_STATUS__COUNT, name, len);
        case PG_F_ENTRY_MODE:
                return lookup_in(entry_names, PG_ENTRY_CHIP, PG_ENTRY__COUNT,
                                 name, len);
        default:
                return -1;
        }
}

const pg_str_t *pg_record_str(const pg_record_t *rec, pg_field_t f)
{
        /* Non-string fields and out-of-range numbers read as absent. */
        static const pg_str_t empty = {0, {0}};
        switch (f) {
        case PG_F_TXN_ID:
                return &rec->txn_id;
        case PG_F_MERCHANT_ID:
                return &rec->merchant_id;
        case PG_F_TERMINAL_ID:
                return &rec->terminal_id;
        case PG_F_STAN:
                return &rec->stan;
        case PG_F_RRN:
                return &rec->rrn;
        case PG_F_CARD_TOKEN:
                return &rec->card_token;
        case PG_F_PAN_MASKED:
                return &rec->pan_masked;
        case PG_F_CURRENCY:
                return &rec->currency;
        case PG_F_ORDER_ID:
                return &rec->order_id;
        case PG_F_ORIGINAL_RRN:
                return &rec->original_rrn;
        default:
                return &empty;
        }
}

/*
 * Integer view of the int, enum and bool fields. *present is always written
 * (callers may leave it uninitialised): false for an absent expected_amount
 * or entry_mode and for fields that have no integer view (strings).
 * retransmission is always present: the record cannot tell an absent flag
 * from false (record.h).
 */
int64_t pg_record_int(const pg_record_t *rec, pg_field_t f, bool *present)
{
        bool p = true;
        int64_t v;
        switch (f) {
        case PG_F_AMOUNT:
                v = rec->amount;
                break;
        case PG_F_EXPECTED_AMOUNT:
                p = rec->has_expected;
                v = p ? rec->expected_amount : 0;
                break;
        case PG_F_EVENT_TIME:
                v = rec->event_time;
                break;
        case PG_F_KIND:
                v = rec->kind;
                break;
        case PG_F_STATUS:
                v = rec->status;
                break;
        case PG_F_ENTRY_MODE:
                v = rec->entry_mode;
                p = rec->entry_mode != PG_ENTRY_NONE;
                break;
        case PG_F_RETRANSMISSION:
                v = rec->retransmission;
                break;
        default:
                p = false;
                v = 0;
                break;
        }
        if (present)
                *present = p;
        return v;
}
