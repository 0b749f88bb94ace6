/*
 * detect_pair.h - the shared walk of the pairing detectors (detect_pair.c).
 */
#ifndef PG_DETECT_PAIR_H
#define PG_DETECT_PAIR_H

#include "engine_int.h"

typedef struct pg_pair_ctx {
        const pg_record_t *rec; /* the later charge, P2 */
        const pg_rule_t *rule;
        pg_key_t stan_key;
        pg_key_t order_key;      /* valid when rec has an order_id */
        const pg_chain_t *chain; /* the members' (pg_chain_str) */
} pg_pair_ctx_t;

typedef struct pg_pair_ops {
        pg_finding_t finding;
        /* Does earlier charge m qualify P2 (alert condition)? Sets
         * *refundable when it also meets the rule's refund condition. */
        bool (*match)(const pg_pair_ctx_t *ctx, const pg_pair_member_t *m,
                      bool *refundable);
        /* Human reason, m the most recent qualifying charge. */
        void (*reason)(const pg_pair_ctx_t *ctx, const pg_pair_member_t *m,
                       char *buf, size_t size);
} pg_pair_ops_t;

void pg_detect_pair(pg_engine_t *e, int ri, const pg_record_t *rec,
                    pg_key_t key, const pg_pair_ops_t *ops,
                    pg_claims_t *claims);

#endif
