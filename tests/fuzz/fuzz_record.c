/*
 * fuzz_record.c - libFuzzer target for the record path: arbitrary bytes are
 * split into lines, each line goes through the JSON record parser, and every
 * record it accepts is pushed into an engine running every detector with
 * short windows (the rule file is embedded below: no file system needed).
 *
 * What must hold for any input: no crash, no leak, no read past a line, a
 * NUL-terminated reason for every reject, encoders that always fit
 * PG_JSON_OUT_MAX, and no clear card number in any alert or reject text.
 *
 * Run: scripts/fuzz.sh (seed corpus in tests/fuzz/corpus_record/).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"
#include "engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The engine's windows are short here so that expiry and decisions run
 * within one input. */
static const char rules_yaml[] =
    "version: fuzz\n"
    "settings: {allowed_lateness: 5s, dedupe_horizon: 1h, "
    "refund_delay: 30s}\n"
    "rules:\n"
    "  - {id: retry, detector: retry_duplicate, severity: high,\n"
    "     action: refund, mode: enforce, params: {window: 10m}}\n"
    "  - {id: swipe, detector: repeated_swipe, severity: medium,\n"
    "     action: refund, mode: enforce,\n"
    "     params: {window: 120s, auto_refund_within: 60s}}\n"
    "  - {id: mismatch, detector: amount_mismatch, severity: high,\n"
    "     action: refund, mode: enforce, params: {tolerance: 0}}\n"
    "  - {id: refunds, detector: refund_anomaly, severity: high,\n"
    "     action: alert, mode: shadow, params: {lookback: 1d}}\n"
    "  - {id: burst, detector: aggregate, severity: low, action: alert,\n"
    "     mode: enforce, params: {group_by: [terminal_id], function: count,\n"
    "     window: 1m, threshold: 3}}\n";

static pg_ruleset_t *rules;

static void check_text(const char *buf, int n)
{
        if (n < 0 || n >= PG_JSON_OUT_MAX)
                abort();
        if (memchr(buf, '\0', (size_t)n))
                abort();
}

static void on_alert(void *o, const pg_alert_t *a)
{
        char buf[PG_JSON_OUT_MAX];
        check_text(buf, pg_codec_json_alert(buf, sizeof(buf), a));
}

static void on_refund(void *o, const pg_refund_t *r)
{
        char buf[PG_JSON_OUT_MAX];
        check_text(buf, pg_codec_json_refund(buf, sizeof(buf), r));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char err[512];
        if (!rules) {
                rules = pg_rules_load_buffer("fuzz.yaml", rules_yaml,
                                             sizeof(rules_yaml) - 1, err,
                                             sizeof(err));
                if (!rules)
                        abort();
        }
        pg_sink_t sink = {on_alert, on_refund, NULL};
        pg_engine_conf_t conf = {0};
        conf.event_clock = true;
        conf.max_state_bytes = 1 << 20;
        conf.refund_cap_merchant = 5000;
        pg_engine_t *e = pg_engine_new(rules, &conf, &sink, err, sizeof(err));
        if (!e)
                abort();
        size_t at = 0;
        uint64_t line_no = 0;
        while (at <= size) {
                const uint8_t *nl =
                    at < size ? memchr(data + at, '\n', size - at) : NULL;
                size_t end = nl ? (size_t)(nl - data) : size;
                /* an exact-size copy, so ASan sees any read past the line */
                size_t len = end - at;
                char *line = malloc(len ? len : 1);
                if (len)
                        memcpy(line, data + at, len);
                pg_record_t rec;
                const char *field;
                char why[256];
                line_no++;
                pg_reject_t r = pg_codec_json_parse(line, len, &rec, &field,
                                                    why, sizeof(why));
                if (r == PG_REJ_NONE) {
                        pg_engine_push(e, &rec);
                } else {
                        if (!memchr(why, '\0', sizeof(why)))
                                abort();
                        char buf[PG_JSON_OUT_MAX];
                        check_text(buf, pg_codec_json_reject(
                                            buf, sizeof(buf), r, field, why,
                                            line_no, line, len));
                }
                free(line);
                at = end + 1;
        }
        pg_engine_flush(e);
        pg_engine_free(e);
        return 0;
}
