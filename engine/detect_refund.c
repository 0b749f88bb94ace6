/*
 * detect_refund.c - refund_anomaly (DOMAIN.md detector 4), alerts only.
 *
 * For an approved refund R, the original charge P is looked up by rrn in
 * the facts table (kept for the longest lookback). refunded(P) counts the
 * approved refunds processed so far, R included (the engine added R to the
 * rrn's followups before the rules run), plus the engine's own refund once
 * its decision time is before t(R).
 */
#include "engine_int.h"

#include <stdio.h>

static void raise_alert(pg_engine_t *e, const pg_rule_t *r, pg_finding_t f,
                        const pg_record_t *rec, const pg_fact_t *p,
                        const char *reason)
{
        pg_alert_t a;
        pg_engine_alert_init(e, &a, r, f, NULL, rec);
        if (p)
                a.txn_ids[a.n_txn_ids++] = pg_engine_fact_txn(e, p);
        snprintf(a.reason, sizeof(a.reason), "%s", reason);
        pg_engine_emit_alert(e, &a, f, r);
}

void pg_detect_refund(pg_engine_t *e, int ri, const pg_record_t *rec)
{
        const pg_rule_t *r = &e->rs->rules[ri];
        int64_t t = rec->event_time;
        pg_key_t k = rec->k.orig;
        const pg_fact_t *p = pg_engine_fact(e, k);
        char buf[PG_REASON_MAX], a1[64], a2[64];
        if (!p || !p->has_charge || p->charge_t > t ||
            p->charge_t < t - r->lookback_ms) {
                snprintf(buf, sizeof(buf),
                         "refund of rrn %s: no charge with that rrn in the "
                         "lookback window",
                         rec->original_rrn.s);
                raise_alert(e, r, PG_FIND_REFUND_WITHOUT_ORIGINAL, rec, NULL,
                            buf);
                return;
        }
        const pg_followup_t *v = pg_engine_followup(e, k);
        int64_t refunded = v ? v->refunded : 0;
        if (v && v->has_commanded && v->commanded_at < t)
                refunded += v->commanded;
        if (refunded > p->charge_amount) {
                pg_fmt_amount(a1, sizeof(a1), refunded, rec->currency.s);
                pg_fmt_amount(a2, sizeof(a2), p->charge_amount, p->currency);
                snprintf(buf, sizeof(buf),
                         "refunds of %s now total %s, more than the %s charged",
                         pg_engine_fact_txn(e, p), a1, a2);
                raise_alert(e, r, PG_FIND_REFUND_EXCEEDS_ORIGINAL, rec, p, buf);
        }
        if (p->card_fp != rec->k.card.lo) {
                snprintf(buf, sizeof(buf),
                         "refund goes to another card than the one charged "
                         "by %s",
                         pg_engine_fact_txn(e, p));
                raise_alert(e, r, PG_FIND_REFUND_CARD_MISMATCH, rec, p, buf);
        }
}
