/*
 * test_codec_json.c - the JSON record parser, the alert/refund/reject
 * encoders, RFC 3339 time parsing/formatting and the record field table.
 *
 * Every reject reason is exercised with the field it must name; the reject
 * order (codec_json.c, top of file) is checked where two problems meet; the
 * card data rule (no card_token / pan_masked value in a message, card-like
 * digit runs masked in dead-letter entries) is checked on the output text.
 * Encoder output is read back with jsmn, independently of the parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "codec_json.h"

/* ------------------------------------------------------------------ */
/* Building lines: a valid purchase with one or two fields changed      */

typedef struct kv {
        const char *k;
        const char *v; /* raw JSON text */
} kv_t;

static const kv_t base[] = {
    {"txn_id", "\"T1\""},
    {"kind", "\"purchase\""},
    {"status", "\"approved\""},
    {"merchant_id", "\"M1\""},
    {"terminal_id", "\"TID1\""},
    {"stan", "\"000123\""},
    {"rrn", "\"R1\""},
    {"card_token", "\"tok_abc\""},
    {"amount", "1000"},
    {"currency", "\"EUR\""},
    {"event_time", "\"2025-11-22T10:00:00.123Z\""},
};
#define N_BASE (sizeof(base) / sizeof(base[0]))

static char linebuf[16384];

/*
 * The base record with each (name, raw value) of ov applied: a base field
 * gets the value (NULL removes it), another name is appended.
 */
static const char *build(const kv_t *ov, size_t nov)
{
        size_t o = 0;
        bool used[8] = {false};
        linebuf[o++] = '{';
        bool first = true;
        for (size_t i = 0; i < N_BASE; i++) {
                const char *v = base[i].v;
                for (size_t k = 0; k < nov; k++)
                        if (!strcmp(ov[k].k, base[i].k)) {
                                v = ov[k].v;
                                used[k] = true;
                        }
                if (!v)
                        continue;
                o += (size_t)snprintf(linebuf + o, sizeof(linebuf) - o,
                                      "%s\"%s\":%s", first ? "" : ",",
                                      base[i].k, v);
                first = false;
        }
        for (size_t k = 0; k < nov; k++) {
                if (used[k] || !ov[k].v)
                        continue;
                o += (size_t)snprintf(linebuf + o, sizeof(linebuf) - o,
                                      "%s\"%s\":%s", first ? "" : ",", ov[k].k,
                                      ov[k].v);
                first = false;
        }
        snprintf(linebuf + o, sizeof(linebuf) - o, "}");
        return linebuf;
}

static const char *with(const char *k, const char *v)
{
        kv_t ov[1] = {{k, v}};
        return build(ov, 1);
}

static const char *with2(const char *k1, const char *v1, const char *k2,
                         const char *v2)
{
        kv_t ov[2] = {{k1, v1}, {k2, v2}};
        return build(ov, 2);
}

/* ------------------------------------------------------------------ */
/* Parsing helpers                                                      */

static pg_record_t rec;
static const char *field;
static char err[256];

static pg_reject_t parse_n(const char *s, size_t n)
{
        memset(&rec, 0xA5, sizeof(rec));
        field = "unset";
        memset(err, 'Z', sizeof(err));
        pg_reject_t r =
            pg_codec_json_parse(s, n, &rec, &field, err, sizeof(err));
        /* the message is always NUL-terminated */
        assert_non_null(memchr(err, '\0', sizeof(err)));
        return r;
}

static void expect_ok_n(const char *s, size_t n, int line)
{
        pg_reject_t r = parse_n(s, n);
        if (r != PG_REJ_NONE)
                fail_msg("line %d: rejected (%s, %s): %s\n  input: %.*s", line,
                         pg_reject_name(r), field ? field : "-", err, (int)n,
                         s);
        assert_null(field);
        assert_string_equal(err, "");
}
#define expect_ok(s) expect_ok_n((s), strlen(s), __LINE__)

/* Rejected with code, naming fname (NULL: no field); the message names the
 * field first. */
