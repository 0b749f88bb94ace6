/*
 * test_retry_duplicate.c - DOMAIN.md detector 1, with its boundaries.
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

static void at_window_boundary(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("A1", T0, "M1", "T1", "000001", "c1", 1000));
        h_push(&run,
               h_charge("A2", T0 + 900000, "M1", "T1", "000001", "c1", 1000));
        h_push(&run, h_charge("B1", T0, "M1", "T2", "000001", "c1", 1000));
        h_push(&run,
               h_charge("B2", T0 + 900001, "M1", "T2", "000001", "c1", 1000));
        h_finish(&run);
        assert_int_equal(h_count(&run, "retry_duplicate"), 1);
        const h_alert_t *a = h_find_alert(&run, "retry_duplicate", "A2");
        assert_non_null(a);
        assert_int_equal(a->n_txn_ids, 2);
        assert_string_equal(a->txn_ids[1], "A1");
        const h_refund_t *r = h_find_refund(&run, "A2");
        assert_non_null(r);
        assert_int_equal(r->amount, 1000);
        assert_string_equal(r->reason, "duplicate");
        assert_int_equal(r->decided_at, T0 + 900000 + 120000);
        assert_string_equal(r->alert_id, a->alert_id);
        assert_int_equal(run.out.n_refunds, 1);
}

static void equal_times_later_in_input_is_duplicate(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("X", T0, "M1", "T1", "7", "c1", 500));
        h_push(&run, h_charge("Y", T0, "M1", "T1", "7", "c1", 500));
        h_finish(&run);
        assert_int_equal(h_count(&run, "retry_duplicate"), 1);
        assert_non_null(h_find_alert(&run, "retry_duplicate", "Y"));
        assert_non_null(h_find_refund(&run, "Y"));
        assert_null(h_find_refund(&run, "X"));
}

static void key_fields_must_all_match(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("A", T0, "M1", "T1", "7", "c1", 500));
        h_push(&run, h_charge("B", T0 + 1, "M1", "T1", "7", "c1", 501));
        h_push(&run, h_charge("C", T0 + 2, "M1", "T1", "7", "c2", 500));
        h_push(&run, h_charge("D", T0 + 3, "M1", "T1", "8", "c1", 500));
        h_push(&run, h_charge("E", T0 + 4, "M1", "T9", "7", "c1", 500));
        pg_record_t f = h_charge("F", T0 + 5, "M1", "T1", "7", "c1", 500);
        h_str(&f.currency, "USD");
        h_push(&run, f);
        pg_record_t g = h_charge("G", T0 + 6, "M1", "T1", "7", "c1", 500);
        g.status = PG_STATUS_DECLINED;
        h_push(&run, g);
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 0);
        assert_int_equal(run.out.n_refunds, 0);
}

static void original_reversed_before_retry_is_not_paired(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("A", T0, "M1", "T1", "7", "c1", 500));
        h_push(&run,
               h_follow("V", T0 + 1000, PG_KIND_REVERSAL, "A", "c1", 500));
        h_push(&run, h_charge("B", T0 + 2000, "M1", "T1", "7", "c1", 500));
        /* a reversal at exactly the retry's time cancels too, even when it
         * comes after the retry in the input */
        h_push(&run, h_charge("C", T0 + 10000, "M1", "T2", "7", "c1", 500));
        h_push(&run, h_charge("D", T0 + 20000, "M1", "T2", "7", "c1", 500));
        h_push(&run, h_follow("W", T0 + 20000, PG_KIND_VOID, "C", "c1", 500));
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 0);
        assert_int_equal(run.out.n_refunds, 0);
}

static void deterministic_ids(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("T1", T0, "M1", "T1", "7", "c1", 500));
        h_push(&run, h_charge("T2", T0 + 10, "M1", "T1", "7", "c1", 500));
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 1);
        /* xxh3_128 of "alert|retry|retry_duplicate|T2" and
         * "refund|retry|T2", computed independently with python-xxhash */
        assert_string_equal(run.out.alerts[0].alert_id,
                            "al-e45942ffde71720f41c6c9e482e22792");
        assert_string_equal(run.out.refunds[0].refund_id,
                            "rf-3cd570179e5faa56735d240efebb4964");
}

static void chain_of_three(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("A", T0, "M1", "T1", "7", "c1", 500));
        h_push(&run, h_charge("B", T0 + 100, "M1", "T1", "7", "c1", 500));
        h_push(&run, h_charge("C", T0 + 200, "M1", "T1", "7", "c1", 500));
        h_finish(&run);
        assert_int_equal(h_count(&run, "retry_duplicate"), 2);
        const h_alert_t *c = h_find_alert(&run, "retry_duplicate", "C");
        assert_non_null(c);
        assert_int_equal(c->n_txn_ids, 3);
        assert_string_equal(c->txn_ids[1], "A");
        assert_string_equal(c->txn_ids[2], "B");
        assert_int_equal(run.out.n_refunds, 2);
        assert_null(h_find_refund(&run, "A"));
}

