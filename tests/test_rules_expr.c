/*
 * test_rules_expr.c - the `where:` filter language: precedence of not / and
 * / or, parentheses, in and not in, enum, string, int and bool compares,
 * missing optional fields, compile errors with their byte offsets, and the
 * limits (nesting depth, list length, literal length) that keep hostile
 * rule files cheap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_expr.h"

static void set_str(pg_str_t *s, const char *v)
{
        size_t n = strlen(v);
        s->len = (uint8_t)n;
        memcpy(s->s, v, n);
        s->s[n] = '\0';
}

/* An approved chip purchase of 1000 with every optional field present. */
static pg_record_t full_record(void)
{
        pg_record_t r;
        memset(&r, 0, sizeof(r));
        set_str(&r.txn_id, "T1");
        set_str(&r.merchant_id, "M1");
        set_str(&r.terminal_id, "TERM-7");
        set_str(&r.stan, "000123");
        set_str(&r.rrn, "R1");
        set_str(&r.card_token, "tok_abc");
        set_str(&r.pan_masked, "622848******1234");
        set_str(&r.currency, "EUR");
        set_str(&r.order_id, "ORD-9");
        r.amount = 1000;
        r.expected_amount = 100;
        r.has_expected = true;
        r.event_time = 1795341600123; /* 2026-11-22T10:00:00.123Z */
        r.kind = PG_KIND_PURCHASE;
        r.status = PG_STATUS_APPROVED;
        r.entry_mode = PG_ENTRY_CHIP;
        r.retransmission = true;
        return r;
}

/* The same record without any optional field. */
static pg_record_t bare_record(void)
{
        pg_record_t r = full_record();
        memset(&r.pan_masked, 0, sizeof(r.pan_masked));
        memset(&r.order_id, 0, sizeof(r.order_id));
        memset(&r.original_rrn, 0, sizeof(r.original_rrn));
        r.has_expected = false;
        r.expected_amount = 0;
        r.entry_mode = PG_ENTRY_NONE;
        r.retransmission = false;
        return r;
}

/* Compile src (which must be valid) and evaluate it on rec. */
static bool ev(const char *src, const pg_record_t *rec)
{
        char err[256];
        size_t off = 999;
        pg_expr_t *e =
            pg_expr_compile(src, strlen(src), err, sizeof(err), &off);
        if (!e)
                fail_msg("'%.80s' did not compile: %s (offset %zu)", src, err,
                         off);
        bool v = pg_expr_eval(e, rec);
        pg_expr_free(e);
        return v;
}

/* src must fail at byte offset want_off with a message containing want. */
static void bad(const char *src, size_t want_off, const char *want)
{
        char err[512];
        size_t off = 999;
        pg_expr_t *e =
            pg_expr_compile(src, strlen(src), err, sizeof(err), &off);
        if (e) {
                pg_expr_free(e);
                fail_msg("'%.80s' compiled, expected an error", src);
        }
        if (off != want_off || !strstr(err, want))
                fail_msg("'%.80s': got offset %zu '%s', expected offset %zu "
                         "'...%s...'",
                         src, off, err, want_off, want);
}

/* T and F are comparisons known to be true and false on full_record. */
#define T "kind == purchase"
#define F "kind == refund"

static void precedence_not_and_or(void **state)
{
        pg_record_t r = full_record();
        assert_true(ev(T, &r));
        assert_false(ev(F, &r));
        /* and binds tighter than or */
        assert_true(ev(T " or " F " and " F, &r));
        assert_true(ev(F " and " F " or " T, &r));
        assert_false(ev("(" T " or " F ") and " F, &r));
        /* not binds tighter than and / or */
        assert_true(ev("not " F " and " T, &r));
        assert_true(ev("not " T " or " T, &r));
        assert_false(ev("not (" T " or " T ")", &r));
        assert_true(ev("not not " T, &r));
        assert_false(ev("not not not " T, &r));
        /* n-ary chains */
        assert_true(ev(T " and " T " and " T " and " T, &r));
        assert_false(ev(T " and " T " and " F " and " T, &r));
        assert_true(ev(F " or " F " or " F " or " T, &r));
        assert_false(ev(F " or " F " or " F, &r));
        /* nested groups, whitespace of any kind */
        assert_true(ev("((" T "))", &r));
        assert_true(ev("\n(\t" T "\r\n or " F ")\n", &r));
        assert_true(ev("(" F " or (" T " and not " F ")) and " T, &r));
        /* keywords are case-sensitive: "AND" is not a keyword */
        bad(T " AND " T, 17, "unexpected 'AND'");
}