static void expect_rej_n(const char *s, size_t n, pg_reject_t code,
                         const char *fname, int line)
{
        pg_reject_t r = parse_n(s, n);
        if (r != code || (fname == NULL) != (field == NULL) ||
            (fname && strcmp(fname, field)))
                fail_msg("line %d: expected %s/%s, got %s/%s (%s)\n  "
                         "input: %.*s",
                         line, pg_reject_name(code), fname ? fname : "-",
                         pg_reject_name(r), field ? field : "-", err,
                         (int)(n > 300 ? 300 : n), s);
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
#define expect_rej(s, code, f)                                                 \
        expect_rej_n((s), strlen(s), (code), (f), __LINE__)

/* ------------------------------------------------------------------ */
/* Valid records                                                        */

static void full_valid_record(void **state)
{
        const char *s =
            "{\"txn_id\":\"TX-0001\",\"kind\":\"refund\",\"status\":"
            "\"declined\",\"merchant_id\":\"MID 42\",\"terminal_id\":"
            "\"TID-7\",\"stan\":\"004711\",\"rrn\":\"123456789012\","
            "\"card_token\":\"tok_9f8e\",\"pan_masked\":\"622848******1234\","
            "\"amount\":12345,\"currency\":\"CNY\",\"expected_amount\":0,"
            "\"order_id\":\"ORD-9\",\"original_rrn\":\"123456789000\","
            "\"event_time\":\"2025-11-22T10:00:00.123Z\",\"entry_mode\":"
            "\"contactless\",\"retransmission\":true}";
        rec.seq = 0;
        memset(&rec, 0, sizeof(rec));
        rec.seq = 77;
        const char *f = "x";
        char e[64];
        assert_int_equal(
            pg_codec_json_parse(s, strlen(s), &rec, &f, e, sizeof(e)),
            PG_REJ_NONE);
        assert_null(f);
        assert_int_equal(rec.seq, 77); /* seq is not touched */
        assert_string_equal(rec.txn_id.s, "TX-0001");
        assert_int_equal(rec.txn_id.len, 7);
        assert_int_equal(rec.kind, PG_KIND_REFUND);
        assert_int_equal(rec.status, PG_STATUS_DECLINED);
        assert_string_equal(rec.merchant_id.s, "MID 42");
        assert_string_equal(rec.terminal_id.s, "TID-7");
        assert_string_equal(rec.stan.s, "004711");
        assert_string_equal(rec.rrn.s, "123456789012");
        assert_string_equal(rec.card_token.s, "tok_9f8e");
        assert_string_equal(rec.pan_masked.s, "622848******1234");
        assert_int_equal(rec.amount, 12345);
        assert_string_equal(rec.currency.s, "CNY");
        assert_true(rec.has_expected);
        assert_int_equal(rec.expected_amount, 0);
        assert_string_equal(rec.order_id.s, "ORD-9");
        assert_string_equal(rec.original_rrn.s, "123456789000");
        assert_int_equal(rec.event_time, 1763805600123LL);
        assert_int_equal(rec.entry_mode, PG_ENTRY_CONTACTLESS);
        assert_true(rec.retransmission);
}

static void minimal_valid_record(void **state)
{
        expect_ok(build(NULL, 0));
        assert_string_equal(rec.txn_id.s, "T1");
        assert_int_equal(rec.kind, PG_KIND_PURCHASE);
        assert_int_equal(rec.status, PG_STATUS_APPROVED);
        assert_int_equal(rec.amount, 1000);
        assert_int_equal(rec.event_time, 1763805600123LL);
        /* optional fields absent */
        assert_int_equal(rec.pan_masked.len, 0);
        assert_string_equal(rec.pan_masked.s, "");
        assert_int_equal(rec.order_id.len, 0);
        assert_int_equal(rec.original_rrn.len, 0);
        assert_false(rec.has_expected);
        assert_int_equal(rec.expected_amount, 0);
        assert_int_equal(rec.entry_mode, PG_ENTRY_NONE);
        assert_false(rec.retransmission);
        /* seq survives the parse (parse_n filled it with 0xA5) */
        assert_int_equal(rec.seq, 0xA5A5A5A5A5A5A5A5ULL);
        /* the bytes after each string's NUL are zero: records compare
         * equal as memory */
        assert_int_equal(rec.txn_id.s[10], 0);
}

static void whitespace_and_crlf(void **state)
{
        expect_ok(" \t{ \"txn_id\" : \"T1\" , \"kind\":\"purchase\",\"status\""
                  ":\"approved\",\"merchant_id\":\"M\",\"terminal_id\":\"T\","
                  "\"stan\":\"1\",\"rrn\":\"R\",\"card_token\":\"t\","
                  "\"amount\":\n1,\"currency\":\"EUR\",\"event_time\":0 } "
                  "\r");
        assert_int_equal(rec.event_time, 0);
}

static void null_optional_is_absent(void **state)
{
        static const char *const opt[] = {"pan_masked", "expected_amount",
                                          "order_id", "entry_mode",
                                          "retransmission"};
        for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
                expect_ok(with(opt[i], "null"));
        kv_t ov[5] = {{"pan_masked", "\"\""},
                      {"order_id", "\"\""},
                      {"entry_mode", "\"\""},
                      {"expected_amount", "null"},
                      {"retransmission", "false"}};
        expect_ok(build(ov, 5));
        assert_int_equal(rec.pan_masked.len, 0);
        assert_int_equal(rec.order_id.len, 0);
        assert_int_equal(rec.entry_mode, PG_ENTRY_NONE);
        assert_false(rec.has_expected);
        assert_false(rec.retransmission);
}

/* ------------------------------------------------------------------ */
/* Missing, null, type, empty, oversize                                 */

static const char *const required[] = {
    "txn_id", "kind",       "status", "merchant_id", "terminal_id", "stan",
    "rrn",    "card_token", "amount", "currency",    "event_time",
};
#define N_REQUIRED (sizeof(required) / sizeof(required[0]))

static void missing_each_required(void **state)
{
        for (size_t i = 0; i < N_REQUIRED; i++) {
                expect_rej(with(required[i], NULL), PG_REJ_MISSING,
                           required[i]);
                expect_rej(with(required[i], "null"), PG_REJ_MISSING,
                           required[i]);
        }
}

static void wrong_type_each_field(void **state)
{
        static const kv_t cases[] = {
            {"txn_id", "1"},
            {"kind", "1"},
            {"status", "false"},
            {"merchant_id", "[\"M1\"]"},
            {"terminal_id", "{}"},
            {"stan", "123"},
            {"rrn", "123456789012"},
            {"card_token", "true"},
            {"pan_masked", "1234"},
            {"amount", "\"100\""},
            {"amount", "[100]"},
            {"amount", "true"},
            {"currency", "978"},
            {"expected_amount", "\"5\""},
            {"expected_amount", "\"\""},
            {"order_id", "12345"},
            {"event_time", "true"},
            {"event_time", "{\"ms\":1}"},
            {"event_time", "[1]"},
            {"entry_mode", "3"},
            {"retransmission", "\"yes\""},
            {"retransmission", "1"},
            {"retransmission", "\"\""},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                expect_rej(with(cases[i].k, cases[i].v), PG_REJ_TYPE,
                           cases[i].k);
        /* original_rrn is typed only where it is required */
        expect_rej(with2("kind", "\"void\"", "original_rrn", "5"), PG_REJ_TYPE,
                   "original_rrn");
        expect_rej(with("amount", "\"100\""), PG_REJ_TYPE, "amount");
        assert_non_null(strstr(err, "string"));
}

static void empty_required_strings(void **state)
{
        static const char *const f[] = {
            "txn_id", "kind", "status",     "merchant_id", "terminal_id",
            "stan",   "rrn",  "card_token", "currency",    "event_time"};
        for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
                expect_rej(with(f[i], "\"\""), PG_REJ_EMPTY, f[i]);
}

/* A JSON string of n copies of unit. */
static const char *rep(const char *unit, int n)
{
        static char b[2][1024];
        static int w;
        char *o = b[w ^= 1];
        size_t k = 0;
        o[k++] = '"';
        for (int i = 0; i < n; i++) {
                size_t u = strlen(unit);
                memcpy(o + k, unit, u);
                k += u;
        }
        o[k++] = '"';
        o[k] = '\0';
        return o;
}

static void string_size_boundary(void **state)
{
        static const char *const f[] = {"txn_id",  "merchant_id", "terminal_id",
                                        "stan",    "rrn",         "card_token",
                                        "order_id"};
        for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
                expect_ok(with(f[i], rep("a", 64)));
                expect_rej(with(f[i], rep("a", 65)), PG_REJ_OVERSIZE, f[i]);
        }
        expect_ok(with("txn_id", rep("a", 64)));
        assert_int_equal(rec.txn_id.len, 64);
        assert_int_equal(strlen(rec.txn_id.s), 64);
        /* measured in bytes after unescaping: 32 x U+00E9 is 64 bytes */
        expect_ok(with("order_id", rep("\xc3\xa9", 32)));
        assert_int_equal(rec.order_id.len, 64);
        expect_rej(with("order_id", rep("\xc3\xa9", 33)), PG_REJ_OVERSIZE,
                   "order_id");
        expect_ok(with("order_id", rep("\\u00e9", 32)));
        assert_int_equal(rec.order_id.len, 64);
        assert_memory_equal(rec.order_id.s, "\xc3\xa9", 2);
        expect_rej(with("order_id", rep("\\u00e9", 33)), PG_REJ_OVERSIZE,
                   "order_id");
        /* 384 bytes of text, 64 bytes of value */
        expect_ok(with("txn_id", rep("\\u0041", 64)));
        assert_int_equal(rec.txn_id.len, 64);
        assert_int_equal(rec.txn_id.s[63], 'A');
        /* a 4-byte character that would cross the limit */
        char b[128];
        snprintf(b, sizeof(b), "\"%.*s\\ud83d\\ude00\"", 60, rep("a", 64) + 1);
        expect_ok(with("txn_id", b));
        assert_int_equal(rec.txn_id.len, 64);
        assert_memory_equal(rec.txn_id.s + 60, "\xf0\x9f\x98\x80", 4);
        snprintf(b, sizeof(b), "\"%.*s\\ud83d\\ude00\"", 61, rep("a", 64) + 1);
        expect_rej(with("txn_id", b), PG_REJ_OVERSIZE, "txn_id");
        /* a string event_time and a pan_masked too */
        expect_rej(with("event_time", rep("1", 65)), PG_REJ_OVERSIZE,
                   "event_time");
        expect_rej(with("pan_masked", rep("*", 65)), PG_REJ_OVERSIZE,
                   "pan_masked");
        /* oversize wins over control characters (checked after) */
        expect_rej(with("order_id", rep("\\n", 65)), PG_REJ_OVERSIZE,
                   "order_id");
}

/* ------------------------------------------------------------------ */
/* Field rules: enum, amount, currency, time, card data, characters     */

static void enum_values(void **state)
{
        expect_rej(with("kind", "\"sale\""), PG_REJ_ENUM, "kind");
        expect_rej(with("kind", "\"Purchase\""), PG_REJ_ENUM, "kind");
        expect_rej(with("status", "\"ok\""), PG_REJ_ENUM, "status");
        expect_rej(with("entry_mode", "\"magstripe\""), PG_REJ_ENUM,
                   "entry_mode");
        static const char *const modes[] = {"chip", "swipe", "contactless",
                                            "keyed", "ecom"};
        for (size_t i = 0; i < 5; i++) {
                char b[32];
                snprintf(b, sizeof(b), "\"%s\"", modes[i]);
                expect_ok(with("entry_mode", b));
                assert_int_equal(rec.entry_mode, (int)i + 1);
        }
        expect_ok(with2("kind", "\"void\"", "original_rrn", "\"R0\""));
        assert_int_equal(rec.kind, PG_KIND_VOID);
        assert_string_equal(rec.original_rrn.s, "R0");
        expect_ok(with2("kind", "\"reversal\"", "original_rrn", "\"R0\""));
        assert_int_equal(rec.kind, PG_KIND_REVERSAL);
        expect_ok(with("status", "\"error\""));
        assert_int_equal(rec.status, PG_STATUS_ERROR);
}

static void original_rrn_rules(void **state)
{
        expect_rej(with("kind", "\"refund\""), PG_REJ_MISSING, "original_rrn");
        expect_rej(with2("kind", "\"refund\"", "original_rrn", "\"\""),
                   PG_REJ_EMPTY, "original_rrn");
        /* a purchase ignores it, whatever it holds */
        expect_ok(with("original_rrn", "5"));
        assert_int_equal(rec.original_rrn.len, 0);
}

static void amount_rules(void **state)
{
        expect_rej(with("amount", "0"), PG_REJ_AMOUNT, "amount");
        expect_rej(with("amount", "-5"), PG_REJ_AMOUNT, "amount");
        expect_rej(with("amount", "10.5"), PG_REJ_AMOUNT, "amount");
        expect_rej(with("amount", "1e3"), PG_REJ_AMOUNT, "amount");
        expect_rej(with("amount", "9223372036854775808"), PG_REJ_AMOUNT,
                   "amount");
        expect_ok(with("amount", "9223372036854775807"));
        assert_int_equal(rec.amount, INT64_MAX);
        expect_rej(with("expected_amount", "-1"), PG_REJ_AMOUNT,
                   "expected_amount");
        expect_ok(with("expected_amount", "0"));
        assert_true(rec.has_expected);
        expect_rej(with("amount", "01"), PG_REJ_MALFORMED, NULL);
}

static void currency_rules(void **state)
{
        expect_rej(with("currency", "\"eur\""), PG_REJ_CURRENCY, "currency");
        expect_rej(with("currency", "\"EURO\""), PG_REJ_CURRENCY, "currency");
        expect_rej(with("currency", "\"E1R\""), PG_REJ_CURRENCY, "currency");
        expect_ok(with("currency", "\"USD\""));
}

static void time_rules(void **state)
{
        expect_ok(with("event_time", "\"2025-11-22T11:00:00.123+01:00\""));
        assert_int_equal(rec.event_time, 1763805600123LL);
        expect_ok(with("event_time", "\"2025-11-22T10:00:00Z\""));
        assert_int_equal(rec.event_time, 1763805600000LL);
        expect_ok(with("event_time", "1763805600123"));
        assert_int_equal(rec.event_time, 1763805600123LL);
        expect_rej(with("event_time", "\"2025-02-30T10:00:00Z\""), PG_REJ_TIME,
                   "event_time");
        expect_rej(with("event_time", "\"2025-11-22 10:00:00\""), PG_REJ_TIME,
                   "event_time");
        expect_rej(with("event_time", "\"yesterday\""), PG_REJ_TIME,
                   "event_time");
        expect_rej(with("event_time", "-1"), PG_REJ_TIME, "event_time");
        expect_rej(with("event_time", "1.5"), PG_REJ_TIME, "event_time");
        expect_rej(with("event_time", "253402300800000"), PG_REJ_TIME,
                   "event_time");
}

static void time_format_roundtrip(void **state)
{
        char b[40];
        assert_string_equal(pg_time_format(0, b, sizeof(b)),
                            "1970-01-01T00:00:00.000Z");
        assert_string_equal(pg_time_format(1763805600123LL, b, sizeof(b)),
                            "2025-11-22T10:00:00.123Z");
        assert_string_equal(pg_time_format(PG_TIME_MAX_MS, b, sizeof(b)),
                            "9999-12-31T23:59:59.999Z");
        /* every 37 hours and 1 ms over 60 years, and leap days */
        for (int64_t ms = 0; ms < INT64_C(1900000000000);
             ms += INT64_C(133200001)) {
                int64_t back = -1;
                pg_time_format(ms, b, sizeof(b));
                assert_int_equal(pg_time_parse(b, strlen(b), &back), 0);
                assert_int_equal(back, ms);
        }
        int64_t v;
        assert_int_equal(pg_time_parse("2024-02-29T00:00:00Z", 20, &v), 0);
        assert_int_not_equal(pg_time_parse("2023-02-29T00:00:00Z", 20, &v), 0);
}

static void card_data_rules(void **state)
{
        /* a Luhn-valid 16-digit number as the token */
        expect_rej(with("card_token", "\"4111111111111111\""), PG_REJ_CLEAR_PAN,
                   "card_token");
        assert_null(strstr(err, "4111111111111111"));
        /* digits that fail Luhn are a possible token */
        expect_ok(with("card_token", "\"4111111111111112\""));
        expect_rej(with("pan_masked", "\"4111111111111111\""), PG_REJ_CLEAR_PAN,
                   "pan_masked");
        assert_null(strstr(err, "4111111111111111"));
        expect_rej(with("pan_masked", "\"4111111*11111111\""), PG_REJ_CLEAR_PAN,
                   "pan_masked");
        expect_ok(with("pan_masked", "\"411111******1111\""));
        expect_ok(with("pan_masked", "\"****1111\""));
        expect_ok(with("pan_masked", "\"411111xxxxxx1111\""));
}

static void bad_characters(void **state)
{
        expect_rej(with("merchant_id", "\"M\\u0001\""), PG_REJ_BAD_CHARS,
                   "merchant_id");
        expect_rej(with("order_id", "\"a\\u007f\""), PG_REJ_BAD_CHARS,
                   "order_id");
        /* raw control character inside a string, invalid UTF-8 */
        expect_rej(with("merchant_id", "\"M\x01\""), PG_REJ_BAD_CHARS,
                   "merchant_id");
        expect_rej(with("merchant_id", "\"M\xff\""), PG_REJ_BAD_CHARS, NULL);
        expect_rej(with("merchant_id", "\"\\ud800\""), PG_REJ_BAD_CHARS,
                   "merchant_id");
        /* escapes decode */
        expect_ok(with("merchant_id", "\"a\\\"b\\\\c\\/d\""));
        assert_string_equal(rec.merchant_id.s, "a\"b\\c/d");
}

static void malformed_lines(void **state)
{
        static const char *const bad[] = {
            "",
            "   ",
            "[]",
            "null",
            "{",
            "{\"txn_id\" \"T1\"}",
            "{\"txn_id\":\"T1\",}",
            "{\"txn_id\":tru}",
            "{\"a\":[1,,2]}",
            "{\"a\":1}{\"b\":2}",
            "{\"a\":\"\\x41\"}",
            "{'txn_id':'T1'}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                expect_rej(bad[i], PG_REJ_MALFORMED, NULL);
        /* deep nesting in an unknown field is bounded, not a crash */
        static char deep[4096];
        size_t o = 0;
        o += (size_t)snprintf(deep, sizeof(deep), "{\"x\":");
        for (int i = 0; i < 300; i++)
                deep[o++] = '[';
        for (int i = 0; i < 300; i++)
                deep[o++] = ']';
        deep[o++] = '}';
        deep[o] = '\0';
        expect_rej(deep, PG_REJ_MALFORMED, NULL);
        /* unknown fields, nested or not, are ignored */
        expect_ok(with("extra", "{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}"));
        /* NUL byte inside the line */
        const char nul[] = "{\"txn_id\":\"T\0\"}";
        expect_rej_n(nul, sizeof(nul) - 1, PG_REJ_BAD_CHARS, NULL, __LINE__);
        /* ... and outside one */
        const char nul2[] = "{\"txn_id\":\"T\",\0}";
        expect_rej_n(nul2, sizeof(nul2) - 1, PG_REJ_MALFORMED, NULL, __LINE__);
}

static void line_too_long(void **state)
{
        size_t n = PG_JSON_MAX_LINE + 1;
        char *s = malloc(n);
        assert_non_null(s);
        memset(s, ' ', n);
        s[0] = '{';
        s[n - 1] = '}';
        expect_rej_n(s, n, PG_REJ_LINE_TOO_LONG, NULL, __LINE__);
        free(s);
}

static void duplicate_fields(void **state)
{
        expect_ok(with("zz", "1")); /* an unknown key, once */
        const char *d = "{\"txn_id\":\"T1\",\"txn_id\":\"T2\"}";
        expect_rej(d, PG_REJ_DUPLICATE_FIELD, "txn_id");
        /* compared after unescaping */
        const char *e = "{\"amount\":1,\"\\u0061mount\":2}";
        expect_rej(e, PG_REJ_DUPLICATE_FIELD, "amount");
        /* an unknown key repeated */
        const char *u = "{\"zz\":1,\"zz\":2}";
        expect_rej(u, PG_REJ_DUPLICATE_FIELD, NULL);
}

/* ------------------------------------------------------------------ */
/* Encoders, read back with jsmn                                        */

/* The value of key k in the JSON object s, copied into out (strings
 * without quotes, escapes kept); false when absent. */
static bool get_key(const char *s, const char *k, char *out, size_t size)
{
        jsmn_parser p;
        jsmntok_t t[128];
        jsmn_init(&p);
        int n = jsmn_parse(&p, s, strlen(s), t, 128);
        assert_true(n > 0);
        assert_int_equal(t[0].type, JSMN_OBJECT);
        for (int i = 1; i < n; i++) {
                if (t[i].parent != 0 || t[i].type != JSMN_STRING)
                        continue;
                int kl = t[i].end - t[i].start;
                if ((size_t)kl != strlen(k) || memcmp(s + t[i].start, k, kl))
                        continue;
                const jsmntok_t *v = &t[i + 1];
                snprintf(out, size, "%.*s", v->end - v->start, s + v->start);
                return true;
        }
        return false;
}

static void alert_encoding(void **state)
{
        pg_alert_t a;
        memset(&a, 0, sizeof(a));
        snprintf(a.alert_id, sizeof(a.alert_id), "al-%032d", 7);
        a.rule_id = "retry-dup";
        a.rule_version = "2025.11.1";
        a.detector = "retry_duplicate";
        a.finding = "retry_duplicate";
        a.severity = "high";
        a.mode = "enforce";
        a.merchant_id = "M\"1";
        a.terminal_id = "T1";
        a.txn_ids[0] = "B";
        a.txn_ids[1] = "A";
        a.n_txn_ids = 2;
        a.amount = 1234;
        a.currency = "EUR";
        a.pan_masked = "411111******1111";
        snprintf(a.reason, sizeof(a.reason), "same stan\n");
        a.event_time = 1763805600123LL;
        a.detected_at = 1763805601000LL;
        char buf[PG_JSON_OUT_MAX];
        int n = pg_codec_json_alert(buf, sizeof(buf), &a);
        assert_true(n > 0);
        assert_int_equal((size_t)n, strlen(buf));
        assert_int_equal(buf[n - 1], '\n');
        assert_non_null(strstr(buf, "{\"type\":\"alert\",\"alert_id\":"));
        char v[256];
        assert_true(get_key(buf, "merchant_id", v, sizeof(v)));
        assert_string_equal(v, "M\\\"1");
        assert_true(get_key(buf, "txn_ids", v, sizeof(v)));
        assert_string_equal(v, "[\"B\",\"A\"]");
        assert_true(get_key(buf, "amount", v, sizeof(v)));
        assert_string_equal(v, "1234");
        assert_true(get_key(buf, "reason", v, sizeof(v)));
        assert_string_equal(v, "same stan\\n");
        assert_true(get_key(buf, "event_time", v, sizeof(v)));
        assert_string_equal(v, "2025-11-22T10:00:00.123Z");
        assert_true(get_key(buf, "pan_masked", v, sizeof(v)));
        /* no pan_masked key when the record had none */
        a.pan_masked = "";
        n = pg_codec_json_alert(buf, sizeof(buf), &a);
        assert_true(n > 0);
        assert_false(get_key(buf, "pan_masked", v, sizeof(v)));
        /* a buffer too small fails cleanly */
        assert_int_equal(pg_codec_json_alert(buf, 20, &a), -1);
        assert_true(strlen(buf) < 20);
}

static void refund_encoding(void **state)
{
        pg_refund_t r;
        memset(&r, 0, sizeof(r));
        snprintf(r.refund_id, sizeof(r.refund_id), "rf-%032d", 1);
        snprintf(r.alert_id, sizeof(r.alert_id), "al-%032d", 1);
        r.rule_id = "retry-dup";
        r.txn_id = "B";
        r.rrn = "R2";
        r.merchant_id = "M1";
        r.terminal_id = "T1";
        r.card_token = "tok";
        r.amount = 500;
        r.currency = "EUR";
        r.reason = "duplicate";
        r.decided_at = 1763805600000LL;
        char buf[PG_JSON_OUT_MAX];
        int n = pg_codec_json_refund(buf, sizeof(buf), &r);
        assert_true(n > 0);
        assert_non_null(strstr(buf, "{\"type\":\"refund\",\"refund_id\":"));
        char v[128];
        assert_true(get_key(buf, "reason", v, sizeof(v)));
        assert_string_equal(v, "duplicate");
        assert_true(get_key(buf, "decided_at", v, sizeof(v)));
        assert_string_equal(v, "2025-11-22T10:00:00.000Z");
        assert_true(get_key(buf, "amount", v, sizeof(v)));
        assert_string_equal(v, "500");
}

static void reject_encoding_masks_cards(void **state)
{
        const char *raw = "{\"card_token\":\"4111111111111111\",\"x\":"
                          "\"4111111111111112\"}";
        char buf[PG_JSON_OUT_MAX];
        int n = pg_codec_json_reject(buf, sizeof(buf), PG_REJ_CLEAR_PAN,
                                     "card_token", "looks like a card", 12, raw,
                                     strlen(raw));
        assert_true(n > 0);
        assert_null(strstr(buf, "4111111111111111"));
        assert_non_null(strstr(buf, "411111"));
        /* not Luhn-valid: kept as is */
        assert_non_null(strstr(buf, "4111111111111112"));
        char v[512];
        assert_true(get_key(buf, "reason", v, sizeof(v)));
        assert_string_equal(v, "clear_pan");
        assert_true(get_key(buf, "line_no", v, sizeof(v)));
        assert_string_equal(v, "12");
        /* a huge raw line is truncated; invalid bytes still yield valid
         * JSON text */
        static char big[8192];
        memset(big, '\xff', sizeof(big));
        n = pg_codec_json_reject(buf, sizeof(buf), PG_REJ_BAD_CHARS, NULL, NULL,
                                 1, big, sizeof(big));
        assert_true(n > 0 && n < PG_JSON_OUT_MAX);
        jsmn_parser p;
        jsmntok_t t[32];
        jsmn_init(&p);
        assert_true(jsmn_parse(&p, buf, (size_t)n, t, 32) > 0);
        assert_true(get_key(buf, "field", v, sizeof(v)));
        assert_string_equal(v, "null");
}

/* ------------------------------------------------------------------ */
/* The field table                                                      */

static void field_table(void **state)
{
        for (int f = 0; f < PG_F__COUNT; f++) {
                const char *n = pg_record_field_name((pg_field_t)f);
                assert_non_null(n);
                assert_int_equal(pg_record_field_lookup(n, strlen(n)), f);
        }
        assert_int_equal(pg_record_field_lookup("nope", 4), -1);
        assert_int_equal(pg_record_field_lookup("amount", 3), -1);
        assert_int_equal(pg_record_field_type(PG_F_AMOUNT), PG_FT_INT);
        assert_int_equal(pg_record_field_type(PG_F_KIND), PG_FT_ENUM);
        assert_int_equal(pg_record_field_type(PG_F_MERCHANT_ID), PG_FT_STRING);
        assert_int_equal(pg_record_field_type(PG_F_RETRANSMISSION), PG_FT_BOOL);
        assert_int_equal(pg_record_enum_lookup(PG_F_KIND, "void", 4),
                         PG_KIND_VOID);
        assert_int_equal(pg_record_enum_lookup(PG_F_STATUS, "void", 4), -1);
        assert_int_equal(pg_record_enum_lookup(PG_F_ENTRY_MODE, "keyed", 5),
                         PG_ENTRY_KEYED);
        assert_string_equal(pg_kind_name(PG_KIND_REFUND), "refund");
        assert_string_equal(pg_status_name(PG_STATUS_DECLINED), "declined");
        assert_null(pg_kind_name(99));
        assert_null(pg_entry_mode_name(-1));
        for (int r = 0; r < PG_REJ__COUNT; r++)
                assert_non_null(pg_reject_name((pg_reject_t)r));
        expect_ok(build(NULL, 0));
        bool present = true;
        assert_int_equal(pg_record_int(&rec, PG_F_AMOUNT, &present), 1000);
        assert_true(present);
        pg_record_int(&rec, PG_F_EXPECTED_AMOUNT, &present);
        assert_false(present);
        assert_string_equal(pg_record_str(&rec, PG_F_TERMINAL_ID)->s, "TID1");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(full_valid_record),
            cmocka_unit_test(minimal_valid_record),
            cmocka_unit_test(whitespace_and_crlf),
            cmocka_unit_test(null_optional_is_absent),
            cmocka_unit_test(missing_each_required),
            cmocka_unit_test(wrong_type_each_field),
            cmocka_unit_test(empty_required_strings),
            cmocka_unit_test(string_size_boundary),
            cmocka_unit_test(enum_values),
            cmocka_unit_test(original_rrn_rules),
            cmocka_unit_test(amount_rules),
            cmocka_unit_test(currency_rules),
            cmocka_unit_test(time_rules),
            cmocka_unit_test(time_format_roundtrip),
            cmocka_unit_test(card_data_rules),
            cmocka_unit_test(bad_characters),
            cmocka_unit_test(malformed_lines),
            cmocka_unit_test(line_too_long),
            cmocka_unit_test(duplicate_fields),
            cmocka_unit_test(alert_encoding),
            cmocka_unit_test(refund_encoding),
            cmocka_unit_test(reject_encoding_masks_cards),
            cmocka_unit_test(field_table),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
