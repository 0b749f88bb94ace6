/*
 * test_rules_load.c - rule files: rules/default.yaml loads with the values
 * of DOMAIN.md, omitted keys take their defaults, rules that are off are
 * checked but left out, and every kind of error (YAML syntax, unknown key,
 * duplicate key, wrong type, out of range, missing key, duplicate rule id,
 * refund on an alert-only detector, bad `where`) is reported with the exact
 * FILE:LINE:COLUMN of what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules.h"
#include "rules_expr.h"

#define SEC INT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* Every snippet below starts with these two lines: rules begin on line 3. */
#define HEAD "version: \"1\"\nrules:\n"

static char err[1024];

static pg_ruleset_t *load(const char *yaml)
{
        return pg_rules_load_buffer("t.yaml", yaml, strlen(yaml), err,
                                    sizeof(err));
}

static pg_ruleset_t *load_ok(const char *yaml)
{
        pg_ruleset_t *rs = load(yaml);
        if (!rs)
                fail_msg("did not load: %s\n--- yaml:\n%s", err, yaml);
        return rs;
}

/* The error must start with "t.yaml:<pos>: " and contain msg. */
static void load_err(const char *yaml, const char *pos, const char *msg)
{
        pg_ruleset_t *rs = load(yaml);
        if (rs) {
                pg_rules_free(rs);
                fail_msg("loaded, expected an error at %s: %s\n--- "
                         "yaml:\n%s",
                         pos, msg, yaml);
        }
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "t.yaml:%s: ", pos);
        if (strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, msg))
                fail_msg("got    '%s'\nwanted '%s...%s...'\n--- yaml:\n%s", err,
                         prefix, msg, yaml);
}

static pg_record_t record(pg_kind_t kind, pg_status_t status)
{
        pg_record_t r;
        memset(&r, 0, sizeof(r));
        r.kind = (uint8_t)kind;
        r.status = (uint8_t)status;
        r.amount = 100;
        memcpy(r.card_token.s, "tok", 4);
        r.card_token.len = 3;
        return r;
}

/* The repository's reference file, found from this source file's path. */
static void default_yaml_loads(void **state)
{
        char path[1024];
        snprintf(path, sizeof(path), "%s", __FILE__);
        char *slash = strrchr(path, '/');
        if (slash)
                snprintf(slash + 1, sizeof(path) - (size_t)(slash + 1 - path),
                         "../rules/default.yaml");
        else
                snprintf(path, sizeof(path), "../rules/default.yaml");
        pg_ruleset_t *rs = pg_rules_load_file(path, err, sizeof(err));
        if (!rs)
                fail_msg("%s", err);
        assert_string_equal(rs->version, "2026-11-23.1");
        assert_string_equal(rs->path, path);
        assert_int_equal(rs->allowed_lateness_ms, 5 * SEC);
        assert_int_equal(rs->dedupe_horizon_ms, 24 * HOUR);
        assert_int_equal(rs->refund_delay_ms, 120 * SEC);
        assert_int_equal(rs->n_rules, 5);

        const pg_rule_t *r = &rs->rules[0];
        assert_string_equal(r->id, "retry-duplicate");
        assert_int_equal(r->detector, PG_DET_RETRY_DUPLICATE);
        assert_string_equal(r->severity, "high");
        assert_int_equal(r->action, PG_ACTION_REFUND);
        assert_int_equal(r->mode, PG_MODE_ENFORCE);
        assert_int_equal(r->window_ms, 15 * MIN);
        assert_int_equal(r->line, 12);

        r = &rs->rules[1];
        assert_string_equal(r->id, "repeated-swipe");
        assert_int_equal(r->detector, PG_DET_REPEATED_SWIPE);
        assert_string_equal(r->severity, "medium");
        assert_int_equal(r->action, PG_ACTION_REFUND);
        assert_int_equal(r->window_ms, 120 * SEC);
        assert_int_equal(r->auto_refund_within_ms, 60 * SEC);

        r = &rs->rules[2];
        assert_string_equal(r->id, "amount-mismatch");
        assert_int_equal(r->detector, PG_DET_AMOUNT_MISMATCH);
        assert_string_equal(r->severity, "high");
        assert_int_equal(r->action, PG_ACTION_REFUND);
        assert_int_equal(r->tolerance, 0);

        r = &rs->rules[3];
        assert_string_equal(r->id, "refund-anomaly");
        assert_int_equal(r->detector, PG_DET_REFUND_ANOMALY);
        assert_string_equal(r->severity, "high");
        assert_int_equal(r->action, PG_ACTION_ALERT);
        assert_int_equal(r->lookback_ms, 30 * DAY);

        r = &rs->rules[4];
        assert_string_equal(r->id, "card-testing");
        assert_int_equal(r->detector, PG_DET_AGGREGATE);
        assert_string_equal(r->severity, "medium");
        assert_int_equal(r->action, PG_ACTION_ALERT);
        assert_int_equal(r->mode, PG_MODE_ENFORCE);
        assert_int_equal(r->n_group_by, 1);
        assert_int_equal(r->group_by[0], PG_F_CARD_TOKEN);
        assert_int_equal(r->fn, PG_AGG_COUNT);
        assert_int_equal(r->window_ms, 10 * MIN);
        assert_int_equal(r->threshold, 5);
        assert_int_equal(r->line, 49);
        assert_non_null(r->where);
        pg_record_t rec = record(PG_KIND_PURCHASE, PG_STATUS_DECLINED);
        assert_true(pg_expr_eval(r->where, &rec));
        rec = record(PG_KIND_PURCHASE, PG_STATUS_APPROVED);
        assert_false(pg_expr_eval(r->where, &rec));
        rec = record(PG_KIND_REFUND, PG_STATUS_DECLINED);
        assert_false(pg_expr_eval(r->where, &rec));

        assert_string_equal(pg_detector_name(PG_DET_AGGREGATE), "aggregate");
        assert_string_equal(pg_mode_name(PG_MODE_SHADOW), "shadow");
        pg_rules_free(rs);
}

