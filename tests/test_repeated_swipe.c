/*
 * test_repeated_swipe.c - DOMAIN.md detector 2, with its boundaries.
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
        h_rule(&R, "swipe", PG_DET_REPEATED_SWIPE, PG_ACTION_REFUND);
        return 0;
}

/* Two charges of card c at merchant m, dt apart, distinct stans. */
static void pair(h_run_t *run, const char *a, const char *b, const char *card,
                 long long t, long long dt)
{
        h_push(run, h_charge(a, t, "M1", "T1", "100", card, 2500));
        h_push(run, h_charge(b, t + dt, "M1", "T2", "101", card, 2500));
}

static void auto_refund_boundary(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        pair(&run, "A1", "A2", "c1", T0, 60000);
        pair(&run, "B1", "B2", "c2", T0, 60001);
        h_finish(&run);
        assert_int_equal(h_count(&run, "repeated_swipe"), 2);
        assert_non_null(h_find_refund(&run, "A2"));
        assert_null(h_find_refund(&run, "B2"));
        assert_int_equal(run.out.n_refunds, 1);
}

static void window_boundary(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        pair(&run, "A1", "A2", "c1", T0, 120000);
        pair(&run, "B1", "B2", "c2", T0, 120001);
        pair(&run, "C1", "C2", "c3", T0, 0); /* equal times: not a swipe */
        h_finish(&run);
        assert_int_equal(h_count(&run, "repeated_swipe"), 1);
        assert_non_null(h_find_alert(&run, "repeated_swipe", "A2"));
        assert_int_equal(run.out.n_refunds, 0);
}

static void same_stan_is_not_a_swipe(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("A", T0, "M1", "T1", "5", "c1", 10));
        h_push(&run, h_charge("B", T0 + 1000, "M1", "T2", "5", "c1", 10));
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 0);
}

static void order_ids(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        /* different order ids: two genuine orders, nothing */
        pg_record_t a = h_charge("A1", T0, "M1", "T1", "1", "c1", 10);
        pg_record_t b = h_charge("A2", T0 + 5000, "M1", "T1", "2", "c1", 10);
        h_str(&a.order_id, "O-1");
        h_str(&b.order_id, "O-2");
        h_push(&run, a);
        h_push(&run, b);
        /* same order id, 100 s apart: refund even past auto_refund_within */
        a = h_charge("B1", T0, "M1", "T1", "3", "c2", 10);
        b = h_charge("B2", T0 + 100000, "M1", "T1", "4", "c2", 10);
        h_str(&a.order_id, "O-9");
        h_str(&b.order_id, "O-9");
        h_push(&run, a);
        h_push(&run, b);
        /* only one has an order id: alert, no refund */
        a = h_charge("C1", T0, "M1", "T1", "5", "c3", 10);
        b = h_charge("C2", T0 + 1000, "M1", "T1", "6", "c3", 10);
        h_str(&b.order_id, "O-7");
        h_push(&run, a);
        h_push(&run, b);
        h_finish(&run);
        assert_null(h_find_alert(&run, "repeated_swipe", "A2"));
        assert_non_null(h_find_alert(&run, "repeated_swipe", "B2"));
        assert_non_null(h_find_refund(&run, "B2"));
        assert_non_null(h_find_alert(&run, "repeated_swipe", "C2"));
        assert_null(h_find_refund(&run, "C2"));
        assert_int_equal(run.out.n_refunds, 1);
}

static void three_swipes_in_a_row(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("A", T0, "M1", "T1", "1", "c1", 10));
        h_push(&run, h_charge("B", T0 + 10000, "M1", "T1", "2", "c1", 10));
        h_push(&run, h_charge("C", T0 + 20000, "M1", "T1", "3", "c1", 10));
        h_finish(&run);
        assert_int_equal(h_count(&run, "repeated_swipe"), 2);
        assert_non_null(h_find_refund(&run, "B"));
        assert_non_null(h_find_refund(&run, "C"));
        assert_null(h_find_refund(&run, "A"));
        const h_alert_t *c = h_find_alert(&run, "repeated_swipe", "C");
        assert_int_equal(c->n_txn_ids, 3);
}

static void first_swipe_voided(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("A", T0, "M1", "T1", "1", "c1", 10));
        h_push(&run, h_follow("V", T0 + 3000, PG_KIND_VOID, "A", "c1", 10));
        h_push(&run, h_charge("B", T0 + 10000, "M1", "T1", "2", "c1", 10));
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 0);
        assert_int_equal(run.out.n_refunds, 0);
}

static void declined_then_approved(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        pg_record_t a = h_charge("A", T0, "M1", "T1", "1", "c1", 10);
        a.status = PG_STATUS_DECLINED;
        h_push(&run, a);
        h_push(&run, h_charge("B", T0 + 10000, "M1", "T1", "2", "c1", 10));
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(auto_refund_boundary),
            cmocka_unit_test(window_boundary),
            cmocka_unit_test(same_stan_is_not_a_swipe),
            cmocka_unit_test(order_ids),
            cmocka_unit_test(three_swipes_in_a_row),
            cmocka_unit_test(first_swipe_voided),
            cmocka_unit_test(declined_then_approved),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
