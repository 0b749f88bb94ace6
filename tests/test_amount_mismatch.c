/*
 * test_amount_mismatch.c - DOMAIN.md detector 3: overcharge, undercharge,
 * tolerance, power-of-ten severity, and the overcharged duplicate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "engine_harness.h"

static pg_record_t with_expected(pg_record_t r, long long expected)
{
        r.has_expected = true;
        r.expected_amount = expected;
        return r;
}

static void overcharge_undercharge_severity(void **state)
{
        h_rules_t R;
        h_rules_init(&R);
        h_rule(&R, "mismatch", PG_DET_AMOUNT_MISMATCH, PG_ACTION_REFUND);
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run,
               with_expected(h_charge("X10", T0, "M1", "T1", "1", "c1", 100000),
                             10000));
        h_push(&run, with_expected(
                         h_charge("X1", T0 + 1, "M1", "T1", "2", "c2", 10001),
                         10000));
        h_push(&run,
               with_expected(h_charge("U", T0 + 2, "M1", "T1", "3", "c3", 100),
                             1000));
        h_push(&run,
               with_expected(h_charge("OK", T0 + 3, "M1", "T1", "4", "c4", 100),
                             100));
        h_push(&run, h_charge("NOEXP", T0 + 4, "M1", "T1", "5", "c5", 100));
        h_finish(&run);
        const h_alert_t *a = h_find_alert(&run, "overcharge", "X10");
        assert_non_null(a);
        assert_string_equal(a->severity, "critical");
        a = h_find_alert(&run, "overcharge", "X1");
        assert_non_null(a);
        assert_string_equal(a->severity, "high");
        a = h_find_alert(&run, "undercharge", "U");
        assert_non_null(a);
        assert_string_equal(a->severity, "critical");
        assert_int_equal(run.out.n_alerts, 3);
        const h_refund_t *r = h_find_refund(&run, "X10");
        assert_non_null(r);
        assert_int_equal(r->amount, 90000);
        assert_string_equal(r->reason, "overcharge");
        r = h_find_refund(&run, "X1");
        assert_non_null(r);
        assert_int_equal(r->amount, 1);
        assert_null(h_find_refund(&run, "U"));
        assert_int_equal(run.out.n_refunds, 2);
}

static void tolerance(void **state)
{
        h_rules_t R;
        h_rules_init(&R);
        h_rule(&R, "mismatch", PG_DET_AMOUNT_MISMATCH, PG_ACTION_REFUND)
            ->tolerance = 5;
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, with_expected(
                         h_charge("A", T0, "M1", "T1", "1", "c1", 105), 100));
        h_push(&run, with_expected(
                         h_charge("B", T0, "M1", "T1", "2", "c1", 106), 100));
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 1);
        assert_non_null(h_find_alert(&run, "overcharge", "B"));
        assert_int_equal(h_find_refund(&run, "B")->amount, 6);
}

static void overcharged_duplicate_gets_one_full_refund(void **state)
{
        h_rules_t R;
        h_rules_init(&R);
        h_rule(&R, "retry", PG_DET_RETRY_DUPLICATE, PG_ACTION_REFUND);
        h_rule(&R, "mismatch", PG_DET_AMOUNT_MISMATCH, PG_ACTION_REFUND);
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, with_expected(
                         h_charge("A", T0, "M1", "T1", "1", "c1", 1000), 100));
        h_push(&run,
               with_expected(
                   h_charge("B", T0 + 500, "M1", "T1", "1", "c1", 1000), 100));
        h_finish(&run);
        assert_int_equal(h_count(&run, "overcharge"), 2);
        assert_int_equal(h_count(&run, "retry_duplicate"), 1);
        assert_int_equal(run.out.n_refunds, 2);
        const h_refund_t *b = h_find_refund(&run, "B");
        assert_int_equal(b->amount, 1000);
        assert_string_equal(b->reason, "duplicate");
        assert_string_equal(b->rule_id, "retry");
        const h_refund_t *a = h_find_refund(&run, "A");
        assert_int_equal(a->amount, 900);
        assert_string_equal(a->reason, "overcharge");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(overcharge_undercharge_severity),
            cmocka_unit_test(tolerance),
            cmocka_unit_test(overcharged_duplicate_gets_one_full_refund),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