static void omitted_keys_take_defaults(void **state)
{
        pg_ruleset_t *rs = load_ok(
            HEAD
            "  - {id: a, detector: retry_duplicate}\n"
            "  - {id: b, detector: repeated_swipe}\n"
            "  - {id: c, detector: amount_mismatch}\n"
            "  - {id: d, detector: refund_anomaly, params: }\n"
            "  - id: e\n"
            "    detector: aggregate\n"
            "    params:\n"
            "      group_by: [merchant_id, card_token]\n"
            "      function: sum\n"
            "      window: 1h\n"
            "      threshold: 100000\n"
            "  - {id: f, detector: repeated_swipe, params: {window: 30s}}\n");
        assert_string_equal(rs->version, "1");
        assert_string_equal(rs->path, "t.yaml");
        assert_int_equal(rs->allowed_lateness_ms, 5 * SEC);
        assert_int_equal(rs->dedupe_horizon_ms, 24 * HOUR);
        assert_int_equal(rs->refund_delay_ms, 120 * SEC);
        assert_int_equal(rs->n_rules, 6);
        static const char *const sev[] = {"high", "medium", "high",
                                          "high", "medium", "medium"};
        for (int i = 0; i < 6; i++) {
                assert_string_equal(rs->rules[i].severity, sev[i]);
                assert_int_equal(rs->rules[i].action, PG_ACTION_ALERT);
                assert_int_equal(rs->rules[i].mode, PG_MODE_ENFORCE);
                assert_int_equal(rs->rules[i].line, 3 + i + (i == 5 ? 6 : 0));
        }
        assert_int_equal(rs->rules[0].window_ms, 15 * MIN);
        assert_int_equal(rs->rules[1].window_ms, 120 * SEC);
        assert_int_equal(rs->rules[1].auto_refund_within_ms, 60 * SEC);
        assert_int_equal(rs->rules[2].tolerance, 0);
        assert_int_equal(rs->rules[3].lookback_ms, 30 * DAY);
        const pg_rule_t *e = &rs->rules[4];
        assert_null(e->where);
        assert_int_equal(e->n_group_by, 2);
        assert_int_equal(e->group_by[0], PG_F_MERCHANT_ID);
        assert_int_equal(e->group_by[1], PG_F_CARD_TOKEN);
        assert_int_equal(e->fn, PG_AGG_SUM);
        assert_int_equal(e->window_ms, HOUR);
        assert_int_equal(e->threshold, 100000);
        /* the 60 s default never exceeds a shorter window */
        assert_int_equal(rs->rules[5].window_ms, 30 * SEC);
        assert_int_equal(rs->rules[5].auto_refund_within_ms, 30 * SEC);
        pg_rules_free(rs);

        /* an empty settings mapping, or none at all, is the defaults */
        rs = load_ok("version: x\nsettings:\nrules: [{id: a, detector: "
                     "refund_anomaly}]\n");
        assert_int_equal(rs->refund_delay_ms, 120 * SEC);
        pg_rules_free(rs);
}

static void settings_values_and_ranges(void **state)
{
        pg_ruleset_t *rs =
            load_ok("version: 1\n"
                    "settings:\n"
                    "  allowed_lateness: 0s\n"
                    "  dedupe_horizon: 7d\n"
                    "  refund_delay: 1d\n"
                    "rules: [{id: a, detector: refund_anomaly}]\n");
        assert_int_equal(rs->allowed_lateness_ms, 0);
        assert_int_equal(rs->dedupe_horizon_ms, 7 * DAY);
        assert_int_equal(rs->refund_delay_ms, DAY);
        pg_rules_free(rs);
        rs = load_ok("version: 1\n"
                     "settings: {allowed_lateness: 1h, dedupe_horizon: 1m, "
                     "refund_delay: 0ms}\n"
                     "rules: [{id: a, detector: refund_anomaly}]\n");
        assert_int_equal(rs->allowed_lateness_ms, HOUR);
        assert_int_equal(rs->dedupe_horizon_ms, MIN);
        assert_int_equal(rs->refund_delay_ms, 0);
        pg_rules_free(rs);

#define RULES1 "rules: [{id: a, detector: refund_anomaly}]\n"
        load_err("version: 1\nsettings:\n  allowed_lateness: 3601s\n" RULES1,
                 "3:21",
                 "found 3601s for settings.allowed_lateness, which is out of "
                 "range, expected a duration in 0..1h");
        load_err("version: 1\nsettings:\n  dedupe_horizon: 59s\n" RULES1,
                 "3:19", "expected a duration in 1m..7d");
        load_err("version: 1\nsettings:\n  dedupe_horizon: 8d\n" RULES1, "3:19",
                 "expected a duration in 1m..7d");
        load_err("version: 1\nsettings:\n  refund_delay: 25h\n" RULES1, "3:17",
                 "expected a duration in 0..1d");
        load_err("version: 1\nsettings:\n  refund_delay: 120\n" RULES1, "3:17",
                 "found '120' for settings.refund_delay: duration needs a "
                 "unit (ms, s, m, h, d)");
        load_err("version: 1\nsettings: [5s]\n" RULES1, "2:11",
                 "found a list for settings, expected a mapping");
        load_err("version: 1\nsettings:\n  lateness: 5s\n" RULES1, "3:3",
                 "unknown key 'lateness' in settings (expected: "
                 "allowed_lateness, dedupe_horizon, refund_delay)");
}

static void durations(void **state)
{
        static const struct {
                const char *s;
                int rc;
                int64_t ms;
        } cases[] = {
            {"500ms", 0, 500},
            {"90s", 0, 90 * SEC},
            {"15m", 0, 15 * MIN},
            {"2h", 0, 2 * HOUR},
            {"30d", 0, 30 * DAY},
            {"0s", 0, 0},
            {"0ms", 0, 0},
            {"007s", 0, 7 * SEC},
            {"9223372036854775807ms", 0, INT64_MAX},
            {"106751991167d", 0, 106751991167 * DAY},
            {"106751991168d", -1, 0},
            {"9223372036854775808ms", -1, 0},
            {"99999999999999999999999s", -1, 0},
            {"", -1, 0},
            {"90", -1, 0},
            {"s", -1, 0},
            {"ms", -1, 0},
            {"-5s", -1, 0},
            {"+5s", -1, 0},
            {"1.5h", -1, 0},
            {"5 s", -1, 0},
            {" 5s", -1, 0},
            {"5s ", -1, 0},
            {"5sec", -1, 0},
            {"5S", -1, 0},
            {"5us", -1, 0},
            {"1h30m", -1, 0},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int64_t ms = -42;
                int rc = pg_duration_parse(cases[i].s, strlen(cases[i].s), &ms);
                if (rc != cases[i].rc || (rc == 0 && ms != cases[i].ms) ||
                    (rc != 0 && ms != -42))
                        fail_msg("'%s': rc %d ms %lld", cases[i].s, rc,
                                 (long long)ms);
        }
        int64_t ms;
        /* the length is honoured: "15m" of "15ms" */
        assert_int_equal(pg_duration_parse("15ms", 3, &ms), 0);
        assert_int_equal(ms, 15 * MIN);
        assert_int_not_equal(pg_duration_parse(NULL, 0, &ms), 0);

        /* in a file: a bare number, an unknown unit, overflow, not text */
        const char *r = HEAD "  - id: a\n"
                             "    detector: retry_duplicate\n"
                             "    params:\n"
                             "      window: %s\n";
        char y[512];
        snprintf(y, sizeof(y), r, "900");
        load_err(y, "6:15",
                 "found '900' for window of rule 'a': duration needs a unit "
                 "(ms, s, m, h, d)");
        snprintf(y, sizeof(y), r, "\"900\"");
        load_err(y, "6:15", "duration needs a unit (ms, s, m, h, d)");
        snprintf(y, sizeof(y), r, "15min");
        load_err(y, "6:15", "unknown duration unit");
        snprintf(y, sizeof(y), r, "99999999999999999999s");
        load_err(y, "6:15", "duration is too large");
        snprintf(y, sizeof(y), r, "-1m");
        load_err(y, "6:15", "expected a duration");
        snprintf(y, sizeof(y), r, "[15m]");
        load_err(y, "6:15",
                 "found a list for window of rule 'a', expected a duration "
                 "in 1s..1d");
        snprintf(y, sizeof(y), r, "");
        load_err(y, "6:14", "found null (an empty value) for window");
        snprintf(y, sizeof(y), r, "'15m'");
        pg_ruleset_t *rs = load_ok(y);
        assert_int_equal(rs->rules[0].window_ms, 15 * MIN);
        pg_rules_free(rs);
}

