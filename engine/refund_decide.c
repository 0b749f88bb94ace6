/*
 * refund_decide.c - refund decisions: the grace period, cancellations, one
 * refund per charge, full superseding partial, and the guard rails
 * (docs/SEMANTICS.md section 4).
 *
 * A charge flagged by enforce-mode refund rules gets one pending decision,
 * due refund_delay after its event time, holding every claim on it. The
 * pending decisions form a min-heap on (due, creation order); the engine
 * resolves those due before each new event time, so a decision sees exactly
 * the records with event time <= its due time (late records aside). Pending
 * decisions are never refused by the memory cap: dropping one would lose a
 * refund. Their number is bounded by the flagged charges in one
 * refund_delay.
 */
#include "engine_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool before(const pg_pending_t *a, const pg_pending_t *b)
{
        if (a->due != b->due)
                return a->due < b->due;
        return a->seq < b->seq;
}

static void heap_push(pg_engine_t *e, pg_pending_t *p)
{
        if (e->npend == e->pend_cap) {
                e->pend_cap = e->pend_cap ? 2 * e->pend_cap : 64;
                e->pend = pg_xrealloc(e->pend, e->pend_cap * sizeof(*e->pend));
        }
        size_t i = e->npend++;
        while (i > 0) {
                size_t up = (i - 1) / 2;
                if (!before(p, e->pend[up]))
                        break;
                e->pend[i] = e->pend[up];
                i = up;
        }
        e->pend[i] = p;
}

static pg_pending_t *heap_pop(pg_engine_t *e)
{
        pg_pending_t *top = e->pend[0];
        pg_pending_t *last = e->pend[--e->npend];
        size_t i = 0;
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= e->npend)
                        break;
                if (c + 1 < e->npend && before(e->pend[c + 1], e->pend[c]))
                        c++;
                if (!before(e->pend[c], last))
                        break;
                e->pend[i] = e->pend[c];
                i = c;
        }
        if (e->npend)
                e->pend[i] = last;
        return top;
}

void pg_refund_enqueue(pg_engine_t *e, const pg_record_t *rec,
                       const pg_claims_t *claims)
{
        pg_pending_t *p = e->pend_free;
        if (p) {
                e->pend_free = p->next_free;
        } else {
                p = pg_xmalloc(sizeof(*p));
                e->pend_alloc++;
                pg_budget_charge(&e->budget, sizeof(*p));
        }
        p->due = rec->event_time + e->rs->refund_delay_ms;
        p->seq = ++e->pend_seq;
        p->amount = rec->amount;
        p->t = rec->event_time;
        p->rrn_key = rec->k.rrn;
        p->txn_id = rec->txn_id;
        p->rrn = rec->rrn;
        p->merchant_id = rec->merchant_id;
        p->terminal_id = rec->terminal_id;
        p->card_token = rec->card_token;
        p->currency = rec->currency;
        p->pan_masked = rec->pan_masked;
        p->claims = *claims;
        p->next_free = NULL;
        heap_push(e, p);
}

/* Raise a refund_blocked alert instead of the refund (nothing is lost: the
 * risk team sees the amount and why). */
static void block(pg_engine_t *e, const pg_pending_t *p, const pg_claim_t *c,
                  int64_t amount, const char *code, const char *why)
{
        const pg_rule_t *r = &e->rs->rules[c->rule];
        pg_alert_t a;
        pg_record_t fake; /* the fields alert_init reads */
        memset(&fake, 0, sizeof(fake));
        fake.txn_id = p->txn_id;
        fake.merchant_id = p->merchant_id;
        fake.terminal_id = p->terminal_id;
        fake.currency = p->currency;
        fake.pan_masked = p->pan_masked;
        fake.amount = amount;
        fake.event_time = p->t;
        pg_engine_alert_init(e, &a, r, PG_FIND_REFUND_BLOCKED, NULL, &fake);
        a.severity = "critical";
        a.mode = "enforce";
        a.blocked = code;
        for (int i = 0; i < c->nq; i++)
                if (pg_engine_cancelled(e, c->q[i], p->due) != PG_CANCEL_YES)
                        a.txn_ids[a.n_txn_ids++] = c->q_txn[i].s;
        char amt[64];
        pg_fmt_amount(amt, sizeof(amt), amount, p->currency.s);
        snprintf(a.reason, sizeof(a.reason), "refund of %s (%s) blocked: %s",
                 amt, c->full ? "duplicate" : "overcharge", why);
        e->st.refunds_blocked++;
        pg_engine_emit_alert(e, &a, PG_FIND_REFUND_BLOCKED, r);
}

/* Blocked for want of state (SEMANTICS.md 4, step 6): never refund what
 * could not be checked. */
static void unavailable(pg_engine_t *e, const pg_pending_t *p,
                        const pg_claim_t *c, int64_t amount)
{
        block(e, p, c, amount, "state_unavailable",
              "state unavailable (memory cap)");
}

/* Add amount to the hour bucket of key if it stays within cap. */
static int cap_take(pg_engine_t *e, pg_key_t k, int64_t hour, int64_t amount,
                    int64_t cap, bool commit)
{
        bool created;
        int64_t *sum = pg_table_upsert(e->caps, k, e->now,
                                       (hour + 2) * 3600000LL, &created);
        if (!sum)
                return -1;
        if (*sum > cap - amount)
                return 0;
        if (commit)
                *sum += amount;
        return 1;
}

