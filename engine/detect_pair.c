/*
 * detect_pair.c - what retry_duplicate and repeated_swipe share: walking
 * the earlier charges of a key, raising one alert per offending charge,
 * making the refund claim, and remembering the charge.
 *
 * Work per charge is bounded by PG_MAX_WALK earlier members of its group;
 * when a group holds more, the walk stops and chain_truncated counts it.
 */
#include "detect_pair.h"

#include <stdio.h>
#include <string.h>

/* rec joins its group, opened by the walk (it). */
static void remember(pg_engine_t *e, pg_chain_t *c, pg_chain_iter_t *it,
                     const pg_record_t *rec)
{
        pg_pair_member_t *m = pg_chain_append_open(c, it, rec->event_time);
        if (!m) {
                e->st.state_full++;
                return;
        }
        m->rrn_key = rec->k.rrn;
        m->stan_fp = rec->k.stan.lo;
        m->has_order = rec->order_id.len > 0;
        if (m->has_order)
                m->order_fp = rec->k.order.lo;
        /* the txn_id once, with the charge's fact, when it is there */
        if (rec->txn_str)
                pg_chain_ref_str(c, m, rec->txn_str);
        else if (!pg_chain_set_str(c, m, rec->txn_id.s, rec->txn_id.len))
                e->st.state_full++;
}

void pg_detect_pair(pg_engine_t *e, int ri, const pg_record_t *rec,
                    pg_key_t key, const pg_pair_ops_t *ops, pg_claims_t *claims)
{
        const pg_rule_t *r = &e->rs->rules[ri];
        pg_chain_t *c = e->rule_state[ri].chain;
        pg_pair_ctx_t ctx = {.rec = rec, .rule = r, .chain = c};
        if (rec->order_id.len)
                ctx.order_key = rec->k.order;
        ctx.stan_key = rec->k.stan;

        /* Newest first: keep the PG_MAX_RELATED most recent. */
        const pg_pair_member_t *rel[PG_MAX_RELATED];
        const pg_pair_member_t *refq[PG_MAX_RELATED];
        int nrel = 0, nref = 0, steps = 0;
        pg_chain_iter_t it;
        pg_chain_open(c, key, rec->event_time, e->now, &it);
        const pg_pair_member_t *m;
        while (e->judge && (m = pg_chain_next(&it))) {
                if (++steps > PG_MAX_WALK) {
                        e->st.chain_truncated++;
                        break;
                }
                bool refundable = false;
                if (!ops->match(&ctx, m, &refundable))
                        continue;
                /* an original whose cancellation may have been lost is
                 * alerted on; its refund decision blocks (refund_decide.c) */
                if (pg_engine_cancelled(e, m->rrn_key, rec->event_time) ==
                    PG_CANCEL_YES)
                        continue;
                if (nrel < PG_MAX_RELATED)
                        rel[nrel++] = m;
                if (refundable && nref < PG_MAX_RELATED)
                        refq[nref++] = m;
        }

        if (nrel) {
                pg_alert_t a;
                pg_engine_alert_init(e, &a, r, ops->finding, NULL, rec);
                /* related in processing order: oldest of the kept first */
                for (int i = nrel; i-- > 0;)
                        a.txn_ids[a.n_txn_ids++] = pg_chain_str(c, rel[i]);
                ops->reason(&ctx, rel[0], a.reason, sizeof(a.reason));
                pg_engine_emit_alert(e, &a, ops->finding, r);

                if (nref && r->mode == PG_MODE_ENFORCE &&
                    r->action == PG_ACTION_REFUND &&
                    claims->n < PG_MAX_CLAIMS) {
                        pg_claim_t *cl = &claims->c[claims->n++];
                        memset(cl, 0, sizeof(*cl));
                        cl->rule = (uint16_t)ri;
                        cl->full = 1;
                        memcpy(cl->alert_id, a.alert_id, PG_ID_LEN);
                        for (int i = nref; i-- > 0;) {
                                cl->q[cl->nq] = refq[i]->rrn_key;
                                const char *txn = pg_chain_str(c, refq[i]);
                                pg_str_t *q = &cl->q_txn[cl->nq];
                                q->len = (uint8_t)strlen(txn);
                                memcpy(q->s, txn, q->len + 1u);
                                cl->nq++;
                        }
                }
        }
        remember(e, c, &it, rec);
}
