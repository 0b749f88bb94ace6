/*
 * fuzz_pb.c - libFuzzer target for the protobuf codec: arbitrary bytes go
 * through pg_codec_pb_parse as one Record message.
 *
 * What must hold for any input: no crash, no leak, no read past the
 * message, a NUL-terminated reason for every reject; the reference decoder
 * (pg_codec_pb_parse_reference, numbers from protobuf-c) gives the same
 * reject, field, reason and record bytes, with an arena of PG_PB_ARENA_MIN
 * bytes that never overflows and is given back; a record
 * that is accepted obeys the record rules, encodes again to a message that
 * decodes to the same bytes, and decodes to the same bytes from its JSON
 * form too; a rejected message gives a dead-letter envelope that fits
 * PG_PB_OUT_MAX, that protobuf-c reads back, and whose payload has every
 * card-number-like digit run masked.
 *
 * Run: scripts/fuzz.sh (seed corpus in tests/fuzz/corpus_pb/). The seeds
 * are written by this file built with -DPG_FUZZ_PB_SEEDS (a main() that
 * takes the corpus directory), see the end of the file.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <posguard.pb-c.h>

#include "codec_json.h"
#include "codec_pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_digit(unsigned char c)
{
        return c >= '0' && c <= '9';
}

static bool luhn(const uint8_t *s, size_t n)
{
        unsigned sum = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned d = (unsigned)(s[n - 1 - i] - '0');
                if (i & 1) {
                        d *= 2;
                        if (d > 9)
                                d -= 9;
                }
                sum += d;
        }
        return sum % 10 == 0;
}

/* Every maximal digit run of raw that looks like a card number has its
 * middle digits masked in out (the first keep bytes of raw). */
static void check_masked(const uint8_t *raw, size_t n, const uint8_t *out,
                         size_t keep)
{
        size_t i = 0;
        while (i < n) {
                if (!is_digit(raw[i])) {
                        i++;
                        continue;
                }
                size_t e = i;
                while (e < n && is_digit(raw[e]))
                        e++;
                size_t run = e - i;
                if (run >= 13 && run <= 19 && luhn(raw + i, run))
                        for (size_t k = i + 6; k < e - 4 && k < keep; k++)
                                if (out[k] != '*')
                                        abort();
                i = e;
        }
}

static size_t json_str(char *o, const pg_str_t *s)
{
        size_t n = 0;
        o[n++] = '"';
        for (size_t i = 0; i < s->len; i++) {
                unsigned char c = (unsigned char)s->s[i];
                if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
                        n += (size_t)sprintf(o + n, "\\u%04x", c);
                else
                        o[n++] = (char)c;
        }
        o[n++] = '"';
        return n;
}

/* The record as a JSON line (what a JSON producer would send). */
static size_t to_json(char *o, const pg_record_t *r)
{
        size_t n = 0;
        const pg_field_t order[] = {
            PG_F_TXN_ID,      PG_F_KIND,           PG_F_STATUS,
            PG_F_MERCHANT_ID, PG_F_TERMINAL_ID,    PG_F_STAN,
            PG_F_RRN,         PG_F_CARD_TOKEN,     PG_F_PAN_MASKED,
            PG_F_AMOUNT,      PG_F_CURRENCY,       PG_F_EXPECTED_AMOUNT,
            PG_F_ORDER_ID,    PG_F_ORIGINAL_RRN,   PG_F_EVENT_TIME,
            PG_F_ENTRY_MODE,  PG_F_RETRANSMISSION,
        };
        o[n++] = '{';
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
                pg_field_t f = order[i];
                bool present = true;
                const pg_str_t *s = NULL;
                int64_t v = 0;
                const char *e = NULL;
                switch (f) {
                case PG_F_KIND:
                        e = pg_kind_name(r->kind);
                        break;
                case PG_F_STATUS:
                        e = pg_status_name(r->status);
                        break;
                case PG_F_ENTRY_MODE:
                        e = pg_entry_mode_name(r->entry_mode);
                        present = r->entry_mode != PG_ENTRY_NONE;
                        break;
                case PG_F_RETRANSMISSION:
                        present = r->retransmission;
                        break;
                default:
                        if (pg_record_field_type(f) == PG_FT_STRING) {
                                s = pg_record_str(r, f);
                                present = s->len > 0;
                        } else {
                                v = pg_record_int(r, f, &present);
                        }
                }
                if (!present)
                        continue;
                n += (size_t)sprintf(o + n, "%s\"%s\":", n > 1 ? "," : "",
                                     pg_record_field_name(f));
                if (s)
                        n += json_str(o + n, s);
                else if (e)
                        n += (size_t)sprintf(o + n, "\"%s\"", e);
                else if (f == PG_F_RETRANSMISSION)
                        n += (size_t)sprintf(o + n, "true");
                else
                        n += (size_t)sprintf(o + n, "%lld", (long long)v);
        }
        o[n++] = '}';
        o[n] = '\0';
        return n;
}