static void unknown_keys(void **state)
{
        load_err("version: 1\nrule: []\n", "2:1",
                 "unknown key 'rule' in the top level (expected: version, "
                 "settings, rules, lists, include)");
        load_err(HEAD "  - id: retry-duplicate\n"
                      "    detector: retry_duplicate\n"
                      "    params:\n"
                      "      windw: 15m\n",
                 "6:7",
                 "unknown key 'windw' in params of rule 'retry-duplicate' "
                 "(expected: window)");
        load_err(HEAD "  - id: a\n"
                      "    detector: retry_duplicate\n"
                      "    sevrity: high\n",
                 "5:5",
                 "unknown key 'sevrity' in rule 'a' (expected: id, detector, "
                 "description, severity, action, mode, enabled, params, where, "
                 "except, owner, tags, cooldown, cooldown_key)");
        /* a key of another detector's params */
        load_err(HEAD "  - {id: a, detector: retry_duplicate, params: "
                      "{tolerance: 5}}\n",
                 "3:49",
                 "unknown key 'tolerance' in params of rule 'a' (expected: "
                 "window)");
        load_err(HEAD "  - {id: s, detector: repeated_swipe, params: "
                      "{lookback: 5m}}\n",
                 "3:48", "(expected: window, auto_refund_within)");
        load_err(HEAD "  - {id: g, detector: aggregate, params: {windows: "
                      "5m}}\n",
                 "3:43",
                 "(expected: where, group_by, function, field, window, "
                 "threshold, on_findings)");
        /* the rule is named by its id even when the id comes later */
        load_err(HEAD "  - detector: retry_duplicate\n"
                      "    colour: red\n"
                      "    id: late\n",
                 "4:5", "unknown key 'colour' in rule 'late'");
        /* ... and by its position when the id is unusable */
        load_err(HEAD "  - {id: ok, detector: retry_duplicate}\n"
                      "  - {id: 'not ok', colour: red}\n",
                 "4:20", "unknown key 'colour' in rule #2");
        /* keys are shown escaped */
        load_err("version: 1\n\"a\\x01\\u00e9\": 1\n", "2:1",
                 "unknown key 'a\\x01\\xc3\\xa9'");
        load_err("version: 1\n[a]: 1\n", "2:1",
                 "found a list as a key in the top level");
        load_err("version: 1\n<<: {rules: []}\n", "2:1", "unknown key '<<'");
}

static void duplicate_keys(void **state)
{
        load_err("version: 1\nversion: 2\nrules: []\n", "2:1",
                 "duplicate key 'version' in the top level (first at line 1, "
                 "column 1)");
        load_err(HEAD "  - id: a\n"
                      "    detector: retry_duplicate\n"
                      "    mode: shadow\n"
                      "    detector: amount_mismatch\n",
                 "6:5",
                 "duplicate key 'detector' in rule 'a' (first at line 4, "
                 "column 5)");
        load_err(HEAD "  - {id: a, detector: retry_duplicate, params: "
                      "{window: 1m, window: 2m}}\n",
                 "3:61",
                 "duplicate key 'window' in params of rule 'a' (first at "
                 "line 3, column 49)");
        load_err("version: 1\nsettings:\n  refund_delay: 1s\n  refund_delay: "
                 "2s\nrules: []\n",
                 "4:3", "duplicate key 'refund_delay' in settings");
        /* the same key spelled with quotes is the same key */
        load_err(HEAD "  - {id: a, \"id\": b, detector: retry_duplicate}\n",
                 "3:13", "duplicate key 'id'");
}

static void duplicate_rule_ids(void **state)
{
        load_err(HEAD "  - {id: a, detector: retry_duplicate}\n"
                      "  - {id: b, detector: retry_duplicate}\n"
                      "  - {id: a, detector: amount_mismatch}\n",
                 "5:10", "duplicate rule id 'a' (first at line 3, column 5)");
        /* a rule that is off still owns its id */
        load_err(HEAD "  - id: a\n"
                      "    detector: retry_duplicate\n"
                      "    mode: off\n"
                      "  - id: a\n"
                      "    detector: retry_duplicate\n",
                 "6:9", "duplicate rule id 'a' (first at line 3, column 5)");
        /* ids are case-sensitive */
        pg_ruleset_t *rs =
            load_ok(HEAD "  - {id: a, detector: retry_duplicate}\n"
                         "  - {id: A, detector: retry_duplicate}\n");
        assert_int_equal(rs->n_rules, 2);
        pg_rules_free(rs);
}

