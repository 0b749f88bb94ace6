/*
 * detect_mismatch.c - amount_mismatch (DOMAIN.md detector 3).
 *
 * Stateless: a charge whose register total (expected_amount) differs from
 * the amount by more than the tolerance. Overcharge claims a partial refund
 * of the difference; undercharge only alerts. An amount that is the other
 * times a power of ten (an extra zero keyed) is critical.
 */
#include "engine_int.h"

#include <stdio.h>
#include <string.h>

/* a == b * 10^k for some k >= 1 (b > 0). */
static bool power_of_ten_of(int64_t a, int64_t b)
{
        if (b <= 0 || a <= b)
                return false;
        while (b <= a / 10) {
                b *= 10;
                if (b == a)
                        return true;
        }
        return false;
}

void pg_detect_mismatch(pg_engine_t *e, int ri, const pg_record_t *rec,
                        pg_claims_t *claims)
{
        const pg_rule_t *r = &e->rs->rules[ri];
        if (!rec->has_expected)
                return;
        int64_t amt = rec->amount, exp = rec->expected_amount;
        /* both are >= 0, so the difference cannot overflow */
        int64_t diff = amt > exp ? amt - exp : exp - amt;
        if (diff <= r->tolerance)
                return;
        bool over = amt > exp;
        pg_finding_t f = over ? PG_FIND_OVERCHARGE : PG_FIND_UNDERCHARGE;
        pg_alert_t a;
        pg_engine_alert_init(e, &a, r, f, NULL, rec);
        if (power_of_ten_of(amt, exp) || power_of_ten_of(exp, amt))
                a.severity = "critical";
        char s1[64], s2[64], s3[64];
        pg_fmt_amount(s1, sizeof(s1), amt, rec->currency.s);
        pg_fmt_amount(s2, sizeof(s2), exp, rec->currency.s);
        pg_fmt_amount(s3, sizeof(s3), diff, rec->currency.s);
        snprintf(a.reason, sizeof(a.reason),
                 "%s charged %s but the register total is %s (%s %s)",
                 over ? "overcharge:" : "undercharge:", s1, s2, s3,
                 over ? "too much" : "too little");
        pg_engine_emit_alert(e, &a, f, r);
        if (over && r->mode == PG_MODE_ENFORCE &&
            r->action == PG_ACTION_REFUND && claims->n < PG_MAX_CLAIMS) {
                pg_claim_t *cl = &claims->c[claims->n++];
                memset(cl, 0, sizeof(*cl));
                cl->rule = (uint16_t)ri;
                cl->full = 0;
                cl->amount = diff;
                memcpy(cl->alert_id, a.alert_id, PG_ID_LEN);
        }
}
