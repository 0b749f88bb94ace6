/*
 * test_refund_anomaly.c - DOMAIN.md detector 4: refunds above the charge,
 * to another card, without a charge; the engine's own refunds counted from
 * their decision time.
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
        h_rule(&R, "ra", PG_DET_REFUND_ANOMALY, PG_ACTION_ALERT);
        return 0;
}

static void exceeds_after_two_partials(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("P", T0, "M1", "T1", "1", "c1", 1000));
        h_push(&run,
               h_follow("R1", T0 + 60000, PG_KIND_REFUND, "P", "c1", 600));
        h_push(&run,
               h_follow("R2", T0 + 70000, PG_KIND_REFUND, "P", "c1", 400));
        h_push(&run, h_follow("R3", T0 + 80000, PG_KIND_REFUND, "P", "c1", 1));
        h_finish(&run);
        assert_int_equal(h_count(&run, "refund_exceeds_original"), 1);
        const h_alert_t *a =
            h_find_alert(&run, "refund_exceeds_original", "R3");
        assert_non_null(a);
        assert_int_equal(a->n_txn_ids, 2);
        assert_string_equal(a->txn_ids[1], "P");
        assert_int_equal(run.out.n_alerts, 1);
}

static void card_mismatch_and_without_original(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("P", T0, "M1", "T1", "1", "c1", 1000));
        h_push(&run, h_follow("R1", T0 + 1000, PG_KIND_REFUND, "P", "c2", 100));
        h_push(&run,
               h_follow("R2", T0 + 2000, PG_KIND_REFUND, "NOPE", "c1", 100));
        /* a refund before its charge in event time has no original */
        h_push(&run, h_follow("R3", T0 + 3000, PG_KIND_REFUND, "Q", "c1", 10));
        h_push(&run, h_charge("Q", T0 + 4000, "M1", "T1", "2", "c1", 1000));
        /* declined refunds are not refunds */
        pg_record_t d =
            h_follow("R4", T0 + 5000, PG_KIND_REFUND, "NOPE2", "c1", 100);
        d.status = PG_STATUS_DECLINED;
        h_push(&run, d);
        h_finish(&run);
        assert_non_null(h_find_alert(&run, "refund_card_mismatch", "R1"));
        assert_non_null(h_find_alert(&run, "refund_without_original", "R2"));
        assert_non_null(h_find_alert(&run, "refund_without_original", "R3"));
        assert_int_equal(run.out.n_alerts, 3);
}

static void lookback(void **state)
{
        h_rules_t r2;
        h_rules_init(&r2);
        h_rule(&r2, "ra", PG_DET_REFUND_ANOMALY, PG_ACTION_ALERT)->lookback_ms =
            3600000;
        h_run_t run;
        h_start(&run, &r2, NULL);
        h_push(&run, h_charge("P", T0, "M1", "T1", "1", "c1", 1000));
        h_push(&run,
               h_follow("R1", T0 + 3600000, PG_KIND_REFUND, "P", "c1", 10));
        h_push(&run,
               h_follow("R2", T0 + 3600001, PG_KIND_REFUND, "P", "c1", 10));
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 1);
        assert_non_null(h_find_alert(&run, "refund_without_original", "R2"));
}

static void engine_refund_counts_from_decision_time(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("A", T0, "M1", "T1", "1", "c1", 1000));
        h_push(&run, h_charge("B", T0 + 1000, "M1", "T1", "1", "c1", 1000));
        /* the engine refunds B in full at T0+121000; a merchant refund of 1
         * after that exceeds B's amount, one before it does not */
        h_push(&run, h_follow("R0", T0 + 121000, PG_KIND_REFUND, "B", "c1", 1));
        h_push(&run, h_follow("R1", T0 + 121001, PG_KIND_REFUND, "B", "c1", 1));
        h_finish(&run);
        const h_refund_t *rf = h_find_refund(&run, "B");
        assert_non_null(rf);
        assert_int_equal(rf->amount, 999); /* R0 counted at decision time */
        assert_null(h_find_alert(&run, "refund_exceeds_original", "R0"));
        assert_non_null(h_find_alert(&run, "refund_exceeds_original", "R1"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(exceeds_after_two_partials),
            cmocka_unit_test(card_mismatch_and_without_original),
            cmocka_unit_test(lookback),
            cmocka_unit_test(engine_refund_counts_from_decision_time),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
