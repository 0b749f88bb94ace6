/*
 * output.h - what the engine emits: alerts and refund commands.
 *
 * The structs borrow every string from the engine; they are valid only
 * during the sink callback that receives them. A sink copies what it keeps.
 */
#ifndef PG_OUTPUT_H
#define PG_OUTPUT_H

#include <stdint.h>

#define PG_ID_LEN 36     /* "al-"/"rf-" + 32 hex digits + NUL */
#define PG_MAX_RELATED 8 /* related txn_ids in one alert */
#define PG_REASON_MAX 256

typedef struct pg_alert {
        char alert_id[PG_ID_LEN];
        const char *rule_id;
        const char *rule_version;
        const char *rule_hash; /* pg_ruleset_t.hash */
        const char *detector;
        const char *finding;
        const char *severity;
        const char *mode; /* "enforce" or "shadow" */
        const char *merchant_id;
        const char *terminal_id;
        const char *txn_ids[PG_MAX_RELATED + 1]; /* offending first */
        int n_txn_ids;
        int64_t amount;
        const char *currency;
        const char *pan_masked; /* NULL when the record has none */
        char reason[PG_REASON_MAX];
        int64_t suppressed;  /* alerts held back by the rule's cooldown since
                              * the last one of this key (0: none) */
        int64_t event_time;  /* ms, of the offending record */
        int64_t detected_at; /* ms, wall clock or event clock */
        const char *blocked; /* refund_blocked: why, as a code (kill_switch,
                              * merchant_cap, global_cap, state_unavailable);
                              * NULL otherwise */
} pg_alert_t;

typedef struct pg_refund {
        char refund_id[PG_ID_LEN];
        char alert_id[PG_ID_LEN];
        const char *rule_id;
        const char *txn_id; /* of the charge refunded */
        const char *rrn;
        const char *merchant_id;
        const char *terminal_id;
        const char *card_token;
        int64_t amount;
        const char *currency;
        const char *reason; /* "duplicate" or "overcharge" */
        int64_t decided_at; /* event time of the decision */
} pg_refund_t;

/* Where the engine sends its outputs. Called from the thread that drives
 * the engine, in output order. */
typedef struct pg_sink {
        void (*alert)(void *opaque, const pg_alert_t *a);
        void (*refund)(void *opaque, const pg_refund_t *r);
        void *opaque;
} pg_sink_t;

#endif