static void enums_and_bools(void **state)
{
        pg_record_t r = full_record();
        assert_true(ev("status == approved", &r));
        assert_false(ev("status != approved", &r));
        assert_true(ev("status == 'approved'", &r));
        assert_true(ev("status == \"approved\"", &r));
        assert_true(ev("kind in [refund, purchase]", &r));
        assert_false(ev("kind not in [refund, purchase]", &r));
        assert_true(ev("kind not in [refund, void, reversal]", &r));
        assert_true(ev("entry_mode == chip", &r));
        assert_true(ev("entry_mode in [chip, contactless]", &r));
        r.kind = PG_KIND_VOID;
        assert_true(ev("kind == void", &r));
        assert_false(ev("kind in [purchase]", &r));
        r.status = PG_STATUS_ERROR;
        assert_true(ev("status==error", &r));

        r = full_record();
        assert_true(ev("retransmission", &r));
        assert_true(ev("retransmission == true", &r));
        assert_false(ev("retransmission == false", &r));
        assert_true(ev("retransmission != false", &r));
        assert_false(ev("not retransmission", &r));
        r.retransmission = false;
        assert_false(ev("retransmission", &r));
        assert_true(ev("retransmission == false", &r));
        assert_true(ev("retransmission in [false]", &r));
}

static void strings(void **state)
{
        pg_record_t r = full_record();
        assert_true(ev("merchant_id == M1", &r));
        assert_true(ev("merchant_id == 'M1'", &r));
        assert_false(ev("merchant_id == M", &r));   /* prefix */
        assert_false(ev("merchant_id == M12", &r)); /* longer */
        assert_false(ev("merchant_id == m1", &r));  /* case */
        assert_true(ev("merchant_id != M2", &r));
        assert_true(ev("terminal_id == TERM-7", &r));
        /* a bare literal that looks like a number is a string for a string
         * field: leading zeros are kept */
        assert_true(ev("stan == 000123", &r));
        assert_false(ev("stan == 123", &r));
        assert_true(ev("currency in [USD, \"EUR\", 'GBP']", &r));
        assert_false(ev("currency not in [USD, EUR]", &r));
        /* quotes allow the characters the grammar uses */
        set_str(&r.order_id, "a b,(c)");
        assert_true(ev("order_id == 'a b,(c)'", &r));
        set_str(&r.order_id, "it's");
        assert_true(ev("order_id == \"it's\"", &r));
        /* a keyword is a fine literal */
        set_str(&r.order_id, "and");
        assert_true(ev("order_id == and", &r));
}

static void integers(void **state)
{
        pg_record_t r = full_record();
        assert_true(ev("amount == 1000", &r));
        assert_true(ev("amount != 999", &r));
        assert_true(ev("amount > 999", &r));
        assert_false(ev("amount > 1000", &r));
        assert_true(ev("amount >= 1000", &r));
        assert_true(ev("amount < 1001", &r));
        assert_false(ev("amount < 1000", &r));
        assert_true(ev("amount <= 1000", &r));
        assert_true(ev("amount>=1000 and amount<=1000", &r));
        assert_true(ev("amount in [1, 1000, 5]", &r));
        assert_true(ev("amount not in [1, 5]", &r));
        assert_true(ev("amount > -5", &r));
        assert_true(ev("amount == +1000", &r));
        assert_true(ev("amount == '1000'", &r));
        assert_true(ev("amount > -9223372036854775808", &r));
        assert_true(ev("amount < 9223372036854775807", &r));
        assert_true(ev("expected_amount == 100", &r));
        assert_true(ev("event_time == 1795341600123", &r));
        /* event_time also takes a quoted RFC 3339 time */
        assert_true(ev("event_time == '2026-11-22T10:00:00.123Z'", &r));
        assert_true(ev("event_time >= \"2026-11-22T10:00:00Z\"", &r));
        assert_true(ev("event_time < '2026-11-22T10:00:00.124Z'", &r));
        assert_false(ev("event_time < '2026-11-22T10:00:00.123Z'", &r));
        assert_true(ev("event_time == '2026-11-22T11:00:00.123+01:00'", &r));
        assert_true(ev("event_time == '2026-11-22T10:00:00.1239Z'", &r));
}