static void wrong_types(void **state)
{
        load_err("- a\n", "1:1",
                 "found a list at the top level, expected a mapping with "
                 "version and rules");
        load_err("just text\n", "1:1",
                 "found the string 'just text' at the "
                 "top level");
        load_err("version: {a: 1}\nrules: []\n", "1:10",
                 "found a mapping for version, expected a non-empty string");
        load_err("version: 1\nrules: {a: 1}\n", "2:8",
                 "found a mapping for rules, expected a list of 1 to 256 "
                 "rules");
        load_err("version: 1\nrules: nope\n", "2:8",
                 "found the string 'nope' for rules");
        load_err(HEAD "  - hello\n", "3:5",
                 "found the string 'hello' for rule #1, expected a mapping");
        load_err(HEAD "  - [a]\n", "3:5", "found a list for rule #1");

        /* a YAML integer is not a rule id or a description */
        load_err(HEAD "  - {id: 7, detector: retry_duplicate}\n", "3:10",
                 "found the integer '7' for id of rule #1, expected a rule "
                 "id: 1 to 64 of A-Z a-z 0-9 _ . - (quote it to make it a "
                 "string)");
        pg_ruleset_t *rs = load_ok(HEAD "  - {id: '7', detector: "
                                        "retry_duplicate, description: ~}\n");
        assert_string_equal(rs->rules[0].id, "7");
        pg_rules_free(rs);
        load_err(HEAD "  - {id: a, detector: retry_duplicate, description: "
                      "42}\n",
                 "3:53",
                 "found the integer '42' for description of rule 'a', "
                 "expected a string");
        load_err(HEAD "  - {id: a, detector: [retry_duplicate]}\n", "3:23",
                 "found a list for detector of rule 'a', expected one of: "
                 "retry_duplicate, repeated_swipe, amount_mismatch, "
                 "refund_anomaly, aggregate");
        load_err(HEAD "  - {id: a, detector: retry}\n", "3:23",
                 "found 'retry' for detector of rule 'a', expected one of: "
                 "retry_duplicate,");
        load_err(HEAD "  - {id: a, detector: retry_duplicate, severity: "
                      "urgent}\n",
                 "3:50",
                 "found 'urgent' for severity of rule 'a', expected one of: "
                 "low, medium, high, critical");
        load_err(HEAD "  - {id: a, detector: retry_duplicate, severity: "
                      "HIGH}\n",
                 "3:50", "found 'HIGH' for severity");
        load_err(HEAD "  - {id: a, detector: retry_duplicate, action: "
                      "block}\n",
                 "3:48",
                 "found 'block' for action of rule 'a', expected one of: "
                 "alert, refund");
        load_err(HEAD "  - {id: a, detector: retry_duplicate, mode: on}\n",
                 "3:46",
                 "found 'on' for mode of rule 'a', expected one of: enforce, "
                 "shadow, off");
        load_err(HEAD "  - {id: a, detector: retry_duplicate, enabled: "
                      "yes}\n",
                 "3:49",
                 "found the string 'yes' for enabled of rule 'a', expected "
                 "true or false");
        load_err(HEAD "  - {id: a, detector: retry_duplicate, enabled: "
                      "'true'}\n",
                 "3:49", "found the string 'true' for enabled");
        load_err(HEAD "  - {id: a, detector: retry_duplicate, params: [1]}\n",
                 "3:48",
                 "found a list for params of rule 'a', expected a mapping");

#define MISMATCH(v)                                                            \
        HEAD "  - id: c\n    detector: amount_mismatch\n    "                  \
             "params:\n      tolerance: " v "\n"
        load_err(MISMATCH("'5'"), "6:18",
                 "found the string '5' for tolerance of rule 'c', expected "
                 "an integer >= 0");
        load_err(MISMATCH("1.5"), "6:18",
                 "found the number '1.5' for tolerance of rule 'c', "
                 "expected an integer >= 0");
        load_err(MISMATCH("1e3"), "6:18", "found the number '1e3'");
        load_err(MISMATCH("true"), "6:18", "found the boolean 'true'");
        load_err(MISMATCH("010"), "6:18",
                 "found '010' for tolerance of rule 'c', expected a decimal "
                 "integer without leading zeros");
        load_err(MISMATCH("-1"), "6:18",
                 "found -1 for tolerance of rule 'c', expected an integer "
                 ">= 0");
        load_err(MISMATCH("9223372036854775808"), "6:18", "which is too large");
        load_err(MISMATCH("!!int 5"), "6:18",
                 "found the YAML tag 'tag:yaml.org,2002:int', expected no "
                 "tag");
        rs = load_ok(MISMATCH("9223372036854775807"));
        assert_int_equal(rs->rules[0].tolerance, INT64_MAX);
        pg_rules_free(rs);
        rs = load_ok(MISMATCH("+250"));
        assert_int_equal(rs->rules[0].tolerance, 250);
        pg_rules_free(rs);
}

static void version_values(void **state)
{
        pg_ruleset_t *rs = load_ok("version: 3\n" RULES1);
        assert_string_equal(rs->version, "3");
        pg_rules_free(rs);
        rs = load_ok("version: 1.10\n" RULES1);
        assert_string_equal(rs->version, "1.10");
        pg_rules_free(rs);
        rs = load_ok("version: "
                     "\"1234567890123456789012345678901234567890123456789012"
                     "345678901234\"\n" RULES1);
        assert_int_equal(strlen(rs->version), 64);
        pg_rules_free(rs);
        load_err("version: "
                 "\"1234567890123456789012345678901234567890123456789012345678"
                 "9012345\"\n" RULES1,
                 "1:10",
                 "found a version of 65 bytes, expected a non-empty "
                 "string of at most 64 printable characters");
        load_err("version: \"\"\n" RULES1, "1:10",
                 "found a version of 0 bytes");
        load_err("version:\n" RULES1, "1:9",
                 "found null (an empty value) for version");
        load_err("version: ~\n" RULES1, "1:10", "found null");
        load_err("version: \"a\\tb\"\n" RULES1, "1:10",
                 "found a control character (0x09) in version");
        load_err("version: [1]\n" RULES1, "1:10", "found a list for version");
}

static void required_keys_and_counts(void **state)
{
        load_err(RULES1, "1:1", "missing key 'version' at the top level");
        load_err("# a comment\n\nversion: 1\n", "3:1",
                 "missing key 'rules' at the top level, expected a list of 1 "
                 "to 256 rules");
        load_err("version: 1\nrules: []\n", "2:8",
                 "found 0 rules, expected 1 to 256");
        load_err("version: 1\nrules:\n", "2:7",
                 "found null (an empty value) for rules, expected a list");
        load_err(HEAD "  - detector: retry_duplicate\n", "3:5",
                 "missing key 'id' in rule #1, expected a rule id");
        load_err(HEAD "  - id: a\n    severity: low\n", "3:5",
                 "missing key 'detector' in rule 'a', expected one of: "
                 "retry_duplicate, repeated_swipe, amount_mismatch, "
                 "refund_anomaly, aggregate");
        load_err(HEAD "  - {id: a, detector: 'retry duplicate'}\n", "3:23",
                 "found 'retry duplicate' for detector");

        /* ids: [A-Za-z0-9_.-]{1,64} */
        load_err(HEAD "  - {id: 'a b', detector: retry_duplicate}\n", "3:10",
                 "found 'a b' for id of rule #1, expected a rule id: 1 to 64 "
                 "of A-Z a-z 0-9 _ . -");
        load_err(HEAD "  - {id: '', detector: retry_duplicate}\n", "3:10",
                 "found '' for id");
        load_err(HEAD "  - {id: 'caf\xc3\xa9', detector: retry_duplicate}\n",
                 "3:10", "found 'caf\\xc3\\xa9' for id");
        char id64[PG_RULE_ID_MAX + 1];
        memset(id64, '7', PG_RULE_ID_MAX);
        memcpy(id64, "Az09_.-", 7);
        id64[PG_RULE_ID_MAX] = '\0';
        char y[40000];
        snprintf(y, sizeof(y), HEAD "  - {id: %s, detector: retry_duplicate}\n",
                 id64);
        pg_ruleset_t *rs = load_ok(y);
        assert_string_equal(rs->rules[0].id, id64);
        pg_rules_free(rs);
        snprintf(y, sizeof(y),
                 HEAD "  - {id: %sX, detector: retry_duplicate}\n", id64);
        load_err(y, "3:10", "expected a rule id: 1 to 64");

        /* 256 rules are fine, 257 are not */
        size_t o = (size_t)snprintf(y, sizeof(y), HEAD);
        for (int i = 0; i < 256; i++)
                o += (size_t)snprintf(y + o, sizeof(y) - o,
                                      "  - {id: r%d, detector: "
                                      "refund_anomaly}\n",
                                      i);
        rs = load_ok(y);
        assert_int_equal(rs->n_rules, 256);
        assert_string_equal(rs->rules[255].id, "r255");
        assert_int_equal(rs->rules[255].line, 258);
        pg_rules_free(rs);
        snprintf(y + o, sizeof(y) - o,
                 "  - {id: r256, detector: refund_anomaly}\n");
        load_err(y, "3:3", "found 257 rules, expected 1 to 256");
}

