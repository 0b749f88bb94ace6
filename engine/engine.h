/*
 * engine.h - the detection engine: records in, alerts and refunds out.
 *
 * One engine owns the state of one stream partition (replay: the whole
 * input). It is single-threaded: every function here must be called from
 * the one thread that drives this engine. The rule set is borrowed and must
 * outlive the engine. See docs/SEMANTICS.md for what it decides.
 */
#ifndef PG_ENGINE_H
#define PG_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "output.h"
#include "record.h"
#include "rules.h"

typedef struct pg_engine pg_engine_t;

typedef struct pg_engine_conf {
        /* Guard rails: refunded minor units per UTC hour of event time, per
         * (merchant, currency) and per currency. <= 0 means the default. */
        int64_t refund_cap_merchant;
        int64_t refund_cap_global;
        bool kill_switch;
        /* State memory cap in bytes (0: default 1 GiB). */
        size_t max_state_bytes;
        /* Live records the engine is sized for from the start (0: none,
         * its tables start small and double as they fill). The transport
         * dedupe table gets room for this many txn_ids, the facts table
         * and its txn_id strings for as many charges (fewer when facts are
         * kept for less than the dedupe horizon: in proportion), so that
         * a stream up to that size never waits for a table to double.
         * Tables still grow past it. pg_engine_new refuses a size whose
         * arrays would take more than half of max_state_bytes (the rest
         * is for the other tables, and for growth), and one over
         * PG_MAX_EXPECT_RECORDS. Per engine, as max_state_bytes is. */
        size_t expect_records;
        /* detected_at from the event clock instead of the wall clock. */
        bool event_clock;
} pg_engine_conf_t;

#define PG_DEFAULT_CAP_MERCHANT 100000000LL /* 1,000,000.00 per hour */
#define PG_DEFAULT_CAP_GLOBAL 1000000000LL  /* 10,000,000.00 per hour */
#define PG_DEFAULT_MAX_STATE ((size_t)1 << 30)
#define PG_MAX_EXPECT_RECORDS ((size_t)1 << 36)

typedef enum pg_finding {
        PG_FIND_RETRY_DUPLICATE = 0,
        PG_FIND_REPEATED_SWIPE,
        PG_FIND_OVERCHARGE,
        PG_FIND_UNDERCHARGE,
        PG_FIND_REFUND_EXCEEDS_ORIGINAL,
        PG_FIND_REFUND_CARD_MISMATCH,
        PG_FIND_REFUND_WITHOUT_ORIGINAL,
        PG_FIND_REFUND_BLOCKED,
        PG_FIND_AGGREGATE,
        PG_FIND__COUNT
} pg_finding_t;

const char *pg_finding_name(pg_finding_t f);

typedef struct pg_engine_stats {
        uint64_t records;    /* accepted records pushed */
        uint64_t duplicates; /* transport duplicates dropped */
        uint64_t late;       /* later than allowed_lateness */
        uint64_t alerts[PG_FIND__COUNT];
        uint64_t alerts_shadow;     /* of which from shadow rules */
        uint64_t alerts_suppressed; /* held back by rule cooldowns */
        uint64_t refunds_duplicate;
        uint64_t refunds_overcharge;
        uint64_t refund_amount;     /* minor units commanded, all currencies */
        uint64_t refunds_cancelled; /* charge cancelled by decision time */
        uint64_t refunds_nothing_left; /* already refunded in full */
        uint64_t refunds_blocked;      /* guard rails (see alerts) */
        uint64_t state_full;           /* inserts refused by the memory cap */
        uint64_t
            chain_truncated;    /* pairing looked at most 64 earlier charges */
        uint64_t rrn_conflicts; /* a second charge with a known rrn */
        uint64_t reorder_overflow; /* forced out of the reorder buffer */
        size_t state_bytes;        /* current state memory */
        size_t state_bytes_peak;
} pg_engine_stats_t;

/* One part of an engine's state: a table of the engine, or of one rule. */
typedef struct pg_state_part {
        const char *table; /* dedupe, facts, caps, cooldown, reorder,
                            * pending, pairing, aggregate */
        const char *rule;  /* the rule's id, "" for the engine's own */
        size_t entries;    /* live or not yet expired */
        size_t bytes;      /* memory held, as the cap counts it */
} pg_state_part_t;

/* Build an engine. Returns NULL with errstr set on failure. */
pg_engine_t *pg_engine_new(const pg_ruleset_t *rules,
                           const pg_engine_conf_t *conf, const pg_sink_t *sink,
                           char *errstr, size_t errstr_size);
/* What pg_engine_new would refuse of conf with these rules (the state
 * sizing, expect_records): 0, or -1 with errstr set. Allocates nothing,
 * so a runner can check its configuration before any engine exists. */
int pg_engine_conf_check(const pg_ruleset_t *rules,
                         const pg_engine_conf_t *conf, char *errstr,
                         size_t errstr_size);
/* Offer one accepted record (copied; rec->seq is ignored). Outputs for it,
 * and for any decision its time makes due, go to the sink before return or
 * later, as event time advances. */
void pg_engine_push(pg_engine_t *e, const pg_record_t *rec);
/* End of a finite input: release every buffered record and resolve every
 * pending decision as if time ran on past every window. */
void pg_engine_flush(pg_engine_t *e);
void pg_engine_stats(const pg_engine_t *e, pg_engine_stats_t *out);
/* The parts of e's state: fills up to max, returns how many there are. */
size_t pg_engine_state_parts(const pg_engine_t *e, pg_state_part_t *out,
                             size_t max);
/* The longest event time any state of an engine on rules may matter for:
 * pairing windows plus the refund delay, refund lookbacks, aggregate
 * windows and the dedupe horizon, each plus the allowed lateness. A
 * consumer that rebuilds state re-reads at least this much history. */
int64_t pg_engine_horizon_ms(const pg_ruleset_t *rules);
/* Format an amount in minor units for people: "12.34 EUR", "1277 JPY"
 * (ISO 4217 exponents), for reasons and reports. */
void pg_fmt_amount(char *buf, size_t size, int64_t minor, const char *cur);
/* Decimal digits of a currency's minor unit (ISO 4217: 2, JPY 0, KWD 3). */
int pg_currency_exponent(const char *cur);
void pg_engine_free(pg_engine_t *e);

#endif
