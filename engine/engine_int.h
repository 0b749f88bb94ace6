/*
 * engine_int.h - what the engine's modules share: the engine struct, the
 * per-rule state, refund claims and the helpers detectors call.
 *
 * Only engine_*.c, detect_*.c, refund_*.c and window_reorder.c include it.
 * Everything here runs on the one thread that drives the engine.
 */
#ifndef PG_ENGINE_INT_H
#define PG_ENGINE_INT_H

#include "engine.h"
#include "state_strlog.h"
#include "state_table.h"
#include "util_hash.h"
#include "window_chain.h"
#include "window_reorder.h"

#define PG_MAX_CLAIMS 4    /* refund claims on one charge (one per rule) */
#define PG_MAX_WALK 64     /* earlier charges a pairing detector looks at */
#define PG_EXPIRE_WORK 256 /* expiry records per table per step */

/* Key tags: one per kind of key, so keys of two tables never meet. */
enum {
        PG_TAG_TXN = 1,
        PG_TAG_RRN,
        PG_TAG_CARD,
        PG_TAG_STAN,
        PG_TAG_ORDER,
        PG_TAG_RETRY,
        PG_TAG_SWIPE,
        PG_TAG_AGG,
        PG_TAG_AGGV,
        PG_TAG_CAP_M,
        PG_TAG_CAP_G,
        PG_TAG_COOLDOWN,
        PG_TAG_TERMINAL,
        PG_TAG_MERCHANT
};

/*
 * What the engine knows about one rrn (SEMANTICS.md 2, step 2), in two
 * tables keyed by the rrn. The charge fact is what every charge writes and
 * every refund decision reads; it fits a 64-byte slot (key and expiry
 * included), one cache line. What happens to a charge afterwards (approved
 * refunds, a cancellation, the engine's own refund) is rare and lives in
 * the followups table, which stays small. Both entries of an rrn keep the
 * same expiry, the longest any record of the rrn asked for (align_rrn in
 * engine.c), as the one entry they were before.
 */
typedef struct pg_fact {
        int64_t charge_t; /* valid when has_charge */
        int64_t charge_amount;
        uint64_t card_fp;    /* the card key's first 64 bits */
        uint64_t charge_txn; /* its txn_id in e->strings (see strlog) */
        char currency[4];
        uint8_t has_charge;
        /* a followup of this rrn was refused by the memory cap: its
         * refunds and cancellation are not known */
        uint8_t followups_lost;
} pg_fact_t;

typedef struct pg_followup {
        int64_t cancel_at; /* valid when has_cancel */
        int64_t refunded;  /* approved refunds processed so far */
        int64_t commanded; /* engine refund, valid when has_commanded */
        int64_t commanded_at;
        uint8_t has_cancel, has_commanded;
} pg_followup_t;

/* Whether a charge is cancelled at a time. */
typedef enum {
        PG_CANCEL_NO,
        PG_CANCEL_YES,
        PG_CANCEL_UNKNOWN /* its followups were refused by the memory cap */
} pg_cancel_t;

/* A member of a pairing chain: one earlier charge, in one 64-byte cache
 * line. Its rrn key is whole (the fact table's key); its STAN and order id
 * are only compared with those of a later charge of the same group (same
 * merchant or terminal, card, amount and currency, within the window), so
 * 64 bits of their keys do: two different values compare equal with odds
 * of 2^-64 per comparison. */
typedef struct pg_pair_member {
        pg_chain_hdr_t h;
        pg_key_t rrn_key;
        uint64_t stan_fp;  /* stan key's first 64 bits */
        uint64_t order_fp; /* order key's, valid when has_order */
        uint8_t has_order; /* its txn_id: pg_chain_str */
} pg_pair_member_t;

/* A refund claim on the charge being processed (SEMANTICS.md 4). */
typedef struct pg_claim {
        uint16_t rule;
        uint8_t full; /* duplicate (full) or overcharge (partial) */
        uint8_t nq;
        int64_t amount; /* partial: the overcharge */
        char alert_id[PG_ID_LEN];
        pg_key_t q[PG_MAX_RELATED];     /* rrns of qualifying charges */
        pg_str_t q_txn[PG_MAX_RELATED]; /* their txn_ids */
} pg_claim_t;

typedef struct pg_claims {
        int n;
        pg_claim_t c[PG_MAX_CLAIMS];
} pg_claims_t;

/* A pending refund decision for one charge. */
typedef struct pg_pending {
        int64_t due;
        uint64_t seq;
        int64_t amount;
        int64_t t;
        pg_key_t rrn_key;
        pg_str_t txn_id, rrn, merchant_id, terminal_id, card_token, currency,
            pan_masked;
        pg_claims_t claims;
        struct pg_pending *next_free;
} pg_pending_t;

/* A rule's alert cooldown for one key. */
typedef struct pg_cooldown {
        int64_t until;      /* alerts of this key before this are held */
        int64_t suppressed; /* held since the last one emitted */
} pg_cooldown_t;

/* Aggregate rule state. */
typedef struct pg_agg_state {
        pg_table_t *groups;   /* group key -> pg_agg_group_t */
        pg_table_t *distinct; /* (group, value) -> count */
        unsigned char *ring;  /* events, FIFO in processing order */
        uint64_t cap, tail, head;
} pg_agg_state_t;