/* A paired charge's txn_id comes from where the engine kept it: with the
 * charge's fact (A, C), or in the chain when the charge has no fact of its
 * own (B: its rrn was charged already); and it stays right when a refund
 * of A's rrn makes the fact live longer, so that its txn_id is copied to a
 * later place in the string log. */
static void txn_ids_with_the_fact_or_apart(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("A", T0, "M1", "T1", "7", "c1", 500));
        pg_record_t b = h_charge("B", T0 + 100, "M1", "T1", "7", "c1", 500);
        h_str(&b.rrn, "RA");
        h_push(&run, b);
        h_push(&run, h_follow("F", T0 + 200, PG_KIND_REFUND, "A", "c1", 100));
        h_push(&run, h_charge("C", T0 + 300, "M1", "T1", "7", "c1", 500));
        h_finish(&run);
        assert_int_equal(run.st.rrn_conflicts, 1);
        const h_alert_t *c = h_find_alert(&run, "retry_duplicate", "C");
        assert_non_null(c);
        assert_int_equal(c->n_txn_ids, 3);
        assert_string_equal(c->txn_ids[0], "C");
        assert_string_equal(c->txn_ids[1], "A");
        assert_string_equal(c->txn_ids[2], "B");
        const h_alert_t *a = h_find_alert(&run, "retry_duplicate", "B");
        assert_non_null(a);
        assert_string_equal(a->txn_ids[0], "B");
        assert_string_equal(a->txn_ids[1], "A");
}

/* A chain member kept in the ring past its horizon (the expiry's work per
 * step is bounded, and 20,000 older members are ahead of it, whose
 * txn_ids are not in the engine's string log) can still be
 * walked: by a late record, through a group that newer members kept alive.
 * Its txn_id, which it refers to with its fact, is still there then: the
 * engine's string log keeps what chain members may refer to (it failed
 * before: the log dropped A's txn_id at its expiry, the alert said ""). */
static void late_walk_of_a_lingering_member_keeps_its_txn_id(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        char txn[32], stan[16];
        for (int i = 0; i < 20000; i++) {
                snprintf(txn, sizeof(txn), "X%d", i);
                snprintf(stan, sizeof(stan), "%06d", 100000 + i);
                pg_record_t x = h_charge(txn, T0, "M1", "T1", stan, "c1", 500);
                /* one fact, one string in the engine's log (same time: no
                 * renewal): the others keep their txn_ids in the chain */
                h_str(&x.rrn, "RX");
                h_push(&run, x);
        }
        long long ta = T0 + 20001;
        h_push(&run, h_charge("A", ta, "M1", "T1", "7", "c1", 500));
        /* A's group lives on (a member every 10 minutes) for two hours,
         * past A's horizon and its fact's (long_h) */
        for (int k = 1; k <= 12; k++) {
                long long t = ta + k * 600000LL;
                snprintf(txn, sizeof(txn), "B%d", k);
                h_push(&run, h_charge(txn, t, "M1", "T1", "7", "c1", 500));
                for (int i = 1; i <= 3; i++) {
                        snprintf(txn, sizeof(txn), "Y%d-%d", k, i);
                        snprintf(stan, sizeof(stan), "%06d", 300000 + k);
                        h_push(&run, h_charge(txn, t + i * 1000, "M1", "T2",
                                              stan, "c2", 700 + i));
                }
        }
        /* late: processed at once, it walks A's group back to A */
        h_push(&run, h_charge("Q", ta + 1, "M1", "T1", "7", "c1", 500));
        h_finish(&run);
        assert_int_equal(h_count(&run, "retry_duplicate"), 13);
        const h_alert_t *q = h_find_alert(&run, "retry_duplicate", "Q");
        assert_non_null(q);
        assert_int_equal(q->n_txn_ids, 2);
        assert_string_equal(q->txn_ids[1], "A");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(at_window_boundary),
            cmocka_unit_test(equal_times_later_in_input_is_duplicate),
            cmocka_unit_test(key_fields_must_all_match),
            cmocka_unit_test(original_reversed_before_retry_is_not_paired),
            cmocka_unit_test(deterministic_ids),
            cmocka_unit_test(chain_of_three),
            cmocka_unit_test(txn_ids_with_the_fact_or_apart),
            cmocka_unit_test(late_walk_of_a_lingering_member_keeps_its_txn_id),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