static void missing_optional_fields(void **state)
{
        pg_record_t r = bare_record();
        /* bare field: presence (or the bool's value) */
        assert_false(ev("order_id", &r));
        assert_false(ev("pan_masked", &r));
        assert_false(ev("original_rrn", &r));
        assert_false(ev("expected_amount", &r));
        assert_false(ev("entry_mode", &r));
        assert_false(ev("retransmission", &r));
        assert_true(ev("merchant_id", &r)); /* required: always there */
        assert_true(ev("amount", &r));
        assert_true(ev("kind", &r));
        assert_true(ev("not order_id", &r));
        /* every comparison is false except != ... */
        assert_false(ev("order_id == ORD-9", &r));
        assert_true(ev("order_id != ORD-9", &r));
        assert_false(ev("order_id == ''", &r));
        assert_false(ev("expected_amount == 0", &r));
        assert_true(ev("expected_amount != 0", &r));
        assert_false(ev("expected_amount < 5", &r));
        assert_false(ev("expected_amount <= 5", &r));
        assert_false(ev("expected_amount > -5", &r));
        assert_false(ev("expected_amount >= -5", &r));
        assert_false(ev("entry_mode == chip", &r));
        assert_true(ev("entry_mode != chip", &r));
        /* ... and "in" is false, "not in" true (the list form of !=) */
        assert_false(ev("order_id in [ORD-9, x]", &r));
        assert_true(ev("order_id not in [ORD-9, x]", &r));
        assert_false(ev("expected_amount in [0, 100]", &r));
        assert_true(ev("expected_amount not in [0, 100]", &r));
        assert_false(
            ev("entry_mode in [chip, swipe, contactless, keyed, ecom]", &r));
        assert_true(ev("entry_mode not in [chip, swipe]", &r));
        /* not of a missing comparison */
        assert_true(ev("not order_id == x", &r));

        pg_record_t f = full_record();
        assert_true(ev("order_id", &f));
        assert_true(ev("expected_amount", &f));
        assert_true(ev("entry_mode", &f));
        assert_true(ev("pan_masked", &f));
}

static void compile_errors(void **state)
{
        bad("amount == abc", 10, "amount needs an integer, found 'abc'");
        bad("kind == purchse", 8,
            "unknown kind 'purchse' (expected purchase, refund, reversal, "
            "void)");
        bad("kind == 'purchse'", 9, "unknown kind 'purchse'");
        bad("status in [approved, ok]", 21,
            "unknown status 'ok' (expected approved, declined, error)");
        bad("entry_mode == none", 14,
            "unknown entry_mode 'none' (expected chip, swipe, contactless, "
            "keyed, ecom)");
        bad("merchant_id < 5", 12,
            "operator '<' needs an integer field, but merchant_id is a "
            "string");
        bad("kind >= purchase", 5, "operator '>=' needs an integer field");
        bad("retransmission > false", 15, "needs an integer field");
        bad("retransmission == yes", 18,
            "retransmission needs true or false, found 'yes'");
        bad("amout == 5", 0, "unknown field 'amout' (expected one of: txn_id,");
        bad("kind ==", 7, "expected a value after 'kind ==', found the end");
        bad("kind == )", 8, "expected a value after 'kind ==', found ')'");
        bad("kind == purchase status == declined", 17,
            "unexpected 'status', expected 'and', 'or' or the end");
        bad("(kind == purchase", 17,
            "expected ')' to close the '(' at "
            "offset 0, found the end");
        bad("kind == purchase)", 16, "unexpected ')'");
        bad("kind in purchase", 8, "expected '[' after 'kind in'");
        bad("kind in [purchase", 17, "expected ',' or ']'");
        bad("kind in []", 9, "expected a value after 'kind in [', found ']'");
        bad("kind in [purchase,]", 18, "expected a value after ','");
        bad("kind not in (purchase)", 12, "expected '[' after 'kind not in'");
        bad("stan == 'abc", 8, "unterminated string");
        bad("kind = purchase", 5, "unexpected '='");
        bad("kind ! purchase", 5, "unexpected '!'");
        bad("", 0, "empty expression");
        bad("   \n ", 5, "empty expression");
        bad("and", 0, "unknown field 'and'");
        bad("not", 3, "expected a field name, found the end");
        bad("'kind' == purchase", 0,
            "expected a field name, found "
            "''kind''");
        bad("amount == 9223372036854775808", 10, "needs an integer");
        bad("amount == 1.5", 10, "needs an integer");
        bad("amount == '2026-11-22T10:00:00Z'", 10, "needs an integer");
        bad("event_time == 2026-11-22T10:00:00Z", 14,
            "or a quoted RFC 3339 time");
        bad("event_time == '2026-02-30T10:00:00Z'", 14, "needs an integer");
        bad("order_id == "
            "'12345678901234567890123456789012345678901234567890123456789"
            "012345'",
            12, "longer than 64 bytes");
        bad("retransmission not", 15, "unexpected 'not'");
        /* non-printable input is shown escaped, never raw */
        char err[256];
        size_t off;
        assert_null(
            pg_expr_compile("am\x01t == 5", 10, err, sizeof(err), &off));
        assert_non_null(strstr(err, "am\\x01t"));
        /* a NUL byte inside the given length is not the end */
        assert_null(
            pg_expr_compile("amount == 5\0 or", 15, err, sizeof(err), &off));
        /* NULL errstr and offset are allowed */
        assert_null(pg_expr_compile("kind ==", 7, NULL, 0, NULL));
}

