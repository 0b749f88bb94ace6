/*
 * test_refund_decisions.c - DOMAIN.md "Refund commands": grace period,
 * cancellations before and after the decision time, refunds in the
 * meantime, shadow mode, alert-only rules, guard rails and kill switch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "engine_harness.h"

static h_rules_t R;

static int setup(void **state)
{
        h_rules_init(&R);
        h_rule(&R, "retry", PG_DET_RETRY_DUPLICATE, PG_ACTION_REFUND);
        return 0;
}

/* A retry pair A(t0) / B(t0+1s) on card c; B due at t0 + 121 s. */
static void dup(h_run_t *run, const char *a, const char *b, const char *c,
                long long t0)
{
        h_push(run, h_charge(a, t0, "M1", "T1", c, c, 1000));
        h_push(run, h_charge(b, t0 + 1000, "M1", "T1", c, c, 1000));
}

static void cancellations_around_decision_time(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        long long D = T0 + 121000;
        /* B itself reversed exactly at its decision time: no refund */
        dup(&run, "A1", "B1", "c1", T0);
        h_push(&run, h_follow("V1", D, PG_KIND_REVERSAL, "B1", "c1", 1000));
        /* ... one millisecond after: refund */
        dup(&run, "A2", "B2", "c2", T0);
        h_push(&run, h_follow("V2", D + 1, PG_KIND_REVERSAL, "B2", "c2", 1000));
        /* the original voided after the duplicate, before the decision:
         * alert, no refund */
        dup(&run, "A3", "B3", "c3", T0);
        h_push(&run,
               h_follow("V3", T0 + 60000, PG_KIND_VOID, "A3", "c3", 1000));
        /* the original voided after the decision: refund */
        dup(&run, "A4", "B4", "c4", T0);
        h_push(&run, h_follow("V4", D + 1, PG_KIND_VOID, "A4", "c4", 1000));
        h_finish(&run);
        assert_int_equal(h_count(&run, "retry_duplicate"), 4);
        assert_null(h_find_refund(&run, "B1"));
        assert_non_null(h_find_refund(&run, "B2"));
        assert_null(h_find_refund(&run, "B3"));
        assert_non_null(h_find_refund(&run, "B4"));
        assert_int_equal(run.out.n_refunds, 2);
        assert_int_equal(run.st.refunds_cancelled, 2);
}

static void refunds_in_the_meantime(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        long long D = T0 + 121000;
        dup(&run, "A1", "B1", "c1", T0);
        h_push(&run,
               h_follow("R1", T0 + 50000, PG_KIND_REFUND, "B1", "c1", 300));
        dup(&run, "A2", "B2", "c2", T0);
        h_push(&run, h_follow("R2", D, PG_KIND_REFUND, "B2", "c2", 1000));
        dup(&run, "A3", "B3", "c3", T0);
        h_push(&run, h_follow("R3", D + 1, PG_KIND_REFUND, "B3", "c3", 1000));
        h_finish(&run);
        assert_int_equal(h_find_refund(&run, "B1")->amount, 700);
        assert_null(h_find_refund(&run, "B2"));
        assert_int_equal(h_find_refund(&run, "B3")->amount, 1000);
        assert_int_equal(run.st.refunds_nothing_left, 1);
}

static void shadow_and_alert_only(void **state)
{
        h_rules_t r2;
        h_rules_init(&r2);
        h_rule(&r2, "shadow", PG_DET_RETRY_DUPLICATE, PG_ACTION_REFUND)->mode =
            PG_MODE_SHADOW;
        h_rule(&r2, "alertonly", PG_DET_RETRY_DUPLICATE, PG_ACTION_ALERT);
        h_run_t run;
        h_start(&run, &r2, NULL);
        dup(&run, "A", "B", "c1", T0);
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 2);
        assert_string_equal(run.out.alerts[0].mode, "shadow");
        assert_string_equal(run.out.alerts[1].mode, "enforce");
        assert_int_equal(run.out.n_refunds, 0);
}

static void caps_and_kill_switch(void **state)
{
        pg_engine_conf_t conf;
        memset(&conf, 0, sizeof(conf));
        conf.refund_cap_merchant = 1500;
        h_run_t run;
        h_start(&run, &R, &conf);
        dup(&run, "A1", "B1", "c1", T0);
        dup(&run, "A2", "B2", "c2", T0 + 10);
        /* next UTC hour: the cap is per clock hour */
        dup(&run, "A3", "B3", "c3", T0 + 3600000);
        h_finish(&run);
        assert_non_null(h_find_refund(&run, "B1"));
        assert_null(h_find_refund(&run, "B2"));
        const h_alert_t *b = h_find_alert(&run, "refund_blocked", "B2");
        assert_non_null(b);
        assert_int_equal(b->amount, 1000);
        assert_string_equal(b->severity, "critical");
        assert_non_null(h_find_refund(&run, "B3"));

        conf.refund_cap_merchant = 0;
        conf.kill_switch = true;
        h_start(&run, &R, &conf);
        dup(&run, "A1", "B1", "c1", T0);
        h_finish(&run);
        assert_int_equal(run.out.n_refunds, 0);
        assert_non_null(h_find_alert(&run, "refund_blocked", "B1"));
        assert_int_equal(run.st.refunds_blocked, 1);
}