static void aggregate_params(void **state)
{
#define AGG(p) HEAD "  - id: g\n    detector: aggregate\n    params:\n" p
        load_err(HEAD "  - {id: g, detector: aggregate}\n", "3:5",
                 "missing key 'group_by' in params of rule 'g', expected "
                 "group_by, function, window and threshold");
        load_err(AGG("      group_by: card_token\n"
                     "      window: 5m\n"
                     "      threshold: 3\n"),
                 "6:7", "missing key 'function' in params of rule 'g'");
        load_err(AGG("      group_by: card_token\n"
                     "      function: count\n"
                     "      threshold: 3\n"),
                 "6:7", "missing key 'window'");
        load_err(AGG("      group_by: card_token\n"
                     "      function: count\n"
                     "      window: 5m\n"),
                 "6:7", "missing key 'threshold'");
        load_err(AGG("      group_by: card_token\n"
                     "      function: distinct\n"
                     "      window: 5m\n"
                     "      threshold: 3\n"),
                 "7:17",
                 "missing key 'field' in params of rule 'g', expected the "
                 "field whose distinct values function distinct counts");
        load_err(AGG("      group_by: card_token\n"
                     "      function: count\n"
                     "      field: stan\n"
                     "      window: 5m\n"
                     "      threshold: 3\n"),
                 "8:14",
                 "found key 'field' in params of rule 'g' with function "
                 "count, expected 'field' only with function distinct");
        load_err(AGG("      group_by: card_token\n"
                     "      function: median\n"
                     "      window: 5m\n"
                     "      threshold: 3\n"),
                 "7:17",
                 "found 'median' for function of rule 'g', expected one of: "
                 "count, sum, distinct");
        load_err(AGG("      group_by: card_token\n"
                     "      function: count\n"
                     "      window: 25h\n"
                     "      threshold: 3\n"),
                 "8:15", "expected a duration in 1s..1d");
        load_err(AGG("      group_by: card_token\n"
                     "      function: count\n"
                     "      window: 5m\n"
                     "      threshold: 0\n"),
                 "9:18",
                 "found 0 for threshold of rule 'g', expected an integer >= 1");
        load_err(AGG("      group_by: card_token\n"
                     "      function: count\n"
                     "      window: 5m\n"
                     "      threshold: '5'\n"),
                 "9:18", "found the string '5' for threshold");

        /* group_by: one name or a list of 1..4 distinct record fields */
#define GB(g)                                                                  \
        AGG("      group_by: " g "\n      function: count\n"                   \
            "      window: 5m\n      threshold: 3\n")
        load_err(GB("card"), "6:17",
                 "found 'card' for group_by of rule 'g', expected a record "
                 "field (one of: txn_id, kind, status,");
        load_err(GB("[merchant_id, cardtoken]"), "6:31",
                 "found 'cardtoken' for group_by of rule 'g'");
        load_err(GB("[stan, rrn, stan]"), "6:29",
                 "found 'stan' twice in group_by of rule 'g', expected "
                 "distinct fields");
        load_err(GB("[]"), "6:17",
                 "found 0 fields for group_by of rule 'g', expected a field "
                 "name or a list of 1 to 4 distinct field names");
        load_err(GB("[txn_id, kind, status, stan, rrn]"), "6:17",
                 "found 5 fields for group_by");
        load_err(GB("{a: 1}"), "6:17", "found a mapping for group_by");
        load_err(GB("[[stan]]"), "6:18", "found a list for group_by");
        load_err(GB("[5]"), "6:18", "found the integer '5' for group_by");
        load_err(GB(""), "6:16", "found null (an empty value) for group_by");

        pg_ruleset_t *rs = load_ok(
            AGG("      where: \"entry_mode != chip\"\n"
                "      group_by: [terminal_id, kind, amount, entry_mode]\n"
                "      function: distinct\n"
                "      field: card_token\n"
                "      window: 5m\n"
                "      threshold: 20\n"));
        const pg_rule_t *r = &rs->rules[0];
        assert_int_equal(r->n_group_by, 4);
        assert_int_equal(r->group_by[0], PG_F_TERMINAL_ID);
        assert_int_equal(r->group_by[1], PG_F_KIND);
        assert_int_equal(r->group_by[2], PG_F_AMOUNT);
        assert_int_equal(r->group_by[3], PG_F_ENTRY_MODE);
        assert_int_equal(r->fn, PG_AGG_DISTINCT);
        assert_int_equal(r->distinct_field, PG_F_CARD_TOKEN);
        assert_int_equal(r->threshold, 20);
        assert_non_null(r->where);
        pg_record_t rec = record(PG_KIND_PURCHASE, PG_STATUS_APPROVED);
        rec.entry_mode = PG_ENTRY_SWIPE;
        assert_true(pg_expr_eval(r->where, &rec));
        rec.entry_mode = PG_ENTRY_CHIP;
        assert_false(pg_expr_eval(r->where, &rec));
        pg_rules_free(rs);

        /* an empty where keeps every record */
        rs = load_ok(AGG("      where: '  '\n"
                         "      group_by: stan\n"
                         "      function: count\n"
                         "      window: 1s\n"
                         "      threshold: 1\n"));
        assert_null(rs->rules[0].where);
        pg_rules_free(rs);
}