static void accepted(const pg_record_t *rec)
{
        if (rec->amount <= 0 || rec->kind >= PG_KIND__COUNT ||
            rec->status >= PG_STATUS__COUNT ||
            rec->entry_mode >= PG_ENTRY__COUNT || rec->event_time < 0 ||
            rec->event_time > PG_TIME_MAX_MS || rec->txn_id.len == 0 ||
            rec->txn_id.len > PG_STR_MAX ||
            rec->txn_id.s[rec->txn_id.len] != '\0' ||
            (rec->kind != PG_KIND_PURCHASE && rec->original_rrn.len == 0))
                abort();
        /* encode again: the same record */
        uint8_t b[2048];
        int n = pg_codec_pb_record(b, sizeof(b), rec);
        if (n <= 0)
                abort();
        pg_record_t again;
        again.seq = rec->seq;
        const char *field;
        char why[256];
        if (pg_codec_pb_parse(b, (size_t)n, &again, &field, why, sizeof(why)) !=
                PG_REJ_NONE ||
            memcmp(&again, rec, sizeof(again)))
                abort();
        /* the JSON form: the same record */
        static char line[8192];
        size_t ln = to_json(line, rec);
        pg_record_t fromjson;
        fromjson.seq = rec->seq;
        if (pg_codec_json_parse(line, ln, &fromjson, &field, why,
                                sizeof(why)) != PG_REJ_NONE ||
            memcmp(&fromjson, rec, sizeof(fromjson)))
                abort();
        /* an alert about it encodes and reads back */
        pg_alert_t a;
        memset(&a, 0, sizeof(a));
        snprintf(a.alert_id, sizeof(a.alert_id), "al-x");
        a.rule_id = "r";
        a.merchant_id = rec->merchant_id.s;
        a.terminal_id = rec->terminal_id.s;
        a.txn_ids[0] = rec->txn_id.s;
        a.n_txn_ids = 1;
        a.currency = rec->currency.s;
        a.pan_masked = rec->pan_masked.s;
        a.amount = rec->amount;
        snprintf(a.reason, sizeof(a.reason), "order %s", rec->order_id.s);
        uint8_t ob[PG_PB_OUT_MAX];
        n = pg_codec_pb_alert(ob, sizeof(ob), &a);
        if (n <= 0)
                abort();
        Posguard__V1__Alert *m =
            posguard__v1__alert__unpack(NULL, (size_t)n, ob);
        if (!m || strcmp(m->txn_ids[0], rec->txn_id.s) ||
            m->amount != rec->amount)
                abort();
        posguard__v1__alert__free_unpacked(m, NULL);
}

static void rejected(pg_reject_t r, const char *field, const char *why,
                     const uint8_t *raw, size_t len)
{
        if (!memchr(why, '\0', 256) || !why[0])
                abort();
        pg_source_pos_t pos = {"pos.records", 1, 42, len % 2 ? -1 : 7};
        uint8_t ob[PG_PB_OUT_MAX];
        int n =
            pg_codec_pb_reject(ob, sizeof(ob), r, field, why, &pos, raw, len);
        if (n <= 0 || n > PG_PB_OUT_MAX)
                abort();
        Posguard__V1__DeadLetter *m =
            posguard__v1__dead_letter__unpack(NULL, (size_t)n, ob);
        if (!m || strcmp(m->reason, pg_reject_name(r)) ||
            m->payload_size != len ||
            m->payload.len != (len < PG_JSON_RAW_MAX ? len : PG_JSON_RAW_MAX))
                abort();
        check_masked(raw, len, m->payload.data, m->payload.len);
        posguard__v1__dead_letter__free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static unsigned char arena_buf[PG_PB_ARENA_MIN];
        pg_pb_arena_t arena;
        pg_pb_arena_init(&arena, arena_buf, sizeof(arena_buf));
        /* an exact-size copy, so ASan sees any read past the message */
        uint8_t *msg = malloc(size ? size : 1);
        if (size)
                memcpy(msg, data, size);
        pg_record_t rec, ref;
        memset(&rec, 0, sizeof(rec));
        memset(&ref, 0, sizeof(ref));
        const char *field, *ref_field;
        char why[256], ref_why[256];
        pg_reject_t r =
            pg_codec_pb_parse(msg, size, &rec, &field, why, sizeof(why));
        pg_reject_t rr = pg_codec_pb_parse_reference(
            &arena, msg, size, &ref, &ref_field, ref_why, sizeof(ref_why));
        if (arena.used != 0 || arena.overflow != 0)
                abort();
        if (r != rr || (field == NULL) != (ref_field == NULL) ||
            (field && strcmp(field, ref_field)) || strcmp(why, ref_why) ||
            (r == PG_REJ_NONE && memcmp(&rec, &ref, sizeof(rec))))
                abort();
        if (r == PG_REJ_NONE)
                accepted(&rec);
        else if (r < PG_REJ__COUNT)
                rejected(r, field, why, msg, size);
        else
                abort();
        free(msg);
        return 0;
}