typedef struct pg_rule_state {
        pg_chain_t *chain;  /* retry_duplicate, repeated_swipe */
        pg_agg_state_t agg; /* aggregate */
        uint64_t
            incident_seq; /* incident: seq + 1 of the record last counted */
} pg_rule_state_t;

struct pg_engine {
        const pg_ruleset_t *rs;
        pg_engine_conf_t conf;
        pg_sink_t sink;
        pg_budget_t budget;
        pg_engine_stats_t st;

        /* arrival */
        uint64_t seq;
        int64_t max_t;
        bool have_max;
        pg_table_t *dedupe;
        pg_reorder_t *reorder;

        /* the current record passes the current rule's filter (set by
         * the driver before each detector call) */
        bool judge;
        /* the record whose detectors are running, NULL otherwise */
        const pg_record_t *cur_rec;

        /* processing: time of the last processed group */
        int64_t now;
        uint64_t groups; /* processed so far (paces expiry) */
        bool have_now;
        bool has_retry, has_swipe; /* a rule of the detector is active */
        int64_t short_h;       /* pairing windows + refund delay + lateness */
        int64_t long_h;        /* max(short_h, refund_anomaly lookbacks) */
        pg_table_t *facts;     /* rrn -> pg_fact_t */
        pg_table_t *followups; /* rrn -> pg_followup_t */
        pg_strlog_t *strings;  /* the facts' charge txn_ids */
        pg_rule_state_t *rule_state;

        /* refund decisions: a min-heap on (due, seq) */
        pg_pending_t **pend;
        size_t npend, pend_cap;
        pg_pending_t *pend_free;
        size_t pend_alloc; /* pending structs allocated (in use or free) */
        uint64_t pend_seq;
        pg_table_t *caps;
        pg_table_t *cooldown; /* (rule, key) -> pg_cooldown_t */
};

/* --- helpers for detectors (engine.c) --- */

/* Fact of an rrn key at the current time, or NULL. */
pg_fact_t *pg_engine_fact(pg_engine_t *e, pg_key_t rrn_key);
/* The txn_id of a fact's charge ("" when the memory cap refused it). */
const char *pg_engine_fact_txn(const pg_engine_t *e, const pg_fact_t *f);
/* Followups of an rrn key at the current time, or NULL. */
pg_followup_t *pg_engine_followup(pg_engine_t *e, pg_key_t rrn_key);
/* The followups of rrn k, created when absent, kept until expire_at at
 * least (and the rrn's fact with them); NULL when the memory cap refuses
 * them (counted), and then the rrn's charge, if the engine holds it, is
 * marked as having lost them: its refund is blocked rather than decided
 * on a refunded amount or a cancellation it does not know. */
pg_followup_t *pg_engine_followup_upsert(pg_engine_t *e, pg_key_t k,
                                         int64_t expire_at);
/* Whether the charge with this rrn is cancelled at time t. */
pg_cancel_t pg_engine_cancelled(pg_engine_t *e, pg_key_t rrn_key, int64_t t);

/* Fill the common part of an alert raised by rule r on record rec, with
 * its id (SEMANTICS.md 5). The caller adds related txn_ids, amount if it
 * differs, and the reason, then calls pg_engine_emit_alert. */
void pg_engine_alert_init(pg_engine_t *e, pg_alert_t *a, const pg_rule_t *r,
                          pg_finding_t f, const char *finding_name,
                          const pg_record_t *rec);
void pg_engine_emit_alert(pg_engine_t *e, pg_alert_t *a, pg_finding_t f,
                          const pg_rule_t *r);

/* Add field f of rec to a key; false when the field is absent/empty. */
bool pg_engine_key_field(pg_keyb_t *kb, const pg_record_t *rec, pg_field_t f);

/* --- detectors: detect_*.c --- */
/* The pairing keys (set in rec->k by pg_engine_push): computed from the
 * record's field keys. */
pg_key_t pg_retry_key(const pg_record_t *rec);
pg_key_t pg_swipe_key(const pg_record_t *rec);
void pg_detect_retry(pg_engine_t *e, int ri, const pg_record_t *rec,
                     pg_claims_t *claims);
void pg_detect_swipe(pg_engine_t *e, int ri, const pg_record_t *rec,
                     pg_claims_t *claims);
void pg_detect_mismatch(pg_engine_t *e, int ri, const pg_record_t *rec,
                        pg_claims_t *claims);
void pg_detect_refund(pg_engine_t *e, int ri, const pg_record_t *rec);
void pg_detect_aggregate(pg_engine_t *e, int ri, const pg_record_t *rec);
/* Per-rule state for the aggregate detector. */
bool pg_detect_aggregate_init(pg_engine_t *e, int ri);
void pg_detect_aggregate_free(pg_engine_t *e, int ri);
void pg_detect_aggregate_expire(pg_engine_t *e, int ri);
size_t pg_detect_aggregate_bytes(const pg_engine_t *e, int ri);

/* --- refund decisions: refund_decide.c --- */
void pg_refund_enqueue(pg_engine_t *e, const pg_record_t *rec,
                       const pg_claims_t *claims);
/* Resolve pending decisions due strictly before t (all when flush). */
void pg_refund_resolve_before(pg_engine_t *e, int64_t t, bool flush);
void pg_refund_free_all(pg_engine_t *e);

#endif
