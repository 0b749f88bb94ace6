/*
 * detect_swipe.c - repeated_swipe (DOMAIN.md detector 2).
 *
 * The cashier swipes again: same merchant, card, amount and currency, a
 * different STAN, 0 < t2 - t1 <= window, and not two different order ids.
 * Refund P2 in full only when the two carry the same order id, or neither
 * has one and t2 - t1 <= auto_refund_within; otherwise alert only.
 */
#include "detect_pair.h"

#include <stdio.h>

static bool match(const pg_pair_ctx_t *ctx, const pg_pair_member_t *m,
                  bool *refundable)
{
        const pg_record_t *r = ctx->rec;
        int64_t d = r->event_time - m->h.t;
        if (d <= 0 || d > ctx->rule->window_ms)
                return false;
        if (m->stan_fp == ctx->stan_key.lo)
                return false;
        bool has2 = r->order_id.len > 0;
        if (m->has_order && has2)
                *refundable = m->order_fp == ctx->order_key.lo;
        else
                *refundable = !m->has_order && !has2 &&
                              d <= ctx->rule->auto_refund_within_ms;
        /* both carry an order id and they differ: two genuine orders */
        return !(m->has_order && has2 && !*refundable);
}

static void reason(const pg_pair_ctx_t *ctx, const pg_pair_member_t *m,
                   char *buf, size_t size)
{
        const pg_record_t *r = ctx->rec;
        char amt[64];
        pg_fmt_amount(amt, sizeof(amt), r->amount, r->currency.s);
        int64_t d = r->event_time - m->h.t;
        snprintf(buf, size,
                 "same card charged %s again at merchant %s with a new STAN, "
                 "%lld.%03lld s after %s",
                 amt, r->merchant_id.s, (long long)(d / 1000),
                 (long long)(d % 1000), pg_chain_str(ctx->chain, m));
}

static const pg_pair_ops_t ops = {PG_FIND_REPEATED_SWIPE, match, reason};

pg_key_t pg_swipe_key(const pg_record_t *rec)
{
        /* merchant, card (their keys), amount, currency */
        const uint64_t w[6] = {
            rec->k.merchant.lo,    rec->k.merchant.hi,
            rec->k.card.lo,        rec->k.card.hi,
            (uint64_t)rec->amount, pg_key_cur(&rec->currency)};
        return pg_key_words(PG_TAG_SWIPE, w, 6);
}

void pg_detect_swipe(pg_engine_t *e, int ri, const pg_record_t *rec,
                     pg_claims_t *claims)
{
        pg_detect_pair(e, ri, rec, rec->k.swipe, &ops, claims);
}
