/*
 * kafka_obs.h - what `posguard run` exports: its metric families (one
 * static table, the only place a metric is named) and the dashboard's
 * stats event. docs/OBSERVABILITY.md lists them for the operators.
 *
 * Counting rule: what records and outputs a run counts is counted when the
 * transaction that carries them commits (an aborted transaction's counts
 * go with it, and the records are counted again when they are processed
 * again), so the committed outputs on the topics and the counters agree.
 * Gauges (lag, state, readiness) and the transaction and reload counters
 * are set as they happen.
 */
#ifndef PG_KAFKA_OBS_H
#define PG_KAFKA_OBS_H

#include <stdbool.h>
#include <stdint.h>

#include "obs_metrics.h"
#include "rules.h"

enum {
        M_CONSUMED,
        M_WARMUP,
        M_REJECTED,
        M_LATE,
        M_DUPLICATES,
        M_ALERTS,
        M_REFUNDS,
        M_REFUND_AMOUNT,
        M_BLOCKED,
        M_BLOCKED_AMOUNT,
        M_NOT_REFUNDED,
        M_CAP_HITS,
        M_DETECTION,
        M_CONSUME_DELAY,
        M_BATCH,
        M_COMMIT,
        M_TXNS,
        M_REBUILDS,
        M_LAG,
        M_ASSIGNED,
        M_WARMING,
        M_READY,
        M_STATE_ENTRIES,
        M_STATE_BYTES,
        M_STATE_CAP,
        M_HELD,
        M_RULES_INFO,
        M_RELOADS,
        M_START,
        M_TOP_ALERTS,
        M_TOP_TERMINALS,
        M__COUNT
};

extern const pg_mfamily_t pg_run_families[M__COUNT];

/* The dashboard's "stats" event: one JSON object of the committed totals
 * in m (the exported registry) and the rule set in force. Returns its
 * length (< size). */
size_t pg_run_stats_json(char *buf, size_t size, const pg_metrics_t *m,
                         const pg_ruleset_t *rs, int64_t at_ms, bool ready,
                         const char *why);

/*
 * Top merchants by committed alerts in the last PG_TOPK_WINDOW_MIN minutes,
 * with how many of their terminals alerted: what the risk view's "top
 * merchants" panel shows. Exported as a gauge of the top PG_TOPK_N only, so
 * the label's values stay few; terminal ids are never labels (only their
 * count per merchant), the live dashboard lists them from the alerts.
 */
#define PG_TOPK_WINDOW_MIN 15
#define PG_TOPK_N 10
typedef struct pg_topk pg_topk_t;
typedef struct pg_topk_row {
        const char *merchant; /* valid until the next add */
        uint32_t alerts;
        uint32_t terminals; /* distinct, counted up to 16 */
} pg_topk_row_t;
pg_topk_t *pg_topk_new(void);
void pg_topk_free(pg_topk_t *t);
void pg_topk_add(pg_topk_t *t, const char *merchant, const char *terminal,
                 int64_t now_ms);
/* The top n (at most), most alerts first. */
size_t pg_topk_top(const pg_topk_t *t, int64_t now_ms, pg_topk_row_t *out,
                   size_t n);

#endif
