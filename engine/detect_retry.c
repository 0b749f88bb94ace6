/*
 * detect_retry.c - retry_duplicate (DOMAIN.md detector 1).
 *
 * The terminal retransmits the same request: same terminal, STAN, card,
 * amount and currency. P2 is a duplicate of any earlier charge of that key
 * with 0 <= t2 - t1 <= window (equal times included: then the later in
 * input order is P2), not cancelled at t2. Refund: P2 in full.
 */
#include "detect_pair.h"

#include <stdio.h>
#include <string.h>

static bool match(const pg_pair_ctx_t *ctx, const pg_pair_member_t *m,
                  bool *refundable)
{
        int64_t d = ctx->rec->event_time - m->h.t;
        if (d < 0 || d > ctx->rule->window_ms)
                return false;
        if (!strcmp(pg_chain_str(ctx->chain, m), ctx->rec->txn_id.s))
                return false;
        *refundable = true;
        return true;
}

static void reason(const pg_pair_ctx_t *ctx, const pg_pair_member_t *m,
                   char *buf, size_t size)
{
        const pg_record_t *r = ctx->rec;
        char amt[64];
        pg_fmt_amount(amt, sizeof(amt), r->amount, r->currency.s);
        int64_t d = r->event_time - m->h.t;
        snprintf(buf, size,
                 "retransmission of %s approved again: terminal %s, STAN %s, "
                 "same card, %s, %lld.%03lld s later",
                 pg_chain_str(ctx->chain, m), r->terminal_id.s, r->stan.s, amt,
                 (long long)(d / 1000), (long long)(d % 1000));
}

static const pg_pair_ops_t ops = {PG_FIND_RETRY_DUPLICATE, match, reason};

pg_key_t pg_retry_key(const pg_record_t *rec)
{
        /* terminal, STAN, card (their keys), amount, currency */
        const uint64_t w[8] = {
            rec->k.terminal.lo,    rec->k.terminal.hi,
            rec->k.stan.lo,        rec->k.stan.hi,
            rec->k.card.lo,        rec->k.card.hi,
            (uint64_t)rec->amount, pg_key_cur(&rec->currency)};
        return pg_key_words(PG_TAG_RETRY, w, 8);
}

void pg_detect_retry(pg_engine_t *e, int ri, const pg_record_t *rec,
                     pg_claims_t *claims)
{
        pg_detect_pair(e, ri, rec, rec->k.retry, &ops, claims);
}