static void literal_limits(void **state)
{
        pg_record_t r = full_record();
        char src[2048];
        /* 64 values are fine, 65 are not */
        size_t o = (size_t)snprintf(src, sizeof(src), "amount in [");
        for (int i = 0; i < PG_EXPR_MAX_LIST; i++)
                o += (size_t)snprintf(src + o, sizeof(src) - o, "%s%d",
                                      i ? "," : "", i == 63 ? 1000 : i);
        snprintf(src + o, sizeof(src) - o, "]");
        assert_true(ev(src, &r));
        src[o] = '\0';
        size_t at = o + 1;
        snprintf(src + o, sizeof(src) - o, ",7]");
        bad(src, at, "more than 64 values");

        /* a 64-byte string literal is fine */
        char lit[65];
        memset(lit, 'x', 64);
        lit[64] = '\0';
        set_str(&r.order_id, lit);
        snprintf(src, sizeof(src), "order_id == '%s'", lit);
        assert_true(ev(src, &r));
        snprintf(src, sizeof(src), "order_id in [a, %s, b]", lit);
        assert_true(ev(src, &r));
}

static void depth_limit(void **state)
{
        pg_record_t r = full_record();
        char *src = malloc(200000);
        assert_non_null(src);

        /* 64 levels of "not" compile; 65 do not */
        size_t o = 0;
        for (int i = 0; i < PG_EXPR_MAX_DEPTH; i++)
                o += (size_t)sprintf(src + o, "not ");
        sprintf(src + o, T);
        assert_true(ev(src, &r)); /* an even number of nots */
        memmove(src + 4, src, strlen(src) + 1);
        memcpy(src, "not ", 4);
        bad(src, 4 * PG_EXPR_MAX_DEPTH, "nested too deeply");

        /* the same for parentheses */
        o = 0;
        for (int i = 0; i < PG_EXPR_MAX_DEPTH; i++)
                src[o++] = '(';
        o += (size_t)sprintf(src + o, T);
        for (int i = 0; i < PG_EXPR_MAX_DEPTH; i++)
                src[o++] = ')';
        src[o] = '\0';
        assert_true(ev(src, &r));
        memmove(src + 1, src, strlen(src) + 1);
        src[0] = '(';
        strcat(src, ")");
        bad(src, PG_EXPR_MAX_DEPTH, "nested too deeply");

        /* hostile nesting far past the limit fails cleanly */
        memset(src, '(', 60000);
        src[60000] = '\0';
        bad(src, PG_EXPR_MAX_DEPTH, "nested too deeply");

        /* a long flat chain is not nesting: thousands of terms are fine,
         * and evaluation does not recurse per term */
        o = 0;
        for (int i = 0; i < 2000; i++)
                o += (size_t)sprintf(src + o, "%samount != %d",
                                     i ? " and " : "", i + 2000);
        assert_true(ev(src, &r));
        o = 0;
        for (int i = 0; i < 2000; i++)
                o += (size_t)sprintf(src + o, "%samount == %d", i ? " or " : "",
                                     i == 1999 ? 1000 : i);
        assert_true(ev(src, &r));

        /* and the source length is capped */
        memset(src, ' ', PG_EXPR_MAX_LEN + 1);
        memcpy(src, T, strlen(T));
        src[PG_EXPR_MAX_LEN + 1] = '\0';
        bad(src, PG_EXPR_MAX_LEN, "expected at most 65536");
        free(src);
}