static void decide(pg_engine_t *e, pg_pending_t *p)
{
        int64_t due = p->due;
        pg_fact_t *f = pg_engine_fact(e, p->rrn_key);
        const pg_claim_t *win = NULL;
        bool unknown = false; /* a qualifying charge's cancellation */
        for (int i = 0; i < p->claims.n && !win; i++) {
                const pg_claim_t *c = &p->claims.c[i];
                if (!c->full)
                        continue;
                for (int j = 0; j < c->nq; j++) {
                        pg_cancel_t q = pg_engine_cancelled(e, c->q[j], due);
                        if (q == PG_CANCEL_NO) {
                                win = c;
                                break;
                        }
                        unknown |= q == PG_CANCEL_UNKNOWN;
                }
        }
        if (!win && unknown) {
                /* the duplicate may stand or not: never refund what could
                 * not be checked */
                unavailable(e, p, &p->claims.c[0], p->amount);
                return;
        }
        for (int i = 0; i < p->claims.n && !win; i++)
                if (!p->claims.c[i].full)
                        win = &p->claims.c[i];
        if (!f || !f->has_charge || f->followups_lost) {
                /* Cannot check cancellation or earlier refunds: never
                 * refund what could not be checked. */
                unavailable(e, p, win ? win : &p->claims.c[0],
                            win && !win->full ? win->amount : p->amount);
                return;
        }
        const pg_followup_t *v = pg_engine_followup(e, p->rrn_key);
        if (v && v->has_cancel && v->cancel_at <= due) {
                e->st.refunds_cancelled++;
                return;
        }
        if (!win) {
                /* every earlier charge that made it a duplicate was
                 * cancelled in the meantime */
                e->st.refunds_cancelled++;
                return;
        }
        int64_t refunded =
            v ? v->refunded + (v->has_commanded ? v->commanded : 0) : 0;
        int64_t amount = (win->full ? p->amount : win->amount) - refunded;
        if (amount > p->amount - refunded)
                amount = p->amount - refunded;
        if (amount <= 0) {
                e->st.refunds_nothing_left++;
                return;
        }
        if (e->conf.kill_switch) {
                block(e, p, win, amount, "kill_switch", "kill switch is on");
                return;
        }
        int64_t hour = due / 3600000LL;
        pg_keyb_t kb;
        pg_keyb_init(&kb, PG_TAG_CAP_M);
        pg_keyb_str(&kb, &p->merchant_id);
        pg_keyb_str(&kb, &p->currency);
        pg_keyb_i64(&kb, hour);
        pg_key_t km = pg_keyb_done(&kb);
        pg_keyb_init(&kb, PG_TAG_CAP_G);
        pg_keyb_str(&kb, &p->currency);
        pg_keyb_i64(&kb, hour);
        pg_key_t kg = pg_keyb_done(&kb);
        int okm =
            cap_take(e, km, hour, amount, e->conf.refund_cap_merchant, false);
        int okg =
            cap_take(e, kg, hour, amount, e->conf.refund_cap_global, false);
        if (okm < 0 || okg < 0) {
                unavailable(e, p, win, amount);
                return;
        }
        if (!okm || !okg) {
                char why[128];
                snprintf(why, sizeof(why), "%s hourly refund cap reached",
                         !okm ? "merchant" : "global");
                block(e, p, win, amount, !okm ? "merchant_cap" : "global_cap",
                      why);
                return;
        }
        /* where the refund is remembered, before it is issued: a refund
         * the engine could not remember would be issued again */
        pg_followup_t *w =
            pg_engine_followup_upsert(e, p->rrn_key, pg_table_expiry(f));
        if (!w) {
                unavailable(e, p, win, amount);
                return;
        }
        cap_take(e, km, hour, amount, e->conf.refund_cap_merchant, true);
        cap_take(e, kg, hour, amount, e->conf.refund_cap_global, true);

        const pg_rule_t *r = &e->rs->rules[win->rule];
        pg_refund_t rf;
        memset(&rf, 0, sizeof(rf));
        char text[2 * PG_STR_MAX + 16];
        int n =
            snprintf(text, sizeof(text), "refund|%s|%s", r->id, p->txn_id.s);
        pg_id_make(rf.refund_id, "rf-", text, (size_t)n);
        memcpy(rf.alert_id, win->alert_id, PG_ID_LEN);
        rf.rule_id = r->id;
        rf.txn_id = p->txn_id.s;
        rf.rrn = p->rrn.s;
        rf.merchant_id = p->merchant_id.s;
        rf.terminal_id = p->terminal_id.s;
        rf.card_token = p->card_token.s;
        rf.amount = amount;
        rf.currency = p->currency.s;
        rf.reason = win->full ? "duplicate" : "overcharge";
        rf.decided_at = due;
        w->has_commanded = 1;
        w->commanded = amount;
        w->commanded_at = due;
        if (win->full)
                e->st.refunds_duplicate++;
        else
                e->st.refunds_overcharge++;
        e->st.refund_amount += (uint64_t)amount;
        e->sink.refund(e->sink.opaque, &rf);
}

void pg_refund_resolve_before(pg_engine_t *e, int64_t t, bool flush)
{
        while (e->npend && (flush || e->pend[0]->due < t)) {
                pg_pending_t *p = heap_pop(e);
                if (!e->have_now || p->due > e->now) {
                        e->now = p->due;
                        e->have_now = true;
                }
                decide(e, p);
                p->next_free = e->pend_free;
                e->pend_free = p;
        }
}

void pg_refund_free_all(pg_engine_t *e)
{
        for (size_t i = 0; i < e->npend; i++)
                free(e->pend[i]);
        free(e->pend);
        while (e->pend_free) {
                pg_pending_t *p = e->pend_free;
                e->pend_free = p->next_free;
                free(p);
        }
}