static void where_errors_point_into_the_string(void **state)
{
#define W(w)                                                                   \
        AGG("      where: " w "\n      group_by: stan\n"                       \
            "      function: count\n      window: 1m\n"                        \
            "      threshold: 1\n")
        /* plain: the value starts at column 14 */
        load_err(W("kind == purchse"), "6:22",
                 "in where of rule 'g': unknown kind 'purchse' (expected "
                 "purchase, refund, reversal, void)");
        /* quoted: one more for the quote */
        load_err(W("\"kind == purchase and amount == abc\""), "6:46",
                 "in where of rule 'g': amount needs an integer, found 'abc'");
        load_err(W("'merchant_id < 5'"), "6:27",
                 "operator '<' needs an integer field, but merchant_id is a "
                 "string");
        load_err(W("'(kind == purchase'"), "6:32", "expected ')'");
        /* a literal block: lines and indentation are followed */
        load_err(W("|\n        kind == purchase and\n        amout > 5"), "8:9",
                 "in where of rule 'g': unknown field 'amout'");
        load_err(W(">-\n          status == declined\n          or kind == "
                   "refnd"),
                 "8:22", "unknown kind 'refnd'");
        load_err(W("5"), "6:14",
                 "found the integer '5' for where of rule 'g', expected a "
                 "filter expression (a string)");
        load_err(W("[kind]"), "6:14", "found a list for where");

        /* nesting past the limit is refused at load time */
        char y[4096], w[1024];
        size_t o = 0;
        for (int i = 0; i <= PG_EXPR_MAX_DEPTH; i++)
                o += (size_t)snprintf(w + o, sizeof(w) - o, "not ");
        snprintf(w + o, sizeof(w) - o, "retransmission");
        snprintf(y, sizeof(y), W("'%s'"), w);
        load_err(y, "6:271", "nested too deeply");
}

static void refund_only_where_allowed(void **state)
{
        load_err(HEAD "  - id: x\n"
                      "    detector: refund_anomaly\n"
                      "    action: refund\n",
                 "5:13",
                 "found action 'refund' in rule 'x', but detector "
                 "refund_anomaly only alerts: expected alert (refund is for "
                 "retry_duplicate, repeated_swipe and amount_mismatch)");
        load_err(HEAD "  - {id: g, detector: aggregate, action: refund, "
                      "params: {group_by: stan, function: count, window: 1m, "
                      "threshold: 1}}\n",
                 "3:42", "detector aggregate only alerts");
        pg_ruleset_t *rs = load_ok(
            HEAD "  - {id: a, detector: retry_duplicate, action: refund}\n"
                 "  - {id: b, detector: repeated_swipe, action: refund}\n"
                 "  - {id: c, detector: amount_mismatch, action: refund}\n"
                 "  - {id: d, detector: refund_anomaly, action: alert}\n");
        for (int i = 0; i < 3; i++)
                assert_int_equal(rs->rules[i].action, PG_ACTION_REFUND);
        assert_int_equal(rs->rules[3].action, PG_ACTION_ALERT);
        pg_rules_free(rs);
}

static void ranges(void **state)
{
        load_err(HEAD "  - {id: a, detector: retry_duplicate, params: "
                      "{window: 0s}}\n",
                 "3:57",
                 "found 0s for window of rule 'a', which is out of range, "
                 "expected a duration in 1s..1d");
        load_err(HEAD "  - {id: a, detector: retry_duplicate, params: "
                      "{window: 999ms}}\n",
                 "3:57", "expected a duration in 1s..1d");
        load_err(HEAD "  - {id: a, detector: retry_duplicate, params: "
                      "{window: 25h}}\n",
                 "3:57", "expected a duration in 1s..1d");
        load_err(HEAD "  - {id: s, detector: repeated_swipe, params: "
                      "{window: 2m, auto_refund_within: 121s}}\n",
                 "3:80",
                 "found 121s for auto_refund_within of rule 's' (window 2m), "
                 "which is out of range, expected a duration in 0..2m");
        /* auto_refund_within is checked against the default window too */
        load_err(HEAD "  - {id: s, detector: repeated_swipe, params: "
                      "{auto_refund_within: 3m}}\n",
                 "3:68", "expected a duration in 0..2m");
        load_err(HEAD "  - {id: r, detector: refund_anomaly, params: "
                      "{lookback: 59s}}\n",
                 "3:58", "expected a duration in 1m..400d");
        load_err(HEAD "  - {id: r, detector: refund_anomaly, params: "
                      "{lookback: 401d}}\n",
                 "3:58", "expected a duration in 1m..400d");
        pg_ruleset_t *rs = load_ok(
            HEAD "  - {id: a, detector: retry_duplicate, params: {window: "
                 "1d}}\n"
                 "  - {id: s, detector: repeated_swipe, params: {window: 1s, "
                 "auto_refund_within: 0s}}\n"
                 "  - {id: t, detector: repeated_swipe, params: "
                 "{auto_refund_within: 2m}}\n"
                 "  - {id: r, detector: refund_anomaly, params: {lookback: "
                 "400d}}\n"
                 "  - {id: q, detector: refund_anomaly, params: {lookback: "
                 "1m}}\n");
        assert_int_equal(rs->rules[0].window_ms, DAY);
        assert_int_equal(rs->rules[1].window_ms, SEC);
        assert_int_equal(rs->rules[1].auto_refund_within_ms, 0);
        assert_int_equal(rs->rules[2].auto_refund_within_ms, 2 * MIN);
        assert_int_equal(rs->rules[3].lookback_ms, 400 * DAY);
        assert_int_equal(rs->rules[4].lookback_ms, MIN);
        pg_rules_free(rs);
}

static void off_rules_are_checked_but_left_out(void **state)
{
        pg_ruleset_t *rs = load_ok(
            HEAD "  - {id: a, detector: retry_duplicate}\n"
                 "  - {id: b, detector: retry_duplicate, mode: off}\n"
                 "  - {id: c, detector: repeated_swipe, mode: shadow, "
                 "action: refund}\n"
                 "  - {id: d, detector: amount_mismatch, enabled: false}\n"
                 "  - {id: e, detector: refund_anomaly, enabled: true, mode: "
                 "shadow}\n"
                 "  - {id: f, detector: refund_anomaly, enabled: False, "
                 "mode: shadow}\n"
                 "  - {id: g, detector: refund_anomaly, enabled: TRUE, "
                 "mode: off}\n"
                 "  - id: h\n"
                 "    detector: aggregate\n"
                 "    mode: off\n"
                 "    params: {where: 'kind == void', group_by: stan, "
                 "function: count, window: 1m, threshold: 1}\n"
                 "  - {id: i, detector: amount_mismatch, mode: enforce}\n");
        assert_int_equal(rs->n_rules, 4);
        assert_string_equal(rs->rules[0].id, "a");
        assert_string_equal(rs->rules[1].id, "c");
        assert_int_equal(rs->rules[1].mode, PG_MODE_SHADOW);
        assert_int_equal(rs->rules[1].action, PG_ACTION_REFUND);
        assert_string_equal(rs->rules[2].id, "e");
        assert_int_equal(rs->rules[2].mode, PG_MODE_SHADOW);
        assert_string_equal(rs->rules[3].id, "i");
        assert_int_equal(rs->rules[3].line, 14);
        pg_rules_free(rs);

        /* every rule off is a valid (if quiet) rule set */
        rs = load_ok(HEAD "  - {id: a, detector: retry_duplicate, mode: "
                          "off}\n");
        assert_int_equal(rs->n_rules, 0);
        assert_non_null(rs->rules);
        pg_rules_free(rs);

        /* an off rule is still validated */
        load_err(HEAD "  - id: a\n"
                      "    detector: retry_duplicate\n"
                      "    enabled: false\n"
                      "    params: {window: 2d}\n",
                 "6:22", "expected a duration in 1s..1d");
        load_err(HEAD "  - id: h\n"
                      "    detector: aggregate\n"
                      "    mode: off\n"
                      "    params: {where: 'kind == voyd', group_by: stan, "
                      "function: count, window: 1m, threshold: 1}\n",
                 "6:30", "unknown kind 'voyd'");
}

