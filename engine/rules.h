/*
 * rules.h - a compiled rule set.
 *
 * A rule set is built once from a YAML file (rules_load.c), is immutable
 * afterwards, and is shared read-only by every engine that uses it, so a
 * later reload can build a new one and swap the pointer. The engine borrows
 * it: the rule set must outlive every engine built on it.
 */
#ifndef PG_RULES_H
#define PG_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

typedef struct pg_expr pg_expr_t; /* rules_expr.h */

typedef enum pg_detector {
        PG_DET_RETRY_DUPLICATE = 0,
        PG_DET_REPEATED_SWIPE,
        PG_DET_AMOUNT_MISMATCH,
        PG_DET_REFUND_ANOMALY,
        PG_DET_AGGREGATE,
        PG_DET__COUNT
} pg_detector_t;

typedef enum pg_action { PG_ACTION_ALERT = 0, PG_ACTION_REFUND } pg_action_t;
typedef enum pg_mode {
        PG_MODE_ENFORCE = 0,
        PG_MODE_SHADOW,
        PG_MODE_OFF
} pg_mode_t;
typedef enum pg_agg_fn {
        PG_AGG_COUNT = 0,
        PG_AGG_SUM,
        PG_AGG_DISTINCT
} pg_agg_fn_t;

#define PG_RULE_ID_MAX 64
#define PG_MAX_GROUP_BY 4

typedef struct pg_rule {
        char id[PG_RULE_ID_MAX + 1];
        pg_detector_t detector;
        char severity[16]; /* low | medium | high | critical */
        pg_action_t action;
        pg_mode_t mode;
        /* retry_duplicate, repeated_swipe, aggregate */
        int64_t window_ms;
        /* repeated_swipe */
        int64_t auto_refund_within_ms;
        /* amount_mismatch */
        int64_t tolerance;
        /* refund_anomaly */
        int64_t lookback_ms;
        /* rule-level `where:` and `except:`, for every detector: the rule
         * judges only records that pass (NULL: all). A pairing rule still
         * remembers every charge as a possible original. */
        pg_expr_t *filter;
        char owner[PG_RULE_ID_MAX + 1];
        /* alert cooldown per key (alert-only rules): 0 = none */
        int64_t cooldown_ms;
        int n_cooldown_key;
        pg_field_t cooldown_key[PG_MAX_GROUP_BY]; /* default merchant_id */
        char tags[128];                           /* comma-separated */
        /* aggregate */
        pg_expr_t *where; /* NULL: every record */
        int n_group_by;
        pg_field_t group_by[PG_MAX_GROUP_BY];
        pg_agg_fn_t fn;
        pg_field_t distinct_field; /* for PG_AGG_DISTINCT */
        /* incident: 0 counts records; otherwise a bit per finding
         * (PG_RULE_FINDING_NAMES order) and the rule counts the records
         * that raised such an alert, once each */
        uint32_t on_findings;
        int64_t threshold;
        /* where the rule starts in its file, for messages */
        int line;
} pg_rule_t;

/* The findings an aggregate rule may count with on_findings, in bit order
 * (the same order as the engine's pg_finding_t). */
#define PG_RULE_FINDING_NAMES                                                  \
        {                                                                      \
                "retry_duplicate", "repeated_swipe", "overcharge",             \
                    "undercharge", "refund_exceeds_original",                  \
                    "refund_card_mismatch", "refund_without_original"          \
        }
#define PG_RULE_N_FINDINGS 7

typedef struct pg_ruleset {
        char version[PG_RULE_ID_MAX + 1];
        /* XXH3-64 of the rule file's bytes, 16 hex digits: which exact text
         * an alert was decided under (two edits may share a version) */
        char hash[17];
        char path[256];
        /* engine settings carried by the rule file (SEMANTICS.md) */
        int64_t allowed_lateness_ms; /* default 5 s */
        int64_t dedupe_horizon_ms;   /* default 24 h */
        int64_t refund_delay_ms;     /* default 120 s */
        int n_rules;                 /* rules with mode != off */
        pg_rule_t *rules;            /* in file order */
} pg_ruleset_t;

/*
 * Load and compile a rule file. On error returns NULL and writes
 * "FILE:LINE:COL: what was expected" into errstr. The caller owns the
 * result and frees it with pg_rules_free().
 */
pg_ruleset_t *pg_rules_load_file(const char *path, char *errstr,
                                 size_t errstr_size);
/* Same, from a buffer; name is used in messages. */
pg_ruleset_t *pg_rules_load_buffer(const char *name, const char *buf,
                                   size_t len, char *errstr,
                                   size_t errstr_size);
void pg_rules_free(pg_ruleset_t *rs);

const char *pg_detector_name(pg_detector_t d);
const char *pg_mode_name(pg_mode_t m);

/* Parse a duration like "90s", "15m", "2h", "30d", "500ms" into ms.
 * Returns 0 on success. */
int pg_duration_parse(const char *s, size_t len, int64_t *ms);

#endif