static void global_cap_per_currency(void **state)
{
        pg_engine_conf_t conf;
        memset(&conf, 0, sizeof(conf));
        conf.refund_cap_global = 1000;
        h_run_t run;
        h_start(&run, &R, &conf);
        dup(&run, "A1", "B1", "c1", T0);
        dup(&run, "A2", "B2", "c2", T0 + 10);
        pg_record_t a = h_charge("A3", T0 + 20, "M2", "T1", "9", "c3", 1000);
        pg_record_t b = h_charge("B3", T0 + 30, "M2", "T1", "9", "c3", 1000);
        h_str(&a.currency, "USD");
        h_str(&b.currency, "USD");
        h_push(&run, a);
        h_push(&run, b);
        h_finish(&run);
        assert_non_null(h_find_refund(&run, "B1"));
        assert_non_null(h_find_alert(&run, "refund_blocked", "B2"));
        assert_non_null(h_find_refund(&run, "B3"));
}

/* Refunds of rrns the engine never saw, enough to fill the followups
 * table of an engine whose memory cap lets no table grow past its first
 * 64 slots (7/8 of them, state_table.c). */
static void fill_followups(h_run_t *run, long long t)
{
        for (int i = 0; i < 56; i++) {
                char txn[16], orig[16];
                snprintf(txn, sizeof(txn), "F%d", i);
                snprintf(orig, sizeof(orig), "X%d", i);
                h_push(run, h_follow(txn, t, PG_KIND_REFUND, orig, "cx", 10));
        }
}

/* No refund of txn, a refund_blocked alert instead. */
static void assert_blocked(const h_run_t *run, const char *txn)
{
        assert_null(h_find_refund(run, txn));
        assert_int_equal(run->out.n_refunds, 0);
        assert_non_null(h_find_alert(run, "refund_blocked", txn));
}

/* Under the memory cap, what happened to a charge after it was registered
 * may be lost: then its refund is blocked, never decided without it
 * (SEMANTICS.md 4, step 6). */
static void followups_refused_by_the_cap(void **state)
{
        pg_engine_conf_t conf;
        memset(&conf, 0, sizeof(conf));
        conf.max_state_bytes = 1;
        h_run_t run;

        /* the original's void is refused: B may or may not stand (B's
         * partial refund first, so that B has followups where the
         * engine's refund could be noted) */
        h_start(&run, &R, &conf);
        dup(&run, "A", "B", "c1", T0);
        h_push(&run, h_follow("RB", T0 + 1500, PG_KIND_REFUND, "B", "c1", 10));
        fill_followups(&run, T0 + 2000);
        h_push(&run, h_follow("V", T0 + 60000, PG_KIND_VOID, "A", "c1", 1000));
        h_finish(&run);
        assert_int_equal(h_count(&run, "retry_duplicate"), 1);
        assert_blocked(&run, "B");
        assert_true(run.st.state_full > 0);

        /* B's own refund is refused: its refunded amount is unknown */
        h_start(&run, &R, &conf);
        dup(&run, "A", "B", "c1", T0);
        fill_followups(&run, T0 + 2000);
        h_push(&run,
               h_follow("RB", T0 + 60000, PG_KIND_REFUND, "B", "c1", 1000));
        h_finish(&run);
        assert_blocked(&run, "B");

        /* nothing refused but the engine's note of its own refund: blocked
         * too, or a later decision on B could refund it again */
        h_start(&run, &R, &conf);
        dup(&run, "A", "B", "c1", T0);
        fill_followups(&run, T0 + 2000);
        h_finish(&run);
        assert_blocked(&run, "B");

        /* the same without the cap: the void stands, the refund of B is
         * counted, and the engine's refund is issued */
        h_start(&run, &R, NULL);
        dup(&run, "A", "B", "c1", T0);
        fill_followups(&run, T0 + 2000);
        h_push(&run, h_follow("V", T0 + 60000, PG_KIND_VOID, "A", "c1", 1000));
        dup(&run, "A2", "B2", "c2", T0);
        h_finish(&run);
        assert_int_equal(run.out.n_refunds, 1);
        assert_non_null(h_find_refund(&run, "B2"));
        assert_null(h_find_alert(&run, "refund_blocked", "B"));
        assert_int_equal(run.st.refunds_cancelled, 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(cancellations_around_decision_time),
            cmocka_unit_test(refunds_in_the_meantime),
            cmocka_unit_test(shadow_and_alert_only),
            cmocka_unit_test(caps_and_kill_switch),
            cmocka_unit_test(global_cap_per_currency),
            cmocka_unit_test(followups_refused_by_the_cap),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