/* rule-level where / except / owner / tags and named lists */
static void filters_lists_and_metadata(void **state)
{
        pg_ruleset_t *rs =
            load_ok("version: \"1\"\n"
                    "lists:\n"
                    "  vip: [M1, \"M'2\"]\n"
                    "rules:\n"
                    "  - id: r\n"
                    "    detector: amount_mismatch\n"
                    "    owner: ops\n"
                    "    tags: [a, b.c]\n"
                    "    where: \"merchant_id in @vip and amount > 5\"\n"
                    "    except: {terminal_id: [T9]}\n");
        assert_non_null(rs->rules[0].filter);
        assert_string_equal(rs->rules[0].owner, "ops");
        assert_string_equal(rs->rules[0].tags, "a,b.c");
        pg_rules_free(rs);
        assert_null(load(HEAD "  - id: r\n    detector: amount_mismatch\n"
                              "    where: \"merchant_id in @nope\"\n"));
        assert_non_null(strstr(err, "t.yaml:5:28: "));
        assert_non_null(strstr(err, "unknown list '@nope'"));
        assert_null(load(HEAD "  - id: r\n    detector: amount_mismatch\n"
                              "    except: {card_token: [x]}\n"));
        assert_non_null(strstr(err, "unknown key 'card_token'"));
        /* an inline except list is checked like a named list */
        assert_null(load(HEAD "  - id: r\n    detector: amount_mismatch\n"
                              "    except: {merchant_id: [\"a'b\\\"c\"]}\n"));
        assert_non_null(strstr(err, "t.yaml:5:28: found a value with both"));
        assert_null(load(HEAD "  - id: r\n    detector: amount_mismatch\n"
                              "    tags: oops\n"));
        assert_non_null(strstr(err, "expected a list of tags"));
        /* cooldown: alert-only rules, key fields default to merchant_id */
        rs = load_ok(HEAD "  - {id: c, detector: refund_anomaly, "
                          "cooldown: 10m, cooldown_key: [terminal_id]}\n"
                          "  - {id: d, detector: amount_mismatch, cooldown: "
                          "1m}\n");
        assert_int_equal(rs->rules[0].cooldown_ms, 600000);
        assert_int_equal(rs->rules[0].cooldown_key[0], PG_F_TERMINAL_ID);
        assert_int_equal(rs->rules[1].cooldown_key[0], PG_F_MERCHANT_ID);
        pg_rules_free(rs);
        assert_null(load(HEAD "  - {id: c, detector: amount_mismatch, "
                              "action: refund, cooldown: 10m}\n"));
        assert_non_null(strstr(err, "expected cooldown only on rules with "
                                    "action alert"));
        /* on_findings: an incident rule */
        rs = load_ok(
            HEAD
            "  - {id: i, detector: aggregate, params: "
            "{on_findings: [retry_duplicate, overcharge], function: count, "
            "group_by: [terminal_id], window: 5m, "
            "threshold: 5}}\n");
        assert_int_equal(rs->rules[0].on_findings, (1u << 0) | (1u << 2));
        pg_rules_free(rs);
        assert_null(load(
            HEAD "  - {id: i, detector: aggregate, params: "
                 "{on_findings: [refund_blocked], function: count, group_by: "
                 "[terminal_id], window: 5m, threshold: 5}}\n"));
        assert_non_null(strstr(err, "expected one of: retry_duplicate"));
        assert_null(load("version: x\nlists: {a: []}\nrules:\n"
                         "  - {id: r, detector: amount_mismatch}\n"));
        assert_non_null(strstr(err, "expected a list of 1 to"));
}

/* include: shared list files, errors named by the file they are in */
static void includes(void **state)
{
        char dir[] = "/tmp/pg-inc-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char p1[64], p2[64], p3[64];
        snprintf(p1, sizeof(p1), "%s/lists.yaml", dir);
        snprintf(p2, sizeof(p2), "%s/rules.yaml", dir);
        snprintf(p3, sizeof(p3), "%s/bad.yaml", dir);
        FILE *f = fopen(p1, "w");
        fputs("lists:\n  quiet: [M9]\n", f);
        fclose(f);
        f = fopen(p3, "w");
        fputs("lists:\n  oops: 3\n", f);
        fclose(f);
        f = fopen(p2, "w");
        fputs("version: x\ninclude: [lists.yaml]\nrules:\n"
              "  - {id: r, detector: amount_mismatch,\n"
              "     except: {merchant_id: \"@quiet\"}}\n",
              f);
        fclose(f);
        pg_ruleset_t *rs = pg_rules_load_file(p2, err, sizeof(err));
        assert_non_null(rs);
        assert_non_null(rs->rules[0].filter);
        char h1[17];
        snprintf(h1, sizeof(h1), "%s", rs->hash);
        pg_rules_free(rs);
        /* the hash covers the included file */
        f = fopen(p1, "w");
        fputs("lists:\n  quiet: [M8]\n", f);
        fclose(f);
        rs = pg_rules_load_file(p2, err, sizeof(err));
        assert_non_null(rs);
        assert_string_not_equal(h1, rs->hash);
        pg_rules_free(rs);
        /* an error inside an included file names that file */
        f = fopen(p2, "w");
        fputs("version: x\ninclude: [bad.yaml]\nrules:\n"
              "  - {id: r, detector: amount_mismatch}\n",
              f);
        fclose(f);
        assert_null(pg_rules_load_file(p2, err, sizeof(err)));
        char want[80];
        snprintf(want, sizeof(want), "%s:2:9: ", p3);
        assert_non_null(strstr(err, want));
        unlink(p1);
        unlink(p2);
        unlink(p3);
        rmdir(dir);
}

