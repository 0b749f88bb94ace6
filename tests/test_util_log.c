/*
 * test_util_log.c - log lines in logfmt and in JSON: pairs become members,
 * quoted values are unquoted, integers are numbers, loose words a note,
 * escapes are JSON's, bytes that are not UTF-8 become \ufffd, and a line
 * too long for its buffer loses whole members and stays valid JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "util_log.h"

static const char *TS = "2026-12-01T10:00:00.000Z";

static void logfmt_line(void **state)
{
        char b[256];
        pg_log_line(b, sizeof(b), PG_LOG_LOGFMT, TS, "warn",
                    "event=slow_commit ms=1062");
        assert_string_equal(
            b, "ts=2026-12-01T10:00:00.000Z level=warn event=slow_commit "
               "ms=1062");
}

static void json_line(void **state)
{
        char b[512];
        pg_log_line(b, sizeof(b), PG_LOG_JSON, TS, "error",
                    "event=offsets_for_times_failed error=\"Broker: "
                    "timed out\" partition=3 offset=-1001 id=007 "
                    "(warm-up from the start) path=/a\\b\"c");
        assert_string_equal(
            b, "{\"ts\":\"2026-12-01T10:00:00.000Z\",\"level\":\"error\","
               "\"event\":\"offsets_for_times_failed\",\"error\":\"Broker: "
               "timed out\",\"partition\":3,\"offset\":-1001,\"id\":\"007\","
               "\"path\":\"/a\\\\b\\\"c\",\"note\":\"(warm-up from the "
               "start)\"}");
}

static void json_cut_stays_valid(void **state)
{
        char b[96];
        size_t n = pg_log_line(b, sizeof(b), PG_LOG_JSON, TS, "info",
                               "event=x a=\"one, two\" b=\"a long value "
                               "that cannot fit in what is left\"");
        assert_int_equal(n, strlen(b));
        assert_string_equal(b, "{\"ts\":\"2026-12-01T10:00:00.000Z\","
                               "\"level\":\"info\",\"event\":\"x\",\"a\":"
                               "\"one, two\"}");
}

/* A member longer than the scratch space, in a line buffer that could
 * hold it: dropped whole, never cut inside its string. */
static void json_long_member_dropped(void **state)
{
        static char msg[4096], b[8192];
        int n = snprintf(msg, sizeof(msg), "event=y a=1 long=\"");
        memset(msg + n, 'x', 3000);
        memcpy(msg + n + 3000, "\" b=2", 6); /* with its NUL */
        pg_log_line(b, sizeof(b), PG_LOG_JSON, TS, "info", msg);
        assert_string_equal(b, "{\"ts\":\"2026-12-01T10:00:00.000Z\","
                               "\"level\":\"info\",\"event\":\"y\",\"a\":1,"
                               "\"b\":2}");
}

/* Text from elsewhere (a librdkafka message with quotes and a newline)
 * made quotable stays one value on one line: before, rk_log put it in
 * message="..." as it was, so the logfmt line broke in two at the newline
 * and its inner quotes ended the value early for a logfmt reader. */
static void foreign_text_stays_one_value(void **state)
{
        char m[] = "Failed to \"connect\"\r\nok=1 \x01tail";
        assert_ptr_equal(pg_log_quotable(m), m);
        assert_string_equal(m, "Failed to 'connect'  ok=1  tail");
        char msg[256], b[512];
        snprintf(msg, sizeof(msg), "event=librdkafka message=\"%s\"", m);
        pg_log_line(b, sizeof(b), PG_LOG_JSON, TS, "warn", msg);
        assert_string_equal(
            b, "{\"ts\":\"2026-12-01T10:00:00.000Z\",\"level\":\"warn\","
               "\"event\":\"librdkafka\",\"message\":\"Failed to 'connect'  "
               "ok=1  tail\"}");
        pg_log_line(b, sizeof(b), PG_LOG_LOGFMT, TS, "warn", msg);
        assert_null(strchr(b, '\n'));
        assert_null(strchr(b, '\r'));
        int quotes = 0;
        for (const char *p = b; *p; p++)
                quotes += *p == '"';
        assert_int_equal(quotes, 2);
}

/* Text that is not UTF-8 (a file name, a library's message) in a JSON
 * line: each byte that does not start a valid sequence becomes \ufffd,
 * valid sequences stay as they are, so the line is valid UTF-8 JSON. */
static void json_bad_utf8_replaced(void **state)
{
        char b[512];
        /* valid: 2, 3 and 4 bytes; not: a lone 0xff, a 3-byte sequence
         * cut short, an overlong '/', a surrogate, past U+10FFFF */
        pg_log_line(b, sizeof(b), PG_LOG_JSON, TS, "warn",
                    "event=reload_failed path=\"/r/caf\xc3\xa9 \xe2\x82\xac "
                    "\xf0\x9f\x98\x80\" bad=\"a\xff"
                    "b\xe2\x82 c\xc0\xaf"
                    "d\xed\xa0\x80"
                    "e\xf4\x90\x80\x80"
                    "f\"");
        assert_string_equal(
            b, "{\"ts\":\"2026-12-01T10:00:00.000Z\",\"level\":\"warn\","
               "\"event\":\"reload_failed\",\"path\":\"/r/caf\xc3\xa9 "
               "\xe2\x82\xac \xf0\x9f\x98\x80\",\"bad\":\"a\\ufffdb"
               "\\ufffd\\ufffd c\\ufffd\\ufffdd\\ufffd\\ufffd\\ufffde"
               "\\ufffd\\ufffd\\ufffd\\ufffdf\"}");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(logfmt_line),
            cmocka_unit_test(json_line),
            cmocka_unit_test(json_cut_stays_valid),
            cmocka_unit_test(json_long_member_dropped),
            cmocka_unit_test(foreign_text_stays_one_value),
            cmocka_unit_test(json_bad_utf8_replaced),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
