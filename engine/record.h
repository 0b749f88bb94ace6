/*
 * record.h - the POS authorisation record as the engine holds it.
 *
 * A record is a flat struct with fixed-size fields: parsing never allocates,
 * and a record can be copied into the reorder buffer with one memcpy. Every
 * string field is at most PG_STR_MAX bytes (DOMAIN.md rejects longer ones)
 * and always NUL-terminated.
 */
#ifndef PG_RECORD_H
#define PG_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG_STR_MAX 64

/* A 128-bit key: the hash of one or more fields (util_hash.h). */
typedef struct pg_key {
        uint64_t lo, hi;
} pg_key_t;

/* A bounded string: len bytes in s, s[len] == '\0'. len == 0 means absent. */
typedef struct pg_str {
        uint8_t len;
        char s[PG_STR_MAX + 1];
} pg_str_t;

typedef enum pg_kind {
        PG_KIND_PURCHASE = 0,
        PG_KIND_REFUND,
        PG_KIND_REVERSAL,
        PG_KIND_VOID,
        PG_KIND__COUNT
} pg_kind_t;

typedef enum pg_status {
        PG_STATUS_APPROVED = 0,
        PG_STATUS_DECLINED,
        PG_STATUS_ERROR,
        PG_STATUS__COUNT
} pg_status_t;

typedef enum pg_entry_mode {
        PG_ENTRY_NONE = 0, /* field absent */
        PG_ENTRY_CHIP,
        PG_ENTRY_SWIPE,
        PG_ENTRY_CONTACTLESS,
        PG_ENTRY_KEYED,
        PG_ENTRY_ECOM,
        PG_ENTRY__COUNT
} pg_entry_mode_t;

typedef struct pg_record {
        pg_str_t txn_id;
        pg_str_t merchant_id;
        pg_str_t terminal_id;
        pg_str_t stan;
        pg_str_t rrn;
        pg_str_t card_token;
        pg_str_t pan_masked;     /* optional, masked form only */
        pg_str_t currency;       /* three upper-case letters */
        pg_str_t order_id;       /* optional */
        pg_str_t original_rrn;   /* required for refund/reversal/void */
        int64_t amount;          /* > 0, minor units */
        int64_t expected_amount; /* valid when has_expected */
        int64_t event_time;      /* ms since the Unix epoch, UTC */
        uint64_t seq;            /* arrival order, set by the engine */
        uint8_t kind;            /* pg_kind_t */
        uint8_t status;          /* pg_status_t */
        uint8_t entry_mode;      /* pg_entry_mode_t */
        bool has_expected;
        bool retransmission; /* false when absent */
        /* Engine-private: the keys of this record's fields, hashed once
         * when the engine takes the record (pg_engine_push), for every
         * index that needs them. Never read from input; undefined for a
         * field the record's kind does not use. retry and swipe are the
         * pairing keys of retry_duplicate and repeated_swipe (approved
         * purchases, when the rule set has such a rule). */
        struct pg_record_keys {
                pg_key_t txn, rrn, orig, card, stan, order, terminal, merchant;
                pg_key_t retry, swipe;
        } k;
        /* Engine-private too: where a charge's txn_id was kept with its
         * fact (a position in the engine's string log, 0 when it was not:
         * an rrn already charged, or the memory cap), for the pairing
         * chains to refer to instead of keeping it again. */
        uint64_t txn_str;
} pg_record_t;

/* Record fields by number: used by filter expressions and aggregate
 * group_by, so that rules resolve names once at compile time. */
typedef enum pg_field {
        PG_F_TXN_ID = 0,
        PG_F_KIND,
        PG_F_STATUS,
        PG_F_MERCHANT_ID,
        PG_F_TERMINAL_ID,
        PG_F_STAN,
        PG_F_RRN,
        PG_F_CARD_TOKEN,
        PG_F_PAN_MASKED,
        PG_F_AMOUNT,
        PG_F_CURRENCY,
        PG_F_EXPECTED_AMOUNT,
        PG_F_ORDER_ID,
        PG_F_ORIGINAL_RRN,
        PG_F_EVENT_TIME,
        PG_F_ENTRY_MODE,
        PG_F_RETRANSMISSION,
        PG_F__COUNT
} pg_field_t;

typedef enum pg_field_type {
        PG_FT_STRING = 0, /* pg_str_t */
        PG_FT_INT,        /* int64_t */
        PG_FT_ENUM,       /* uint8_t, names from pg_record_enum_name() */
        PG_FT_BOOL
} pg_field_type_t;

/* Field name ("merchant_id") -> field number; -1 when unknown. */
int pg_record_field_lookup(const char *name, size_t len);
const char *pg_record_field_name(pg_field_t f);
pg_field_type_t pg_record_field_type(pg_field_t f);

/* Enum names: kind, status and entry_mode values as the JSON spells them.
 * Returns NULL for an out-of-range value. */
const char *pg_kind_name(int v);
const char *pg_status_name(int v);
const char *pg_entry_mode_name(int v);
/* Name -> value for an enum field (PG_F_KIND, PG_F_STATUS, PG_F_ENTRY_MODE);
 * -1 when the name is not a value of that enum. */
int pg_record_enum_lookup(pg_field_t f, const char *name, size_t len);

/* Accessors used by expressions and group_by. The string is borrowed from
 * rec and valid as long as rec; an absent optional string has len 0. For
 * absent expected_amount, *present is set to false. */
const pg_str_t *pg_record_str(const pg_record_t *rec, pg_field_t f);
int64_t pg_record_int(const pg_record_t *rec, pg_field_t f, bool *present);

/* A charge is an approved purchase (DOMAIN.md, Definitions). */
static inline bool pg_record_is_charge(const pg_record_t *r)
{
        return r->kind == PG_KIND_PURCHASE && r->status == PG_STATUS_APPROVED;
}

#endif