/* check lists every broken rule, one error each, in file order */
static void every_broken_rule_is_listed(void **state)
{
        const char *y = "version: x\n"
                        "rules:\n"
                        "  - id: a\n"
                        "    detector: nope\n"
                        "  - id: b\n"
                        "    detector: retry_duplicate\n"
                        "  - id: c\n"
                        "    detector: retry_duplicate\n"
                        "    mode: maybe\n"
                        "    severity: loud\n";
        char buf[2048];
        assert_null(
            pg_rules_load_buffer("t.yaml", y, strlen(y), buf, sizeof(buf)));
        assert_non_null(strstr(buf, "t.yaml:4:15: "));
        assert_non_null(strstr(buf, "\nt.yaml:10:15: "));
        /* one error per rule: the second problem of rule c is not listed */
        assert_null(strstr(buf, "maybe"));
        assert_null(strchr(strchr(buf, '\n') + 1, '\n'));
}

static void yaml_syntax_errors(void **state)
{
        load_err("", "1:1",
                 "found an empty file, expected a mapping with "
                 "version and rules");
        load_err("# nothing here\n", "1:1", "found an empty file");
        load_err("version: 1\nrules:\n\t- id: a\n", "3:1",
                 "invalid YAML: found character that cannot start any token");
        load_err(HEAD "  - {id: a, detector: retry_duplicate\n", "4:1",
                 "invalid YAML: did not find expected ',' or '}' (while "
                 "parsing a flow mapping at line 3, column 5)");
        load_err("version: \"1\nrules: []\n", "3:1",
                 "invalid YAML: found unexpected end of stream (while "
                 "scanning a quoted scalar at line 1, column 10)");
        load_err(HEAD "  - id: a\n   detector: x\n", "4:4",
                 "invalid YAML: did not find expected '-' indicator (while "
                 "parsing a block collection at line 3, column 3)");
        load_err("version: 1\nrules: [*r]\n", "2:9",
                 "invalid YAML: found undefined alias");
        load_err("version: 1\nrules: [\xff]\n", "2:9",
                 "invalid input: invalid leading UTF-8 octet (byte 0xff), "
                 "expected UTF-8 text");
        load_err("version: 1\nrules: \x01\n", "2:8",
                 "invalid input: control characters are not allowed");
        load_err("version: 1\nrules: [{id: a, detector: refund_anomaly}]\n"
                 "---\nversion: 2\n",
                 "4:1", "found a second YAML document, expected one document");
        load_err("version: 1\nrules: [{id: a, detector: refund_anomaly}]\n"
                 "---\n- [\n",
                 "5:1", "invalid YAML");
        /* an explicit end of document marker alone is fine */
        pg_ruleset_t *rs = load_ok("---\nversion: 1\nrules: [{id: a, "
                                   "detector: refund_anomaly}]\n...\n");
        pg_rules_free(rs);
        /* NUL inside the buffer is not an end */
        static const char nul[] = "version: 1\nrules: [{id: a, detector: "
                                  "refund_anomaly}]\n\0junk";
        assert_null(pg_rules_load_buffer("t.yaml", nul, sizeof(nul) - 1, err,
                                         sizeof(err)));
        assert_non_null(strstr(err, "t.yaml:3:1: invalid input"));
}

static void anchors_and_aliases(void **state)
{
        /* aliases to values work; the same rule twice is a duplicate id */
        pg_ruleset_t *rs = load_ok(
            "version: 1\n"
            "rules:\n"
            "  - {id: a, detector: retry_duplicate, params: {window: &w 90s}}\n"
            "  - {id: b, detector: repeated_swipe, params: {window: *w, "
            "auto_refund_within: *w}}\n");
        assert_int_equal(rs->rules[1].window_ms, 90 * SEC);
        assert_int_equal(rs->rules[1].auto_refund_within_ms, 90 * SEC);
        pg_rules_free(rs);
        load_err("version: 1\n"
                 "rules:\n"
                 "  - &r {id: a, detector: retry_duplicate}\n"
                 "  - *r\n",
                 "3:13", "duplicate rule id 'a'");
        /* a rules list that contains itself is just a wrong type */
        load_err("version: 1\nrules: &s [*s]\n", "2:8",
                 "found a list for "
                 "rule #1");
        /* merge keys are not part of the schema */
        load_err("version: 1\n"
                 "rules:\n"
                 "  - {id: a, detector: retry_duplicate, <<: {mode: off}}\n",
                 "3:40", "unknown key '<<' in rule 'a'");
}

static void file_and_error_buffer_handling(void **state)
{
        assert_null(pg_rules_load_file("/nonexistent/posguard/rules.yaml", err,
                                       sizeof(err)));
        assert_string_equal(err, "/nonexistent/posguard/rules.yaml: cannot "
                                 "open rule file: No such file or directory");
        /* a directory opens but cannot be read */
        assert_null(pg_rules_load_file("/", err, sizeof(err)));
        assert_non_null(strstr(err, "/: cannot read rule file"));

        /* a short buffer truncates, a missing one is allowed */
        char small[12];
        memset(small, 'x', sizeof(small));
        assert_null(
            pg_rules_load_buffer("t.yaml", "- a\n", 4, small, sizeof(small)));
        assert_string_equal(small, "t.yaml:1:1:");
        assert_null(pg_rules_load_buffer("t.yaml", "- a\n", 4, NULL, 0));
        assert_null(pg_rules_load_buffer(NULL, NULL, 0, err, sizeof(err)));
        assert_non_null(strstr(err, ":1:1: found an empty file"));
        pg_rules_free(NULL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(default_yaml_loads),
            cmocka_unit_test(omitted_keys_take_defaults),
            cmocka_unit_test(settings_values_and_ranges),
            cmocka_unit_test(durations),
            cmocka_unit_test(unknown_keys),
            cmocka_unit_test(duplicate_keys),
            cmocka_unit_test(duplicate_rule_ids),
            cmocka_unit_test(wrong_types),
            cmocka_unit_test(version_values),
            cmocka_unit_test(required_keys_and_counts),
            cmocka_unit_test(aggregate_params),
            cmocka_unit_test(where_errors_point_into_the_string),
            cmocka_unit_test(refund_only_where_allowed),
            cmocka_unit_test(ranges),
            cmocka_unit_test(off_rules_are_checked_but_left_out),
            cmocka_unit_test(yaml_syntax_errors),
            cmocka_unit_test(every_broken_rule_is_listed),
            cmocka_unit_test(filters_lists_and_metadata),
            cmocka_unit_test(includes),
            cmocka_unit_test(anchors_and_aliases),
            cmocka_unit_test(file_and_error_buffer_handling),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