#ifdef PG_FUZZ_PB_SEEDS
/*
 * Seed writer, from the repository root after a CMake build in build/:
 *
 *   cc -std=c11 -D_POSIX_C_SOURCE=200809L -DPG_FUZZ_PB_SEEDS -Iengine \
 *      -Ibuild/schemas/gen tests/fuzz/fuzz_pb.c engine/codec_pb.c \
 *      engine/codec_json.c engine/codec_common.c engine/record.c \
 *      engine/util_text.c build/schemas/gen/posguard.pb-c.c \
 *      -lprotobuf-c -o /tmp/pbseeds && /tmp/pbseeds tests/fuzz/corpus_pb
 */
static void put(const char *dir, const char *name, const void *b, size_t n)
{
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(b, 1, n, f) != n || fclose(f))
                abort();
}

static void str(pg_str_t *d, const char *s)
{
        memset(d, 0, sizeof(*d));
        d->len = (uint8_t)strlen(s);
        memcpy(d->s, s, d->len);
}

int main(int argc, char **argv)
{
        if (argc != 2)
                return 2;
        const char *dir = argv[1];
        pg_record_t r;
        uint8_t b[4096];
        int n;

        memset(&r, 0, sizeof(r));
        str(&r.txn_id, "T48fa86bec9b72c91");
        str(&r.merchant_id, "MID000123");
        str(&r.terminal_id, "TID0042");
        str(&r.stan, "004711");
        str(&r.rrn, "512345678901");
        str(&r.card_token, "tok_9f8e7d6c5b4a");
        str(&r.currency, "CNY");
        r.amount = 12345;
        r.event_time = 1763805600123LL;
        n = pg_codec_pb_record(b, sizeof(b), &r);
        put(dir, "purchase_min", b, (size_t)n);

        str(&r.pan_masked, "622848******1234");
        r.has_expected = true;
        r.expected_amount = 1234;
        str(&r.order_id, "ORD-9");
        r.entry_mode = PG_ENTRY_CONTACTLESS;
        r.retransmission = true;
        n = pg_codec_pb_record(b, sizeof(b), &r);
        put(dir, "purchase_full", b, (size_t)n);

        r.kind = PG_KIND_REFUND;
        str(&r.original_rrn, "512345678900");
        n = pg_codec_pb_record(b, sizeof(b), &r);
        put(dir, "refund_full", b, (size_t)n);
        /* the same with unknown fields after it */
        static const uint8_t unk[] = {0x98, 0x06, 0x81, 0x01, 0x9a,
                                      0x06, 0x02, 'h',  'i',  0xa5,
                                      0x06, 1,    2,    3,    4};
        memcpy(b + n, unk, sizeof(unk));
        put(dir, "refund_unknown_fields", b, (size_t)n + sizeof(unk));
        /* a duplicate txn_id */
        static const uint8_t dup[] = {0x0a, 0x02, 'T', '2'};
        memcpy(b + n, dup, sizeof(dup));
        put(dir, "duplicate_txn_id", b, (size_t)n + sizeof(dup));
        /* cut in the middle */
        put(dir, "truncated", b, (size_t)n / 2);

        r.kind = PG_KIND_PURCHASE;
        memset(&r.original_rrn, 0, sizeof(r.original_rrn));
        str(&r.card_token, "4111111111111111");
        n = pg_codec_pb_record(b, sizeof(b), &r);
        put(dir, "clear_pan_token", b, (size_t)n);

        str(&r.card_token, "tok");
        str(&r.merchant_id, "M\x01\x7f");
        str(&r.currency, "eur");
        n = pg_codec_pb_record(b, sizeof(b), &r);
        put(dir, "bad_chars", b, (size_t)n);

        /* expected_amount sent as a string */
        str(&r.merchant_id, "M");
        str(&r.currency, "EUR");
        r.has_expected = false;
        r.expected_amount = 0;
        n = pg_codec_pb_record(b, sizeof(b), &r);
        static const uint8_t amt[] = {0x62, 0x03, '1', '0', '0'};
        memcpy(b + n, amt, sizeof(amt));
        put(dir, "expected_amount_wrong_type", b, (size_t)n + sizeof(amt));
        return 0;
}
#endif