/* Filters of enum and bool tests only (one test, or an "and" of tests,
 * the usual rule filter) are evaluated from per-field masks; every value
 * combination must give what the expression says. */
static bool f1(const pg_record_t *r)
{
        return r->kind == PG_KIND_PURCHASE && r->status == PG_STATUS_DECLINED;
}
static bool f2(const pg_record_t *r)
{
        return r->status != PG_STATUS_APPROVED;
}
static bool f3(const pg_record_t *r)
{
        return (r->kind == PG_KIND_REFUND || r->kind == PG_KIND_VOID) &&
               r->entry_mode != PG_ENTRY_KEYED && !r->retransmission;
}
static bool f4(const pg_record_t *r)
{
        return r->entry_mode != PG_ENTRY_CHIP &&
               r->entry_mode != PG_ENTRY_NONE &&
               r->status == PG_STATUS_APPROVED &&
               r->entry_mode != PG_ENTRY_SWIPE;
}
static bool f5(const pg_record_t *r)
{
        return r->kind == PG_KIND_PURCHASE && r->kind != PG_KIND_PURCHASE;
}
static bool f6(const pg_record_t *r)
{
        return r->kind == PG_KIND_PURCHASE || r->status == PG_STATUS_ERROR;
}

static void flat_filters(void **state)
{
        (void)state;
        static const struct {
                const char *src;
                bool (*want)(const pg_record_t *);
        } cases[] = {
            {"kind == purchase and status == declined", f1},
            {"status != approved", f2},
            {"kind in [refund, void] and entry_mode not in [keyed] and "
             "retransmission == false",
             f3},
            {"entry_mode not in [chip] and entry_mode in [swipe, "
             "contactless, keyed, ecom] and status == approved and "
             "entry_mode != swipe",
             f4},
            {"kind == purchase and kind != purchase", f5},
            {"kind == purchase or status == error", f6},
        };
        pg_record_t r = full_record();
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
                for (int k = 0; k < PG_KIND__COUNT; k++)
                        for (int st = 0; st < PG_STATUS__COUNT; st++)
                                for (int em = 0; em < PG_ENTRY__COUNT; em++)
                                        for (int rt = 0; rt < 2; rt++) {
                                                r.kind = (uint8_t)k;
                                                r.status = (uint8_t)st;
                                                r.entry_mode = (uint8_t)em;
                                                r.retransmission = rt;
                                                if (ev(cases[c].src, &r) !=
                                                    cases[c].want(&r))
                                                        fail_msg(
                                                            "'%s' on kind %d "
                                                            "status %d entry "
                                                            "%d retrans %d",
                                                            cases[c].src, k, st,
                                                            em, rt);
                                        }
}

static void null_expression_keeps_everything(void **state)
{
        pg_record_t r = bare_record();
        assert_true(pg_expr_eval(NULL, &r));
        pg_expr_free(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(precedence_not_and_or),
            cmocka_unit_test(enums_and_bools),
            cmocka_unit_test(strings),
            cmocka_unit_test(integers),
            cmocka_unit_test(missing_optional_fields),
            cmocka_unit_test(compile_errors),
            cmocka_unit_test(literal_limits),
            cmocka_unit_test(depth_limit),
            cmocka_unit_test(null_expression_keeps_everything),
            cmocka_unit_test(flat_filters),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
