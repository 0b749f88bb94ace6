/*
 * test_codec_pb.c - the protobuf codec (codec_pb.c, schemas/posguard.proto).
 *
 * Records round-trip record -> protobuf -> record; every reject reason is
 * produced through protobuf with the field it must name, and the reject
 * order at the top of codec_pb.c is checked where two problems meet; the
 * JSON and protobuf decoders are fed the same records (valid or not) and
 * must agree on the reason, the field and, for valid ones, every byte of
 * the pg_record_t; truncated and garbage bytes are malformed, never a
 * crash; the arena's bound and its overflow counter; outputs are read back
 * with protobuf-c's generated unpack, independently of the encoders.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <posguard.pb-c.h>

#include "codec_json.h"
#include "codec_pb.h"

/* ------------------------------------------------------------------ */
/* Building messages: a valid purchase with fields changed             */

static Posguard__V1__Record M;

static const ProtobufCFieldDescriptor *fdesc(int f)
{
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field(
                &posguard__v1__record__descriptor, (unsigned)f + 1);
        assert_non_null(fd);
        return fd;
}

/* Field f (pg_field_t) of M as a string; NULL: absent. */
static void set_str(int f, const char *v)
{
        const ProtobufCFieldDescriptor *fd = fdesc(f);
        assert_int_equal(fd->type, PROTOBUF_C_TYPE_STRING);
        if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                *(uint32_t *)((char *)&M + fd->quantifier_offset) =
                    v ? fd->id : 0;
        *(char **)((char *)&M + fd->offset) =
            (char *)(v ? v : protobuf_c_empty_string);
}

/* Field f of M as a number (int64, enum or bool); present false: absent
 * (for a field without presence: the zero value). */
static void set_num(int f, int64_t v, bool present)
{
        const ProtobufCFieldDescriptor *fd = fdesc(f);
        if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
                *(uint32_t *)((char *)&M + fd->quantifier_offset) =
                    present ? fd->id : 0;
        char *p = (char *)&M + fd->offset;
        if (!present)
                v = 0;
        if (fd->type == PROTOBUF_C_TYPE_INT64) {
                *(int64_t *)p = v;
        } else {
                int i = (int)v;
                memcpy(p, &i, sizeof(i));
        }
}

static void base_init(void)
{
        posguard__v1__record__init(&M);
        set_str(PG_F_TXN_ID, "T1");
        set_num(PG_F_KIND, POSGUARD__V1__KIND__KIND_PURCHASE, true);
        set_num(PG_F_STATUS, POSGUARD__V1__STATUS__STATUS_APPROVED, true);
        set_str(PG_F_MERCHANT_ID, "M1");
        set_str(PG_F_TERMINAL_ID, "TID1");
        set_str(PG_F_STAN, "000123");
        set_str(PG_F_RRN, "R1");
        set_str(PG_F_CARD_TOKEN, "tok_abc");
        set_num(PG_F_AMOUNT, 1000, true);
        set_str(PG_F_CURRENCY, "EUR");
        set_num(PG_F_EVENT_TIME, 1763805600123LL, true);
}

static uint8_t msg[PG_JSON_MAX_LINE + 1024];
static size_t msg_len;

/* M packed, followed by extra raw bytes (more fields). */
static void pack_m(const void *extra, size_t extra_len)
{
        size_t n = posguard__v1__record__get_packed_size(&M);
        assert_true(n + extra_len <= sizeof(msg));
        assert_int_equal(posguard__v1__record__pack(&M, msg), n);
        if (extra_len)
                memcpy(msg + n, extra, extra_len);
        msg_len = n + extra_len;
}

/* ------------------------------------------------------------------ */
/* Parsing helpers                                                      */

static unsigned char arena_buf[PG_PB_ARENA_MIN];
static pg_pb_arena_t arena;
static pg_record_t rec;
static const char *field;
static char err[256];

/* Both decoders must give the same answer for every input: the reject,
 * the field, the error text and the record's bytes. */
static pg_reject_t parse(const void *b, size_t n)
{
        pg_pb_arena_init(&arena, arena_buf, sizeof(arena_buf));
        static pg_record_t ref;
        static char ref_err[256];
        const char *ref_field = "unset";
        memset(&ref, 0xA5, sizeof(ref));
        memset(ref_err, 'Z', sizeof(ref_err));
        pg_reject_t rr = pg_codec_pb_parse_reference(
            &arena, b, n, &ref, &ref_field, ref_err, sizeof(ref_err));
        assert_non_null(memchr(ref_err, '\0', sizeof(ref_err)));
        assert_int_equal(arena.used, 0); /* all given back */
        assert_int_equal(arena.overflow, 0);

        memset(&rec, 0xA5, sizeof(rec));
        field = "unset";
        memset(err, 'Z', sizeof(err));
        pg_reject_t r = pg_codec_pb_parse(b, n, &rec, &field, err, sizeof(err));
        assert_non_null(memchr(err, '\0', sizeof(err)));
        if (r != rr || (field == NULL) != (ref_field == NULL) ||
            (field && strcmp(field, ref_field)) || strcmp(err, ref_err))
                fail_msg("decoders differ: wire %s/%s (%s), protobuf-c "
                         "%s/%s (%s)",
                         pg_reject_name(r), field ? field : "-", err,
                         pg_reject_name(rr), ref_field ? ref_field : "-",
                         ref_err);
        if (r == PG_REJ_NONE)
                assert_memory_equal(&rec, &ref, sizeof(rec));
        return r;
}

static void expect_ok_at(int line)
{
        pg_reject_t r = parse(msg, msg_len);
        if (r != PG_REJ_NONE)
                fail_msg("line %d: rejected (%s, %s): %s", line,
                         pg_reject_name(r), field ? field : "-", err);
        assert_null(field);
        assert_string_equal(err, "");
}
#define expect_ok() expect_ok_at(__LINE__)
/* M plus raw extra bytes is accepted. */
#define expect_ok_extra(extra)                                                 \
        do {                                                                   \
                pack_m((extra), sizeof(extra));                                \
                expect_ok_at(__LINE__);                                        \
        } while (0)

static void expect_rej_at(pg_reject_t code, const char *fname, int line)
{
        pg_reject_t r = parse(msg, msg_len);
        if (r != code || (fname == NULL) != (field == NULL) ||
            (fname && strcmp(fname, field)))
                fail_msg("line %d: expected %s/%s, got %s/%s (%s)", line,
                         pg_reject_name(code), fname ? fname : "-",
                         pg_reject_name(r), field ? field : "-", err);
        assert_true(err[0] != '\0');
        if (fname) {
                char want[64];
                snprintf(want, sizeof(want), "field '%s': ", fname);
                if (strncmp(err, want, strlen(want)))
                        fail_msg("line %d: message '%s' does not start "
                                 "with '%s'",
                                 line, err, want);
        }
}
/* M (plus raw extra bytes) is rejected with code, naming field f. */
#define expect_rej(code, f)                                                    \
        do {                                                                   \
                pack_m(NULL, 0);                                               \
                expect_rej_at((code), (f), __LINE__);                          \
        } while (0)
#define expect_rej_extra(extra, code, f)                                       \
        do {                                                                   \
                pack_m((extra), sizeof(extra));                                \
                expect_rej_at((code), (f), __LINE__);                          \
        } while (0)

/* A JSON line with the same content as a pg_record_t (for the agreement
 * tests): enums by name (an out-of-range one as "bogus"), strings with
 * control characters escaped, event_time as an integer. */
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
        o[n] = '\0';
        return n;
}

static size_t to_json(char *o, const pg_record_t *r)
{
        size_t n = 0;
        const char *k = pg_kind_name(r->kind), *st = pg_status_name(r->status),
                   *em = pg_entry_mode_name(r->entry_mode);
#define S(name)                                                                \
        do {                                                                   \
                n += (size_t)sprintf(o + n, ",\"" #name "\":");                \
                n += json_str(o + n, &r->name);                                \
        } while (0)
        n += (size_t)sprintf(o + n, "{\"txn_id\":");
        n += json_str(o + n, &r->txn_id);
        n += (size_t)sprintf(o + n, ",\"kind\":\"%s\",\"status\":\"%s\"",
                             k ? k : "bogus", st ? st : "bogus");
        S(merchant_id);
        S(terminal_id);
        S(stan);
        S(rrn);
        S(card_token);
        if (r->pan_masked.len)
                S(pan_masked);
        n += (size_t)sprintf(o + n, ",\"amount\":%lld", (long long)r->amount);
        S(currency);
        if (r->has_expected)
                n += (size_t)sprintf(o + n, ",\"expected_amount\":%lld",
                                     (long long)r->expected_amount);
        if (r->order_id.len)
                S(order_id);
        if (r->original_rrn.len)
                S(original_rrn);
        n += (size_t)sprintf(o + n, ",\"event_time\":%lld",
                             (long long)r->event_time);
        if (r->entry_mode)
                n += (size_t)sprintf(o + n, ",\"entry_mode\":\"%s\"",
                                     em ? em : "bogus");
        if (r->retransmission)
                n += (size_t)sprintf(o + n, ",\"retransmission\":true");
        n += (size_t)sprintf(o + n, "}");
#undef S
        return n;
}

static void set_pg(pg_str_t *d, const char *s)
{
        size_t n = strlen(s);
        assert_true(n <= PG_STR_MAX);
        memset(d, 0, sizeof(*d));
        memcpy(d->s, s, n);
        d->len = (uint8_t)n;
}

/* A valid record with every field set. */
static void full_record(pg_record_t *r)
{
        memset(r, 0, sizeof(*r));
        set_pg(&r->txn_id, "TX-0001");
        r->kind = PG_KIND_REFUND;
        r->status = PG_STATUS_DECLINED;
        set_pg(&r->merchant_id, "MID 42 \xc3\xa9");
        set_pg(&r->terminal_id, "TID-7");
        set_pg(&r->stan, "004711");
        set_pg(&r->rrn, "123456789012");
        set_pg(&r->card_token, "tok_9f8e");
        set_pg(&r->pan_masked, "622848******1234");
        r->amount = 12345;
        set_pg(&r->currency, "CNY");
        r->has_expected = true;
        r->expected_amount = 0;
        set_pg(&r->order_id, "ORD-9");
        set_pg(&r->original_rrn, "123456789000");
        r->event_time = 1763805600123LL;
        r->entry_mode = PG_ENTRY_CONTACTLESS;
        r->retransmission = true;
}

static void min_record(pg_record_t *r)
{
        memset(r, 0, sizeof(*r));
        set_pg(&r->txn_id, "T");
        set_pg(&r->merchant_id, "M");
        set_pg(&r->terminal_id, "T");
        set_pg(&r->stan, "1");
        set_pg(&r->rrn, "R");
        set_pg(&r->card_token, "c");
        r->amount = 1;
        set_pg(&r->currency, "USD");
        r->event_time = 0;
}

/* ------------------------------------------------------------------ */
/* Schema                                                               */

/* An enum value's name after its prefix, lower-cased: KIND_VOID -> void. */
static const char *lower_after(const char *name, size_t prefix)
{
        static char b[64];
        size_t i = 0;
        for (const char *p = name + prefix; *p && i + 1 < sizeof(b); p++)
                b[i++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        b[i] = '\0';
        return b;
}

/* codec_pb.c's table: field number f + 1 is pg_field_t f, same name, and
 * strings are strings. */
static void schema_matches_field_table(void **state)
{
        const ProtobufCMessageDescriptor *d = &posguard__v1__record__descriptor;
        assert_int_equal(d->n_fields, PG_F__COUNT);
        for (int f = 0; f < PG_F__COUNT; f++) {
                const ProtobufCFieldDescriptor *fd = fdesc(f);
                assert_string_equal(fd->name,
                                    pg_record_field_name((pg_field_t)f));
                pg_field_type_t t = pg_record_field_type((pg_field_t)f);
                switch (fd->type) {
                case PROTOBUF_C_TYPE_STRING:
                        assert_int_equal(t, PG_FT_STRING);
                        break;
                case PROTOBUF_C_TYPE_ENUM:
                        assert_int_equal(t, PG_FT_ENUM);
                        break;
                case PROTOBUF_C_TYPE_BOOL:
                        assert_int_equal(t, PG_FT_BOOL);
                        break;
                case PROTOBUF_C_TYPE_INT64:
                        assert_int_equal(t, PG_FT_INT);
                        break;
                default:
                        fail_msg("field %s: unexpected type", fd->name);
                }
                assert_int_equal(fd->label, PROTOBUF_C_LABEL_NONE);
        }
        /* enum names: proto KIND_<NAME> is JSON <name> */
        const ProtobufCEnumDescriptor *ek = &posguard__v1__kind__descriptor;
        for (int v = 0; v < PG_KIND__COUNT; v++) {
                const ProtobufCEnumValue *ev =
                    protobuf_c_enum_descriptor_get_value(ek, v + 1);
                assert_non_null(ev);
                assert_string_equal(lower_after(ev->name, 5), pg_kind_name(v));
        }
        const ProtobufCEnumDescriptor *es = &posguard__v1__status__descriptor;
        for (int v = 0; v < PG_STATUS__COUNT; v++) {
                const ProtobufCEnumValue *ev =
                    protobuf_c_enum_descriptor_get_value(es, v + 1);
                assert_non_null(ev);
                assert_string_equal(lower_after(ev->name, 7),
                                    pg_status_name(v));
        }
        const ProtobufCEnumDescriptor *ee =
            &posguard__v1__entry_mode__descriptor;
        for (int v = 1; v < PG_ENTRY__COUNT; v++) {
                const ProtobufCEnumValue *ev =
                    protobuf_c_enum_descriptor_get_value(ee, v);
                assert_non_null(ev);
                assert_string_equal(lower_after(ev->name, 11),
                                    pg_entry_mode_name(v));
        }
}

/* ------------------------------------------------------------------ */
/* Round trips                                                          */

static void roundtrip(const pg_record_t *in)
{
        uint8_t b[1024];
        int n = pg_codec_pb_record(b, sizeof(b), in);
        assert_true(n > 0);
        pg_record_t out;
        memset(&out, 0x5A, sizeof(out));
        out.seq = in->seq;
        const char *f = "x";
        char e[128];
        pg_reject_t r = pg_codec_pb_parse(b, (size_t)n, &out, &f, e, sizeof(e));
        if (r)
                fail_msg("rejected (%s, %s): %s", pg_reject_name(r),
                         f ? f : "-", e);
        assert_null(f);
        assert_memory_equal(&out, in, sizeof(out));
        /* a buffer one byte short is refused, and nothing is written past
         * its end */
        uint8_t small[1024];
        memset(small, 0xEE, sizeof(small));
        assert_int_equal(pg_codec_pb_record(small, (size_t)n - 1, in), -1);
        for (int i = n - 1; i < (int)sizeof(small); i++)
                assert_int_equal(small[i], 0xEE);
        assert_int_equal(pg_codec_pb_record(small, (size_t)n, in), n);
}

static void roundtrip_full_and_minimal(void **state)
{
        pg_record_t r;
        full_record(&r);
        r.seq = 42; /* seq is not touched by the parser */
        roundtrip(&r);
        min_record(&r);
        roundtrip(&r);
        /* every enum value, both bools, expected present or not */
        for (int k = 0; k < PG_KIND__COUNT; k++)
                for (int s = 0; s < PG_STATUS__COUNT; s++)
                        for (int m = 0; m < PG_ENTRY__COUNT; m++) {
                                full_record(&r);
                                r.kind = (uint8_t)k;
                                r.status = (uint8_t)s;
                                r.entry_mode = (uint8_t)m;
                                r.retransmission = m & 1;
                                r.has_expected = s & 1;
                                r.expected_amount = r.has_expected ? 99 : 0;
                                if (k == PG_KIND_PURCHASE)
                                        memset(&r.original_rrn, 0,
                                               sizeof(r.original_rrn));
                                roundtrip(&r);
                        }
        /* the extremes */
        full_record(&r);
        r.amount = INT64_MAX;
        r.expected_amount = INT64_MAX;
        r.event_time = PG_TIME_MAX_MS;
        char s64[PG_STR_MAX + 1];
        memset(s64, 'x', PG_STR_MAX);
        s64[PG_STR_MAX] = '\0';
        set_pg(&r.txn_id, s64);
        set_pg(&r.order_id, s64);
        roundtrip(&r);
}

/* The message the generated code writes for a full record decodes to the
 * same fields as protobuf-c reads them. */
static void encoder_writes_the_schema(void **state)
{
        pg_record_t r;
        full_record(&r);
        uint8_t b[1024];
        int n = pg_codec_pb_record(b, sizeof(b), &r);
        assert_true(n > 0);
        Posguard__V1__Record *m =
            posguard__v1__record__unpack(NULL, (size_t)n, b);
        assert_non_null(m);
        assert_string_equal(m->txn_id, "TX-0001");
        assert_int_equal(m->kind, POSGUARD__V1__KIND__KIND_REFUND);
        assert_int_equal(m->status, POSGUARD__V1__STATUS__STATUS_DECLINED);
        assert_string_equal(m->merchant_id, "MID 42 \xc3\xa9");
        assert_string_equal(m->pan_masked, "622848******1234");
        assert_int_equal(m->_amount_case, POSGUARD__V1__RECORD___AMOUNT_AMOUNT);
        assert_int_equal(m->amount, 12345);
        assert_int_equal(
            m->_expected_amount_case,
            POSGUARD__V1__RECORD___EXPECTED_AMOUNT_EXPECTED_AMOUNT);
        assert_int_equal(m->expected_amount, 0);
        assert_string_equal(m->original_rrn, "123456789000");
        assert_int_equal(m->event_time, 1763805600123LL);
        assert_int_equal(m->entry_mode,
                         POSGUARD__V1__ENTRY_MODE__ENTRY_MODE_CONTACTLESS);
        assert_true(m->retransmission);
        posguard__v1__record__free_unpacked(m, NULL);

        /* absent optional fields are not written */
        min_record(&r);
        n = pg_codec_pb_record(b, sizeof(b), &r);
        m = posguard__v1__record__unpack(NULL, (size_t)n, b);
        assert_non_null(m);
        assert_int_equal(m->_expected_amount_case, 0);
        assert_int_equal(m->_original_rrn_case, 0);
        assert_int_equal(m->entry_mode, 0);
        assert_string_equal(m->pan_masked, "");
        posguard__v1__record__free_unpacked(m, NULL);
}

static void base_is_valid(void **state)
{
        base_init();
        pack_m(NULL, 0);
        expect_ok();
        assert_string_equal(rec.txn_id.s, "T1");
        assert_int_equal(rec.kind, PG_KIND_PURCHASE);
        assert_int_equal(rec.amount, 1000);
        assert_int_equal(rec.event_time, 1763805600123LL);
        assert_false(rec.has_expected);
        assert_int_equal(rec.entry_mode, PG_ENTRY_NONE);
        /* unknown fields are ignored, repeated or not, of any wire type */
        const uint8_t unk[] = {0xf8, 0x01, 0x05, 0xf8, 0x01, 0x06, /* 31 */
                               0xfa, 0x01, 0x02, 'h',  'i',        /* 31 */
                               0x99, 0x02, 1,    2,    3,    4,
                               5,    6,    7,    8, /* 35 fixed64 */
                               0xa5, 0x02, 1,    2,    3,    4}; /* fixed32 */
        pack_m(unk, sizeof(unk));
        expect_ok();
        assert_string_equal(rec.txn_id.s, "T1");
}

/* ------------------------------------------------------------------ */
/* Rejects, field by field                                              */

static const int required_str[] = {
    PG_F_TXN_ID, PG_F_MERCHANT_ID, PG_F_TERMINAL_ID, PG_F_STAN,
    PG_F_RRN,    PG_F_CARD_TOKEN,  PG_F_CURRENCY};

static void missing_each_required(void **state)
{
        for (size_t i = 0; i < sizeof(required_str) / sizeof(int); i++) {
                int f = required_str[i];
                const char *name = pg_record_field_name((pg_field_t)f);
                base_init();
                set_str(f, NULL);
                expect_rej(PG_REJ_MISSING, name);
                base_init();
                set_str(f, "");
                expect_rej(PG_REJ_EMPTY, name);
        }
        base_init();
        set_num(PG_F_KIND, 0, false);
        expect_rej(PG_REJ_MISSING, "kind");
        base_init();
        set_num(PG_F_STATUS, 0, false);
        expect_rej(PG_REJ_MISSING, "status");
        /* UNSPECIFIED written out explicitly is still missing */
        base_init();
        set_num(PG_F_KIND, 0, false);
        const uint8_t kind0[] = {0x10, 0x00};
        expect_rej_extra(kind0, PG_REJ_MISSING, "kind");
        base_init();
        set_num(PG_F_AMOUNT, 0, false);
        expect_rej(PG_REJ_MISSING, "amount");
        base_init();
        set_num(PG_F_EVENT_TIME, 0, false);
        expect_rej(PG_REJ_MISSING, "event_time");
        /* the empty message: like an empty line */
        msg_len = 0;
        expect_rej_at(PG_REJ_MALFORMED, NULL, __LINE__);
        /* a message of unknown fields only: the first required one */
        const uint8_t only_unknown[] = {0xf8, 0x01, 0x01};
        memcpy(msg, only_unknown, sizeof(only_unknown));
        msg_len = sizeof(only_unknown);
        expect_rej_at(PG_REJ_MISSING, "txn_id", __LINE__);
}

static void wrong_wire_type_each_field(void **state)
{
        /* each field removed from the base and sent again with a wire type
         * that is not its own */
        for (int f = 0; f < PG_F__COUNT; f++) {
                const ProtobufCFieldDescriptor *fd = fdesc(f);
                const char *name = fd->name;
                bool is_str = fd->type == PROTOBUF_C_TYPE_STRING;
                uint8_t extra[16];
                size_t o = 0;
                uint32_t tag = (uint32_t)(f + 1) << 3 | (is_str ? 0u : 2u);
                extra[o++] = (uint8_t)(tag < 128 ? tag : (tag & 0x7f) | 0x80);
                if (tag >= 128)
                        extra[o++] = (uint8_t)(tag >> 7);
                if (is_str) {
                        extra[o++] = 0x01; /* varint 1 */
                } else {
                        extra[o++] = 0x01; /* one byte */
                        extra[o++] = 'x';
                }
                base_init();
                if (is_str)
                        set_str(f, NULL);
                else
                        set_num(f, 0, false);
                if (f == PG_F_ORIGINAL_RRN) {
                        /* ignored on a purchase, checked on a refund */
                        pack_m(extra, o);
                        expect_ok_at(__LINE__);
                        set_num(PG_F_KIND, POSGUARD__V1__KIND__KIND_REFUND,
                                true);
                }
                pack_m(extra, o);
                expect_rej_at(PG_REJ_TYPE, name, __LINE__);
        }
        /* fixed64 for amount, fixed32 for event_time */
        base_init();
        set_num(PG_F_AMOUNT, 0, false);
        const uint8_t f64[] = {0x51, 1, 0, 0, 0, 0, 0, 0, 0};
        expect_rej_extra(f64, PG_REJ_TYPE, "amount");
        base_init();
        set_num(PG_F_EVENT_TIME, 0, false);
        const uint8_t f32[] = {0x7d, 1, 0, 0, 0};
        expect_rej_extra(f32, PG_REJ_TYPE, "event_time");
}

static void string_size_boundary(void **state)
{
        char s64[PG_STR_MAX + 2];
        memset(s64, 'a', sizeof(s64));
        s64[PG_STR_MAX] = '\0';
        for (int f = 0; f < PG_F__COUNT; f++) {
                const ProtobufCFieldDescriptor *fd = fdesc(f);
                if (fd->type != PROTOBUF_C_TYPE_STRING)
                        continue;
                base_init();
                set_num(PG_F_KIND, POSGUARD__V1__KIND__KIND_VOID, true);
                set_str(PG_F_ORIGINAL_RRN, "R0");
                if (f == PG_F_CURRENCY || f == PG_F_CARD_TOKEN ||
                    f == PG_F_PAN_MASKED)
                        continue; /* their own rules judge 64 bytes */
                s64[PG_STR_MAX] = '\0';
                set_str(f, s64);
                pack_m(NULL, 0);
                expect_ok_at(__LINE__);
                assert_int_equal(pg_record_str(&rec, (pg_field_t)f)->len,
                                 PG_STR_MAX);
                s64[PG_STR_MAX] = 'a';
                s64[PG_STR_MAX + 1] = '\0';
                set_str(f, s64);
                expect_rej(PG_REJ_OVERSIZE, fd->name);
        }
        /* over the size in bytes, not characters */
        base_init();
        char u[PG_STR_MAX + 2];
        memset(u, 'a', sizeof(u));
        memcpy(u + PG_STR_MAX - 1, "\xc3\xa9", 2);
        u[PG_STR_MAX + 1] = '\0';
        set_str(PG_F_STAN, u);
        expect_rej(PG_REJ_OVERSIZE, "stan");
        /* a large string is oversize, not a decode failure */
        static char big[60000];
        memset(big, 'b', sizeof(big) - 1);
        base_init();
        set_str(PG_F_ORDER_ID, big);
        expect_rej(PG_REJ_OVERSIZE, "order_id");
}

static void bad_characters(void **state)
{
        base_init();
        set_str(PG_F_MERCHANT_ID, "M\x01");
        expect_rej(PG_REJ_BAD_CHARS, "merchant_id");
        base_init();
        set_str(PG_F_STAN, "12\x7f");
        expect_rej(PG_REJ_BAD_CHARS, "stan");
        base_init();
        set_str(PG_F_ORDER_ID, "o\n");
        expect_rej(PG_REJ_BAD_CHARS, "order_id");
        /* a NUL byte inside a string (protobuf-c would cut the string) */
        base_init();
        set_str(PG_F_RRN, NULL);
        const uint8_t nul[] = {0x3a, 0x03, 'a', 0x00, 'b'};
        expect_rej_extra(nul, PG_REJ_BAD_CHARS, "rrn");
        /* invalid UTF-8, checked before anything else but the framing */
        base_init();
        set_str(PG_F_TERMINAL_ID, "T\xff");
        expect_rej(PG_REJ_BAD_CHARS, "terminal_id");
        base_init();
        set_str(PG_F_TXN_ID, NULL);        /* missing, but later... */
        set_str(PG_F_RRN, "\xed\xa0\x80"); /* a surrogate */
        expect_rej(PG_REJ_BAD_CHARS, "rrn");
        /* ...even in a field the record ignores */
        base_init();
        set_str(PG_F_ORIGINAL_RRN, "\xc0\xaf"); /* overlong */
        expect_rej(PG_REJ_BAD_CHARS, "original_rrn");
        /* valid multi-byte text is fine */
        base_init();
        set_str(PG_F_MERCHANT_ID, "\xe5\x95\x86\xe6\x88\xb7 \xf0\x9f\x92\xb3");
        pack_m(NULL, 0);
        expect_ok();
        /* every byte that is not printable ASCII, at every place of a
         * string of every length to 24 (strings are checked 8 bytes at a
         * time, then byte by byte): a control character or DEL is refused,
         * the rest is UTF-8 (a lone byte >= 0x80 is invalid; é is fine) */
        const char *odd[] = {"\x01", "\x1f", "\x7f",
                             "\x80", "\xff", "\xc3\xa9"};
        for (size_t o = 0; o < sizeof(odd) / sizeof(odd[0]); o++)
                for (size_t len = 1; len <= 24; len++)
                        for (size_t at = 0; at + strlen(odd[o]) <= len; at++) {
                                char str[32];
                                memset(str, 'a', len);
                                memcpy(str + at, odd[o], strlen(odd[o]));
                                str[len] = '\0';
                                base_init();
                                set_str(PG_F_MERCHANT_ID, str);
                                pack_m(NULL, 0);
                                if (o == 5)
                                        expect_ok();
                                else
                                        expect_rej(PG_REJ_BAD_CHARS,
                                                   "merchant_id");
                        }
        /* and the edges of printable ASCII are fine anywhere */
        for (size_t len = 1; len <= 24; len++) {
                char str[32];
                for (size_t i = 0; i < len; i++)
                        str[i] = i % 2 ? ' ' : '~';
                str[len] = '\0';
                base_init();
                set_str(PG_F_MERCHANT_ID, str);
                pack_m(NULL, 0);
                expect_ok();
        }
}

static void enum_values(void **state)
{
        base_init();
        set_num(PG_F_KIND, 5, true);
        expect_rej(PG_REJ_ENUM, "kind");
        base_init();
        set_num(PG_F_KIND, -1, true);
        expect_rej(PG_REJ_ENUM, "kind");
        base_init();
        set_num(PG_F_STATUS, 4, true);
        expect_rej(PG_REJ_ENUM, "status");
        base_init();
        set_num(PG_F_ENTRY_MODE, 6, true);
        expect_rej(PG_REJ_ENUM, "entry_mode");
        base_init();
        set_num(PG_F_ENTRY_MODE, 1000000, true);
        expect_rej(PG_REJ_ENUM, "entry_mode");
        for (int v = 1; v <= 5; v++) {
                base_init();
                set_num(PG_F_ENTRY_MODE, v, true);
                pack_m(NULL, 0);
                expect_ok();
                assert_int_equal(rec.entry_mode, v);
        }
        for (int v = 1; v <= 3; v++) {
                base_init();
                set_num(PG_F_STATUS, v, true);
                pack_m(NULL, 0);
                expect_ok();
                assert_int_equal(rec.status, v - 1);
        }
}

static void original_rrn_rules(void **state)
{
        static const int kinds[] = {POSGUARD__V1__KIND__KIND_REFUND,
                                    POSGUARD__V1__KIND__KIND_REVERSAL,
                                    POSGUARD__V1__KIND__KIND_VOID};
        for (int i = 0; i < 3; i++) {
                base_init();
                set_num(PG_F_KIND, kinds[i], true);
                expect_rej(PG_REJ_MISSING, "original_rrn");
                set_str(PG_F_ORIGINAL_RRN, "");
                expect_rej(PG_REJ_EMPTY, "original_rrn");
                set_str(PG_F_ORIGINAL_RRN, "R\x02");
                expect_rej(PG_REJ_BAD_CHARS, "original_rrn");
                set_str(PG_F_ORIGINAL_RRN, "R0");
                pack_m(NULL, 0);
                expect_ok();
                assert_string_equal(rec.original_rrn.s, "R0");
        }
        /* on a purchase: not checked, not kept */
        base_init();
        set_str(PG_F_ORIGINAL_RRN, "R\x02");
        pack_m(NULL, 0);
        expect_ok();
        assert_int_equal(rec.original_rrn.len, 0);
        assert_string_equal(rec.original_rrn.s, "");
}

static void amount_rules(void **state)
{
        static const int64_t bad[] = {0, -1, INT64_MIN};
        for (int i = 0; i < 3; i++) {
                base_init();
                set_num(PG_F_AMOUNT, bad[i], true);
                expect_rej(PG_REJ_AMOUNT, "amount");
        }
        base_init();
        set_num(PG_F_AMOUNT, INT64_MAX, true);
        pack_m(NULL, 0);
        expect_ok();
        assert_int_equal(rec.amount, INT64_MAX);
        base_init();
        set_num(PG_F_EXPECTED_AMOUNT, -1, true);
        expect_rej(PG_REJ_AMOUNT, "expected_amount");
        base_init();
        set_num(PG_F_EXPECTED_AMOUNT, 0, true); /* present and zero */
        pack_m(NULL, 0);
        expect_ok();
        assert_true(rec.has_expected);
        assert_int_equal(rec.expected_amount, 0);
}

static void currency_rules(void **state)
{
        static const char *const bad[] = {"eur", "EU", "EURO", "E1R", "E R"};
        for (int i = 0; i < 5; i++) {
                base_init();
                set_str(PG_F_CURRENCY, bad[i]);
                expect_rej(PG_REJ_CURRENCY, "currency");
        }
        /* a card number in the currency is quoted masked */
        base_init();
        set_str(PG_F_CURRENCY, "4111111111111111");
        expect_rej(PG_REJ_CURRENCY, "currency");
        assert_null(strstr(err, "4111111111111111"));
        assert_non_null(strstr(err, "411111******1111"));
}

static void time_rules(void **state)
{
        static const int64_t bad[] = {-1, PG_TIME_MAX_MS + 1, INT64_MIN,
                                      INT64_MAX};
        for (int i = 0; i < 4; i++) {
                base_init();
                set_num(PG_F_EVENT_TIME, bad[i], true);
                expect_rej(PG_REJ_TIME, "event_time");
        }
        static const int64_t good[] = {0, 1, PG_TIME_MAX_MS};
        for (int i = 0; i < 3; i++) {
                base_init();
                set_num(PG_F_EVENT_TIME, good[i], true);
                pack_m(NULL, 0);
                expect_ok();
                assert_int_equal(rec.event_time, good[i]);
        }
}

static void card_data_rules(void **state)
{
        base_init();
        set_str(PG_F_CARD_TOKEN, "4111111111111111");
        expect_rej(PG_REJ_CLEAR_PAN, "card_token");
        assert_null(strstr(err, "4111111111111111"));
        assert_null(strstr(err, "411111"));
        /* 12 digits, or 16 failing Luhn: a token */
        base_init();
        set_str(PG_F_CARD_TOKEN, "411111111111");
        pack_m(NULL, 0);
        expect_ok();
        set_str(PG_F_CARD_TOKEN, "4111111111111112");
        pack_m(NULL, 0);
        expect_ok();
        static const char *const bad_masks[] = {
            "4111111111111111", "4111111*1111", "411111*11111",
            "411111",           "411111-1111",  "****-1234"};
        for (int i = 0; i < 6; i++) {
                base_init();
                set_str(PG_F_PAN_MASKED, bad_masks[i]);
                expect_rej(PG_REJ_CLEAR_PAN, "pan_masked");
                assert_null(strstr(err, bad_masks[i]));
        }
        static const char *const good_masks[] = {"622848******1234", "*",
                                                 "xxxx1234", "123456XX"};
        for (int i = 0; i < 4; i++) {
                base_init();
                set_str(PG_F_PAN_MASKED, good_masks[i]);
                pack_m(NULL, 0);
                expect_ok();
                assert_string_equal(rec.pan_masked.s, good_masks[i]);
        }
}

static void duplicate_fields(void **state)
{
        base_init();
        const uint8_t txn[] = {0x0a, 0x02, 'T', '2'};
        expect_rej_extra(txn, PG_REJ_DUPLICATE_FIELD, "txn_id");
        /* the same value twice is still a repeat */
        const uint8_t amt[] = {0x50, 0xe8, 0x07};
        expect_rej_extra(amt, PG_REJ_DUPLICATE_FIELD, "amount");
        /* the first repeat in message order is named */
        const uint8_t two[] = {0x7a, 0x01, 'x', 0x08, 0x01};
        expect_rej_extra(two, PG_REJ_DUPLICATE_FIELD, "event_time");
        /* a field sent twice with a wrong type: a repeat first */
        const uint8_t cur[] = {0x58, 0x01};
        expect_rej_extra(cur, PG_REJ_DUPLICATE_FIELD, "currency");
        /* absent in M, twice in the extra bytes: a repeat */
        base_init();
        set_num(PG_F_RETRANSMISSION, 0, false);
        const uint8_t rt[] = {0x88, 0x01, 0x01, 0x88, 0x01, 0x00};
        expect_rej_extra(rt, PG_REJ_DUPLICATE_FIELD, "retransmission");
        /* a repeat even of an ignored original_rrn */
        base_init();
        const uint8_t orr[] = {0x72, 0x01, 'a', 0x72, 0x01, 'b'};
        expect_rej_extra(orr, PG_REJ_DUPLICATE_FIELD, "original_rrn");
}

static void reject_order(void **state)
{
        /* fields are checked in pg_field_t order */
        base_init();
        set_str(PG_F_TXN_ID, NULL);
        set_num(PG_F_KIND, 9, true);
        set_num(PG_F_AMOUNT, 0, true);
        expect_rej(PG_REJ_MISSING, "txn_id");
        base_init();
        set_num(PG_F_KIND, 9, true);
        set_str(PG_F_CARD_TOKEN, "4111111111111111");
        expect_rej(PG_REJ_ENUM, "kind");
        base_init();
        set_str(PG_F_CARD_TOKEN, "4111111111111111");
        set_num(PG_F_AMOUNT, 0, true);
        expect_rej(PG_REJ_CLEAR_PAN, "card_token");
        base_init();
        set_num(PG_F_EVENT_TIME, -5, true);
        set_num(PG_F_ENTRY_MODE, 77, true);
        expect_rej(PG_REJ_TIME, "event_time");
        /* a wrong wire type is reported at its field's turn */
        base_init();
        set_str(PG_F_TXN_ID, NULL);
        set_num(PG_F_AMOUNT, 0, false);
        const uint8_t amt_len[] = {0x52, 0x01, '5'};
        expect_rej_extra(amt_len, PG_REJ_MISSING, "txn_id");
        /* duplicate before fields, UTF-8 before duplicate, framing before
         * all */
        base_init();
        set_num(PG_F_KIND, 0, false);
        const uint8_t dup_txn[] = {0x0a, 0x01, 'x'};
        expect_rej_extra(dup_txn, PG_REJ_DUPLICATE_FIELD, "txn_id");
        const uint8_t utf_after_dup[] = {0x0a, 0x01, 'x', 0x6a, 0x01, 0xff};
        expect_rej_extra(utf_after_dup, PG_REJ_BAD_CHARS, "order_id");
        const uint8_t bad_tail[] = {0x6a, 0x01, 0xff, 0x0a, 0x05, 'x'};
        expect_rej_extra(bad_tail, PG_REJ_MALFORMED, NULL);
}

static void malformed_messages(void **state)
{
        static const struct {
                const char *what;
                uint8_t b[16];
                size_t n;
        } cases[] = {
            {"field 0", {0x00, 0x01}, 2},
            {"group start", {0x0b, 0x0c}, 2},
            {"group end", {0x0c}, 1},
            {"wire type 6", {0x0e, 0x00}, 2},
            {"wire type 7", {0x0f}, 1},
            {"truncated varint", {0x50, 0x80}, 2},
            {"truncated tag", {0x80}, 1},
            {"11-byte varint",
             {0x50, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
              0x01},
             12},
            {"varint past 64 bits",
             {0x50, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x02},
             11},
            {"length past the end", {0x0a, 0x05, 'a'}, 3},
            {"huge length", {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, 6},
            {"truncated fixed64", {0x51, 1, 2, 3}, 4},
            {"truncated fixed32", {0x7d, 1}, 2},
            {"tag past 32 bits", {0xf8, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00}, 7},
            {"JSON text", {'{', '"', 'a', '"', ':', '1', '}'}, 7},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                pg_reject_t r = parse(cases[i].b, cases[i].n);
                if (r != PG_REJ_MALFORMED)
                        fail_msg("%s: got %s (%s)", cases[i].what,
                                 pg_reject_name(r), err);
                assert_null(field);
        }
        /* NULL input */
        assert_int_equal(parse(NULL, 5), PG_REJ_MALFORMED);
        /* too long */
        memset(msg, 0, PG_JSON_MAX_LINE + 1);
        assert_int_equal(parse(msg, PG_JSON_MAX_LINE + 1),
                         PG_REJ_LINE_TOO_LONG);
        assert_null(field);
        /* exactly the limit: judged on its content */
        base_init();
        static char big[PG_JSON_MAX_LINE];
        memset(big, 'b', sizeof(big) - 1);
        set_str(PG_F_ORDER_ID, big);
        pack_m(NULL, 0);
        assert_true(msg_len > PG_JSON_MAX_LINE);
        assert_int_equal(parse(msg, msg_len), PG_REJ_LINE_TOO_LONG);
        big[PG_JSON_MAX_LINE - 200] = '\0';
        set_str(PG_F_ORDER_ID, big);
        pack_m(NULL, 0);
        assert_true(msg_len <= PG_JSON_MAX_LINE);
        assert_int_equal(parse(msg, msg_len), PG_REJ_OVERSIZE);
        /* a tag or a length padded to 5 bytes is read; to 6, refused (as
         * protobuf-c reads them); a number's value may take 10 */
        /* field 16 (entry_mode), varint: tag 128 */
        const uint8_t tag5[] = {0x80, 0x81, 0x80, 0x80, 0x00, 0x01};
        const uint8_t tag6[] = {0x80, 0x81, 0x80, 0x80, 0x80, 0x00, 0x01};
        const uint8_t len5[] = {0x6a, 0x83, 0x80, 0x80, 0x80,
                                0x00, 'a',  'b',  'c'};
        const uint8_t len6[] = {0x6a, 0x83, 0x80, 0x80, 0x80,
                                0x80, 0x00, 'a',  'b',  'c'};
        const uint8_t val10[] = {0x80, 0x01, 0x81, 0x80, 0x80, 0x80,
                                 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
        base_init();
        set_num(PG_F_ENTRY_MODE, 0, false);
        expect_ok_extra(tag5);
        assert_int_equal(rec.entry_mode, 1);
        expect_rej_extra(tag6, PG_REJ_MALFORMED, NULL);
        assert_non_null(strstr(err, "tag longer than 5 bytes"));
        expect_ok_extra(val10);
        assert_int_equal(rec.entry_mode, 1);
        base_init();
        set_str(PG_F_ORDER_ID, "");
        expect_ok_extra(len5);
        assert_string_equal(rec.order_id.s, "abc");
        expect_rej_extra(len6, PG_REJ_MALFORMED, NULL);
        assert_non_null(strstr(err, "length longer than 5 bytes"));
}

/* Every prefix of a valid message, and random byte changes: malformed or
 * some other reject or a record, never a crash or a read past the end
 * (the copies are exactly sized for ASan). */
static void truncated_and_garbage(void **state)
{
        pg_record_t r;
        full_record(&r);
        uint8_t b[1024];
        int n = pg_codec_pb_record(b, sizeof(b), &r);
        assert_true(n > 0);
        int malformed = 0;
        for (int k = 0; k < n; k++) {
                uint8_t *c = malloc(k ? (size_t)k : 1);
                memcpy(c, b, (size_t)k);
                pg_reject_t rj = parse(c, (size_t)k);
                free(c);
                /* the last two fields (entry_mode, retransmission) are
                 * optional, 3 bytes each: every shorter prefix lacks a
                 * required field or is cut */
                if (k < n - 6)
                        assert_int_not_equal(rj, PG_REJ_NONE);
                malformed += rj == PG_REJ_MALFORMED;
        }
        assert_true(malformed > n / 2);
        /* cut inside the last varint */
        assert_int_equal(parse(b, (size_t)n - 1), PG_REJ_MALFORMED);

        srand(12345);
        for (int it = 0; it < 20000; it++) {
                size_t len = (size_t)(rand() % 80);
                uint8_t *c = malloc(len ? len : 1);
                if (it & 1) {
                        for (size_t i = 0; i < len; i++)
                                c[i] = (uint8_t)rand();
                } else {
                        len = len < (size_t)n ? len : (size_t)n;
                        memcpy(c, b, len);
                        for (int f = 0; f < 3 && len; f++)
                                c[(size_t)rand() % len] = (uint8_t)rand();
                }
                pg_reject_t rj = parse(c, len);
                assert_true(rj < PG_REJ__COUNT);
                if (rj == PG_REJ_NONE) {
                        /* whatever was accepted obeys the record rules */
                        assert_true(rec.amount > 0);
                        assert_true(rec.txn_id.len > 0 &&
                                    rec.txn_id.len <= PG_STR_MAX);
                        assert_int_equal(rec.txn_id.s[rec.txn_id.len], 0);
                        assert_true(rec.kind < PG_KIND__COUNT);
                        assert_true(rec.event_time >= 0 &&
                                    rec.event_time <= PG_TIME_MAX_MS);
                }
                free(c);
        }
}

/* The wire decoder and the reference (protobuf-c) one on messages that are
 * mostly well-formed: a valid record with fields replaced, added or
 * repeated, of any number 1..20 and any wire type, with values chosen to
 * sit on the edges (varints of 1 to 10 bytes, negative numbers, 32-bit
 * overflow of enums, strings of printable ASCII with one byte swapped for
 * a control character, DEL, a UTF-8 sequence or a bad one). parse() holds
 * the two to the same answer; each outcome must be seen. */
static size_t put_varint(uint8_t *p, uint64_t v)
{
        size_t i = 0;
        while (v >= 0x80) {
                p[i++] = (uint8_t)(v | 0x80);
                v >>= 7;
        }
        p[i++] = (uint8_t)v;
        return i;
}

/* v in at least its own length and at most 10 bytes, padded with
 * continuation bytes of zero bits now and then (one time in four). */
static size_t put_varint_padded(uint8_t *p, uint64_t v)
{
        size_t n = put_varint(p, v);
        if (rand() % 4 || n >= 10)
                return n;
        size_t want = n + 1 + (size_t)rand() % (10 - n);
        p[n - 1] |= 0x80;
        while (n + 1 < want)
                p[n++] = 0x80;
        p[n++] = 0;
        return n;
}

/* One random field of number num into m: its right wire type (wt) three
 * times in four. */
static size_t put_field(uint8_t *m, uint32_t num, unsigned wt)
{
        static const uint64_t nums[] = {0,
                                        1,
                                        2,
                                        5,
                                        6,
                                        127,
                                        128,
                                        1700000000000ULL,
                                        253402300799999ULL,
                                        253402300800000ULL,
                                        0x7fffffffULL,
                                        0x80000000ULL,
                                        0x100000001ULL,
                                        0x7fffffffffffffffULL,
                                        0xffffffffffffffffULL,
                                        0xfffffffffffffffeULL};
        static const char *extra[] = {"\x01",         "\x7f",
                                      "\x1f",         "\xc3\xa9",
                                      "\xe2\x82\xac", "\xf0\x9f\x92\xb3",
                                      "\xc3",         "\xff",
                                      "\xed\xa0\x80", ""};
        size_t len = 0;
        if (rand() % 4 == 0) {
                wt = (unsigned)(rand() % 6);
                if (wt == 3 || wt == 4)
                        wt = rand() % 2 ? 0 : 2;
        }
        len += put_varint_padded(m + len, (uint64_t)num << 3 | wt);
        if (wt == 0) {
                uint64_t v = nums[rand() % 16];
                if (rand() % 3 == 0)
                        v = (uint64_t)rand() % 8;
                len += put_varint_padded(m + len, v);
        } else if (wt == 1 || wt == 5) {
                size_t w = wt == 1 ? 8 : 4;
                for (size_t i = 0; i < w; i++)
                        m[len++] = (uint8_t)rand();
        } else {
                char str[96];
                size_t sl = (size_t)(rand() % 70);
                for (size_t i = 0; i < sl; i++)
                        str[i] = (char)(0x20 + rand() % 95);
                if (sl && rand() % 2) {
                        const char *x = extra[rand() % 10];
                        size_t xl = strlen(x);
                        size_t at = (size_t)rand() % sl;
                        memcpy(str + at, x, xl < sl - at ? xl : sl - at);
                }
                if (num == 11 && rand() % 2) {
                        sl = 3; /* a currency: 3 letters, or nearly */
                        str[0] = 'E', str[1] = 'U';
                        str[2] = rand() % 2 ? 'R' : 'r';
                }
                len += put_varint_padded(m + len, sl);
                memcpy(m + len, str, sl);
                len += sl;
        }
        return len;
}

static void decoders_agree(void **state)
{
        pg_record_t r;
        full_record(&r);
        uint8_t base[1024];
        int n = pg_codec_pb_record(base, sizeof(base), &r);
        assert_true(n > 0);
        /* the base's fields: [at[i], at[i + 1]) is field i's bytes */
        size_t at[32];
        uint32_t num[32];
        unsigned wire[32];
        int nf = 0;
        for (size_t i = 0; i < (size_t)n; nf++) {
                at[nf] = i;
                uint64_t tag = 0, v = 0;
                for (int sh = 0;; sh += 7) {
                        tag |= (uint64_t)(base[i] & 0x7f) << sh;
                        if (!(base[i++] & 0x80))
                                break;
                }
                num[nf] = (uint32_t)(tag >> 3);
                wire[nf] = (unsigned)(tag & 7);
                for (int sh = 0;; sh += 7) {
                        v |= (uint64_t)(base[i] & 0x7f) << sh;
                        if (!(base[i++] & 0x80))
                                break;
                }
                if (wire[nf] == 2)
                        i += (size_t)v;
        }
        at[nf] = (size_t)n;
        int seen[PG_REJ__COUNT] = {0};
        srand(777);
        for (int it = 0; it < 40000; it++) {
                uint8_t m[4096];
                size_t len = 0;
                /* each field of the valid record kept, replaced, dropped or
                 * repeated; unknown or known fields added between them; now
                 * and then the whole cut short */
                for (int f = 0; f < nf; f++) {
                        int d = rand() % 24;
                        size_t fl = at[f + 1] - at[f];
                        if (d == 0)
                                continue; /* dropped */
                        if (d <= 2)
                                len += put_field(m + len, num[f], wire[f]);
                        else {
                                memcpy(m + len, base + at[f], fl);
                                len += fl;
                        }
                        if (d == 3) { /* repeated */
                                memcpy(m + len, base + at[f], fl);
                                len += fl;
                        }
                        if (d == 4)
                                len += put_field(m + len,
                                                 1 + (uint32_t)(rand() % 20),
                                                 (unsigned)(rand() % 2) * 2);
                }
                if (rand() % 16 == 0 && len)
                        len = (size_t)rand() % len;
                /* parse() fails the test when the two decoders differ */
                seen[parse(m, len)]++;
        }
        /* the mix reaches every outcome the wire can give */
        const pg_reject_t want[] = {PG_REJ_NONE,      PG_REJ_MALFORMED,
                                    PG_REJ_TYPE,      PG_REJ_DUPLICATE_FIELD,
                                    PG_REJ_BAD_CHARS, PG_REJ_ENUM,
                                    PG_REJ_AMOUNT,    PG_REJ_TIME,
                                    PG_REJ_CURRENCY,  PG_REJ_MISSING,
                                    PG_REJ_OVERSIZE};
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
                if (!seen[want[i]])
                        fail_msg("no case gave %s", pg_reject_name(want[i]));
}

/* ------------------------------------------------------------------ */
/* JSON and protobuf agree                                              */

static int agree_seen[PG_REJ__COUNT];

static void agree(const pg_record_t *in, int it)
{
        static char line[4096];
        size_t ln = to_json(line, in);
        uint8_t b[1024];
        int n = pg_codec_pb_record(b, sizeof(b), in);
        assert_true(n > 0);

        pg_record_t rj, rp;
        memset(&rj, 0x11, sizeof(rj));
        memset(&rp, 0x22, sizeof(rp));
        rj.seq = rp.seq = 7;
        const char *fj = "x", *fp = "y";
        char ej[256], ep[256];
        pg_reject_t cj =
            pg_codec_json_parse(line, ln, &rj, &fj, ej, sizeof(ej));
        pg_reject_t cp =
            pg_codec_pb_parse(b, (size_t)n, &rp, &fp, ep, sizeof(ep));
        if (cj != cp || (fj == NULL) != (fp == NULL) || (fj && strcmp(fj, fp)))
                fail_msg("case %d: JSON %s/%s (%s), protobuf %s/%s (%s)\n  "
                         "%s",
                         it, pg_reject_name(cj), fj ? fj : "-", ej,
                         pg_reject_name(cp), fp ? fp : "-", ep, line);
        if (cj == PG_REJ_NONE)
                assert_memory_equal(&rj, &rp, sizeof(rj));
        agree_seen[cj]++;
}

static void json_and_pb_agree(void **state)
{
        pg_record_t r;
        full_record(&r);
        agree(&r, -1);
        min_record(&r);
        agree(&r, -2);

        static const char *const strs[] = {
            "T1",
            "",
            "A\x01"
            "B",
            "x\x7f",
            "\xc3\xa9t\xc3\xa9",
            "4111111111111111",
            "411111******1111",
            "12345",
            "EUR",
            "eur",
            "E1R",
            "a\"b\\c",
            "0123456789012345678901234567890123456789012345678901234567890123"};
        static const int64_t amounts[] = {1, 0, -1, 1000, INT64_MAX, INT64_MIN};
        static const int64_t times[] = {
            0, 1, PG_TIME_MAX_MS, -1, PG_TIME_MAX_MS + 1, 1763805600123LL};
        const int ns = (int)(sizeof(strs) / sizeof(strs[0]));
        srand(777);
        for (int it = 0; it < 30000; it++) {
                full_record(&r);
                if (rand() % 2)
                        min_record(&r);
                r.kind = (uint8_t)(rand() % 6 == 0 ? PG_KIND__COUNT
                                                   : rand() % PG_KIND__COUNT);
                r.status =
                    (uint8_t)(rand() % 8 == 0 ? PG_STATUS__COUNT
                                              : rand() % PG_STATUS__COUNT);
                r.entry_mode = (uint8_t)(rand() % (PG_ENTRY__COUNT + 1));
                r.retransmission = rand() % 2;
                /* a few fields from the pool */
                int changes = 1 + rand() % 3;
                for (int c = 0; c < changes; c++) {
                        int f = rand() % PG_F__COUNT;
                        const char *s = strs[rand() % ns];
                        switch (pg_record_field_type((pg_field_t)f)) {
                        case PG_FT_STRING:
                                set_pg((pg_str_t *)pg_record_str(&r,
                                                                 (pg_field_t)f),
                                       s);
                                break;
                        default:
                                break;
                        }
                        if (f == PG_F_AMOUNT)
                                r.amount = amounts[rand() % 6];
                        if (f == PG_F_EXPECTED_AMOUNT) {
                                r.has_expected = rand() % 3 != 0;
                                r.expected_amount =
                                    r.has_expected ? amounts[rand() % 6] : 0;
                        }
                        if (f == PG_F_EVENT_TIME)
                                r.event_time = times[rand() % 6];
                }
                agree(&r, it);
        }
        /* the pools reach every reason a pg_record_t can carry */
        static const pg_reject_t want[] = {
            PG_REJ_NONE,      PG_REJ_MISSING, PG_REJ_EMPTY,
            PG_REJ_BAD_CHARS, PG_REJ_ENUM,    PG_REJ_AMOUNT,
            PG_REJ_CURRENCY,  PG_REJ_TIME,    PG_REJ_CLEAR_PAN};
        for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
                if (agree_seen[want[i]] < 50)
                        fail_msg("only %d records agreed on %s",
                                 agree_seen[want[i]], pg_reject_name(want[i]));
}

/* ------------------------------------------------------------------ */
/* Arena                                                                */

static void arena_bound_and_overflow(void **state)
{
        /* the largest record: every string 64 bytes, unknown fields and
         * oversize strings left out; PG_PB_ARENA_MIN holds it */
        char s64[PG_STR_MAX + 1];
        memset(s64, 'q', PG_STR_MAX);
        s64[PG_STR_MAX] = '\0';
        base_init();
        for (int f = 0; f < PG_F__COUNT; f++)
                if (fdesc(f)->type == PROTOBUF_C_TYPE_STRING &&
                    f != PG_F_CURRENCY && f != PG_F_PAN_MASKED)
                        set_str(f, s64);
        char stars[PG_STR_MAX + 1];
        memset(stars, '*', PG_STR_MAX);
        stars[PG_STR_MAX] = '\0';
        set_str(PG_F_PAN_MASKED, stars);
        set_num(PG_F_KIND, POSGUARD__V1__KIND__KIND_REFUND, true);
        set_num(PG_F_EXPECTED_AMOUNT, INT64_MAX, true);
        set_num(PG_F_ENTRY_MODE, 5, true);
        set_num(PG_F_RETRANSMISSION, 1, true);
        set_num(PG_F_AMOUNT, INT64_MAX, true);
        static uint8_t unk[40000];
        size_t o = 0;
        while (o + 4 <= sizeof(unk)) { /* field 99, varint: 4 bytes */
                unk[o++] = 0x98;
                unk[o++] = 0x06;
                unk[o++] = 0x81;
                unk[o++] = 0x01;
        }
        pack_m(unk, o);
        expect_ok();
        assert_int_equal(rec.order_id.len, PG_STR_MAX);

        /* too small: malformed, counted, and the arena is given back */
        static unsigned char tiny[64];
        pg_pb_arena_t a;
        pg_pb_arena_init(&a, tiny + 1, sizeof(tiny) - 1); /* misaligned */
        assert_true(((uintptr_t)a.base % _Alignof(max_align_t)) == 0);
        assert_true(a.size <= sizeof(tiny) - 1);
        pg_record_t out;
        const char *f;
        char e[256];
        base_init();
        pack_m(NULL, 0);
        assert_int_equal(pg_codec_pb_parse_reference(&a, msg, msg_len, &out, &f,
                                                     e, sizeof(e)),
                         PG_REJ_MALFORMED);
        assert_null(f);
        assert_non_null(strstr(e, "arena"));
        assert_true(a.overflow >= 1);
        assert_int_equal(a.used, 0);
        size_t before = a.overflow;
        assert_int_equal(pg_codec_pb_parse_reference(&a, msg, msg_len, &out, &f,
                                                     e, sizeof(e)),
                         PG_REJ_MALFORMED);
        assert_true(a.overflow > before);

        /* an arena in use keeps what was there before */
        static unsigned char mid[PG_PB_ARENA_MIN + 256];
        pg_pb_arena_init(&a, mid, sizeof(mid));
        a.used = 200;
        assert_int_equal(pg_codec_pb_parse_reference(&a, msg, msg_len, &out, &f,
                                                     e, sizeof(e)),
                         PG_REJ_NONE);
        assert_int_equal(a.used, 200);
        /* many records through one arena without a reset */
        pg_pb_arena_init(&a, mid, sizeof(mid));
        for (int i = 0; i < 1000; i++)
                assert_int_equal(pg_codec_pb_parse_reference(
                                     &a, msg, msg_len, &out, &f, e, sizeof(e)),
                                 PG_REJ_NONE);
        assert_int_equal(a.overflow, 0);
        /* a zero-size arena */
        pg_pb_arena_init(&a, NULL, 0);
        assert_int_equal(pg_codec_pb_parse_reference(&a, msg, msg_len, &out, &f,
                                                     e, sizeof(e)),
                         PG_REJ_MALFORMED);
        assert_true(a.overflow > 0);
}

/* ------------------------------------------------------------------ */
/* Outputs                                                              */

static void alert_roundtrip(void **state)
{
        pg_alert_t a;
        memset(&a, 0, sizeof(a));
        strcpy(a.alert_id, "al-0123456789abcdef0123456789abcdef");
        a.rule_id = "retry";
        a.rule_version = "2026-01-02";
        a.detector = "retry_duplicate";
        a.finding = "retry_duplicate";
        a.severity = "high";
        a.mode = "enforce";
        a.merchant_id = "M1";
        a.terminal_id = "TID1";
        a.txn_ids[0] = "T2";
        a.txn_ids[1] = "T1";
        a.txn_ids[2] = NULL; /* written as "" */
        a.n_txn_ids = 3;
        a.amount = 1000;
        a.currency = "EUR";
        a.pan_masked = "622848******1234";
        snprintf(a.reason, sizeof(a.reason), "same stan %s", "000123");
        a.event_time = 1763805600123LL;
        a.detected_at = 1763805601000LL;
        uint8_t b[PG_PB_OUT_MAX];
        int n = pg_codec_pb_alert(b, sizeof(b), &a);
        assert_true(n > 0);
        Posguard__V1__Alert *m =
            posguard__v1__alert__unpack(NULL, (size_t)n, b);
        assert_non_null(m);
        assert_string_equal(m->alert_id, a.alert_id);
        assert_string_equal(m->rule_id, "retry");
        assert_string_equal(m->rule_version, "2026-01-02");
        assert_string_equal(m->detector, "retry_duplicate");
        assert_string_equal(m->finding, "retry_duplicate");
        assert_string_equal(m->severity, "high");
        assert_string_equal(m->mode, "enforce");
        assert_string_equal(m->merchant_id, "M1");
        assert_string_equal(m->terminal_id, "TID1");
        assert_int_equal(m->n_txn_ids, 3);
        assert_string_equal(m->txn_ids[0], "T2");
        assert_string_equal(m->txn_ids[1], "T1");
        assert_string_equal(m->txn_ids[2], "");
        assert_int_equal(m->amount, 1000);
        assert_string_equal(m->currency, "EUR");
        assert_string_equal(m->pan_masked, "622848******1234");
        assert_string_equal(m->reason, "same stan 000123");
        assert_int_equal(m->event_time, 1763805600123LL);
        assert_int_equal(m->detected_at, 1763805601000LL);
        posguard__v1__alert__free_unpacked(m, NULL);

        /* invalid UTF-8 becomes U+FFFD; no pan_masked is ""; a reason that
         * fills its array is cut at the array */
        a.rule_id = "r\xff";
        a.pan_masked = NULL;
        memset(a.reason, 'z', sizeof(a.reason));
        a.n_txn_ids = 99; /* capped */
        for (int i = 0; i <= PG_MAX_RELATED; i++)
                a.txn_ids[i] = "T";
        n = pg_codec_pb_alert(b, sizeof(b), &a);
        assert_true(n > 0);
        m = posguard__v1__alert__unpack(NULL, (size_t)n, b);
        assert_non_null(m);
        assert_string_equal(m->rule_id, "r\xef\xbf\xbd");
        assert_string_equal(m->pan_masked, "");
        assert_int_equal(strlen(m->reason), sizeof(a.reason));
        assert_int_equal(m->n_txn_ids, PG_MAX_RELATED + 1);
        posguard__v1__alert__free_unpacked(m, NULL);

        /* too small: -1, nothing written past size */
        memset(b, 0xEE, sizeof(b));
        assert_int_equal(pg_codec_pb_alert(b, (size_t)n - 1, &a), -1);
        for (int i = n - 1; i < (int)sizeof(b); i++)
                assert_int_equal(b[i], 0xEE);
        assert_int_equal(pg_codec_pb_alert(b, (size_t)n, &a), n);
        assert_int_equal(pg_codec_pb_alert(NULL, 100, &a), -1);
}

static void refund_roundtrip(void **state)
{
        pg_refund_t r;
        memset(&r, 0, sizeof(r));
        strcpy(r.refund_id, "rf-0123456789abcdef0123456789abcdef");
        strcpy(r.alert_id, "al-0123456789abcdef0123456789abcdef");
        r.rule_id = "retry";
        r.txn_id = "T2";
        r.rrn = "R2";
        r.merchant_id = "M1";
        r.terminal_id = "TID1";
        r.card_token = "tok_abc";
        r.amount = 1000;
        r.currency = "EUR";
        r.reason = "duplicate";
        r.decided_at = 1763805720123LL;
        uint8_t b[PG_PB_OUT_MAX];
        int n = pg_codec_pb_refund(b, sizeof(b), &r);
        assert_true(n > 0);
        Posguard__V1__RefundCommand *m =
            posguard__v1__refund_command__unpack(NULL, (size_t)n, b);
        assert_non_null(m);
        assert_string_equal(m->refund_id, r.refund_id);
        assert_string_equal(m->alert_id, r.alert_id);
        assert_string_equal(m->rule_id, "retry");
        assert_string_equal(m->txn_id, "T2");
        assert_string_equal(m->rrn, "R2");
        assert_string_equal(m->merchant_id, "M1");
        assert_string_equal(m->terminal_id, "TID1");
        assert_string_equal(m->card_token, "tok_abc");
        assert_int_equal(m->amount, 1000);
        assert_string_equal(m->currency, "EUR");
        assert_string_equal(m->reason, "duplicate");
        assert_int_equal(m->decided_at, 1763805720123LL);
        posguard__v1__refund_command__free_unpacked(m, NULL);
        memset(b, 0xEE, sizeof(b));
        assert_int_equal(pg_codec_pb_refund(b, (size_t)n - 1, &r), -1);
        for (int i = n - 1; i < (int)sizeof(b); i++)
                assert_int_equal(b[i], 0xEE);
}

static bool has(const void *hay, size_t n, const char *needle)
{
        size_t k = strlen(needle);
        for (size_t i = 0; i + k <= n; i++)
                if (!memcmp((const char *)hay + i, needle, k))
                        return true;
        return false;
}

static void dead_letter_masks_cards(void **state)
{
        /* a record with a clear card number as its token */
        base_init();
        set_str(PG_F_CARD_TOKEN, "4111111111111111");
        pack_m(NULL, 0);
        assert_true(has(msg, msg_len, "4111111111111111"));
        assert_int_equal(parse(msg, msg_len), PG_REJ_CLEAR_PAN);
        pg_source_pos_t pos = {"pos.records", 3, 123456789, 1763805600000LL};
        uint8_t b[PG_PB_OUT_MAX];
        int n = pg_codec_pb_reject(b, sizeof(b), PG_REJ_CLEAR_PAN, field,
                                   "detail 5500000000000004 here", &pos, msg,
                                   msg_len);
        assert_true(n > 0);
        assert_false(has(b, (size_t)n, "4111111111111111"));
        assert_false(has(b, (size_t)n, "5500000000000004"));
        Posguard__V1__DeadLetter *m =
            posguard__v1__dead_letter__unpack(NULL, (size_t)n, b);
        assert_non_null(m);
        assert_string_equal(m->reason, "clear_pan");
        assert_string_equal(m->field, "card_token");
        assert_string_equal(m->detail, "detail 550000******0004 here");
        assert_string_equal(m->source_topic, "pos.records");
        assert_int_equal(m->source_partition, 3);
        assert_int_equal(m->source_offset, 123456789);
        assert_int_equal(
            m->_source_timestamp_case,
            POSGUARD__V1__DEAD_LETTER___SOURCE_TIMESTAMP_SOURCE_TIMESTAMP);
        assert_int_equal(m->source_timestamp, 1763805600000LL);
        assert_int_equal(m->payload_size, msg_len);
        assert_int_equal(m->payload.len, msg_len);
        assert_true(has(m->payload.data, m->payload.len, "411111******1111"));
        /* only the digits changed: the payload still decodes */
        Posguard__V1__Record *rm =
            posguard__v1__record__unpack(NULL, m->payload.len, m->payload.data);
        assert_non_null(rm);
        assert_string_equal(rm->card_token, "411111******1111");
        assert_string_equal(rm->txn_id, "T1");
        posguard__v1__record__free_unpacked(rm, NULL);
        posguard__v1__dead_letter__free_unpacked(m, NULL);

        /* a card number right before a tag that is an ASCII digit (stan's
         * tag is '2'): the whole-payload run "41111111111111112" fails
         * Luhn, the field-by-field pass still finds the card number */
        base_init();
        set_str(PG_F_TERMINAL_ID, "4111111111111111");
        set_str(PG_F_STAN, "000000000000000000000000000000000000000000000000"
                           "0"); /* 49 bytes: length byte '1' */
        pack_m(NULL, 0);
        assert_true(has(msg, msg_len, "41111111111111112"));
        n = pg_codec_pb_reject(b, sizeof(b), PG_REJ_CLEAR_PAN, NULL, NULL, NULL,
                               msg, msg_len);
        assert_true(n > 0);
        assert_false(has(b, (size_t)n, "4111111111111111"));
        m = posguard__v1__dead_letter__unpack(NULL, (size_t)n, b);
        assert_non_null(m);
        assert_string_equal(m->field, "");
        assert_string_equal(m->source_topic, "");
        assert_int_equal(m->_source_timestamp_case, 0);
        posguard__v1__dead_letter__free_unpacked(m, NULL);

        /* a long payload is cut at PG_JSON_RAW_MAX; a card number that the
         * cut splits is still masked */
        static char raw[3000];
        memset(raw, 'a', sizeof(raw));
        memcpy(raw + PG_JSON_RAW_MAX - 8, "4111111111111111", 16);
        const char *junk = "garbage \xff\x01 4111111111111111!";
        memcpy(raw + 10, junk, strlen(junk));
        pos.timestamp_ms = -1;
        n = pg_codec_pb_reject(b, sizeof(b), PG_REJ_MALFORMED, NULL,
                               "bad \xff detail\x01", &pos, raw, sizeof(raw));
        assert_true(n > 0 && n <= PG_PB_OUT_MAX);
        m = posguard__v1__dead_letter__unpack(NULL, (size_t)n, b);
        assert_non_null(m);
        assert_int_equal(m->payload.len, PG_JSON_RAW_MAX);
        assert_int_equal(m->payload_size, sizeof(raw));
        assert_false(has(m->payload.data, m->payload.len, "41111111"));
        assert_true(has(m->payload.data, m->payload.len, "411111**"));
        assert_true(has(m->payload.data, m->payload.len,
                        "garbage \xff\x01 411111******1111!"));
        assert_string_equal(m->detail, "bad ? detail?");
        assert_int_equal(m->_source_timestamp_case, 0);
        posguard__v1__dead_letter__free_unpacked(m, NULL);

        /* the largest envelope fits PG_PB_OUT_MAX */
        static char longtxt[5000];
        memset(longtxt, 'd', sizeof(longtxt) - 1);
        pg_source_pos_t lp = {longtxt, INT32_MAX, INT64_MAX, INT64_MAX};
        n = pg_codec_pb_reject(b, sizeof(b), PG_REJ_MALFORMED, longtxt, longtxt,
                               &lp, raw, sizeof(raw));
        assert_true(n > 0 && n <= PG_PB_OUT_MAX);
        assert_int_equal(pg_codec_pb_reject(b, 10, PG_REJ_MALFORMED, longtxt,
                                            longtxt, &lp, raw, sizeof(raw)),
                         -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(schema_matches_field_table),
            cmocka_unit_test(roundtrip_full_and_minimal),
            cmocka_unit_test(encoder_writes_the_schema),
            cmocka_unit_test(base_is_valid),
            cmocka_unit_test(missing_each_required),
            cmocka_unit_test(wrong_wire_type_each_field),
            cmocka_unit_test(string_size_boundary),
            cmocka_unit_test(bad_characters),
            cmocka_unit_test(enum_values),
            cmocka_unit_test(original_rrn_rules),
            cmocka_unit_test(amount_rules),
            cmocka_unit_test(currency_rules),
            cmocka_unit_test(time_rules),
            cmocka_unit_test(card_data_rules),
            cmocka_unit_test(duplicate_fields),
            cmocka_unit_test(reject_order),
            cmocka_unit_test(malformed_messages),
            cmocka_unit_test(truncated_and_garbage),
            cmocka_unit_test(decoders_agree),
            cmocka_unit_test(json_and_pb_agree),
            cmocka_unit_test(arena_bound_and_overflow),
            cmocka_unit_test(alert_roundtrip),
            cmocka_unit_test(refund_roundtrip),
            cmocka_unit_test(dead_letter_masks_cards),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
