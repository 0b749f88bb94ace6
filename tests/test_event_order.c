/*
 * test_event_order.c - event time, not arrival: transport dedupe, the
 * reorder buffer within allowed lateness, late records, determinism.
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
        h_rule(&R, "swipe", PG_DET_REPEATED_SWIPE, PG_ACTION_REFUND);
        return 0;
}

static void transport_duplicate_dropped(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        pg_record_t a = h_charge("A", T0, "M1", "T1", "1", "c1", 10);
        h_push(&run, a);
        h_push(&run, a); /* redelivery: same txn_id */
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 0);
        assert_int_equal(run.st.duplicates, 1);
        assert_int_equal(run.st.records, 1);
}

static void out_of_order_within_lateness(void **state)
{
        /* B (later) arrives 4 s of event time before A: same result as in
         * order, and the refund is identical */
        h_run_t in, out;
        h_start(&in, &R, NULL);
        h_push(&in, h_charge("A", T0, "M1", "T1", "1", "c1", 10));
        h_push(&in, h_charge("B", T0 + 3000, "M1", "T1", "1", "c1", 10));
        h_push(&in, h_charge("C", T0 + 4000, "M1", "T2", "5", "c2", 10));
        h_finish(&in);
        h_start(&out, &R, NULL);
        h_push(&out, h_charge("C", T0 + 4000, "M1", "T2", "5", "c2", 10));
        h_push(&out, h_charge("B", T0 + 3000, "M1", "T1", "1", "c1", 10));
        h_push(&out, h_charge("A", T0, "M1", "T1", "1", "c1", 10));
        h_finish(&out);
        assert_int_equal(in.out.n_alerts, 1);
        assert_int_equal(out.out.n_alerts, 1);
        assert_string_equal(in.out.alerts[0].alert_id,
                            out.out.alerts[0].alert_id);
        assert_int_equal(out.st.late, 0);
        assert_int_equal(out.out.n_refunds, 1);
        assert_string_equal(out.out.refunds[0].txn_id, "B");
}

static void late_record_counted_and_used(void **state)
{
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("X", T0 + 60000, "M9", "T9", "1", "c9", 10));
        /* 60 s late: counted, still used as best effort */
        h_push(&run, h_charge("A", T0, "M1", "T1", "1", "c1", 10));
        h_push(&run, h_charge("B", T0 + 61000, "M1", "T1", "1", "c1", 10));
        h_finish(&run);
        assert_int_equal(run.st.late, 1);
        assert_non_null(h_find_alert(&run, "retry_duplicate", "B"));
}

static void determinism_under_shuffle_within_lateness(void **state)
{
        /* 200 charges on a few cards, in order vs. shuffled by < 5 s */
        enum { N = 200 };
        pg_record_t recs[N];
        for (int i = 0; i < N; i++) {
                char txn[16], stan[16], card[16];
                snprintf(txn, sizeof(txn), "T%03d", i);
                snprintf(stan, sizeof(stan), "%d", i % 7 == 0 ? 1 : i);
                snprintf(card, sizeof(card), "c%d", i % 5);
                recs[i] = h_charge(txn, T0 + i * 700LL, "M1", "T1", stan, card,
                                   100 + (i % 3));
        }
        h_run_t a, b;
        h_start(&a, &R, NULL);
        for (int i = 0; i < N; i++)
                h_push(&a, recs[i]);
        h_finish(&a);
        /* shuffle within blocks of 4 (at most 2.1 s of event time) */
        unsigned seed = 7;
        for (int b0 = 0; b0 + 4 <= N; b0 += 4) {
                for (int i = 3; i > 0; i--) {
                        seed = seed * 1103515245u + 12345u;
                        int j = (int)((seed >> 16) % (unsigned)(i + 1));
                        pg_record_t tmp = recs[b0 + i];
                        recs[b0 + i] = recs[b0 + j];
                        recs[b0 + j] = tmp;
                }
        }
        h_start(&b, &R, NULL);
        for (int i = 0; i < N; i++)
                h_push(&b, recs[i]);
        h_finish(&b);
        assert_true(a.out.n_alerts > 10);
        h_assert_same_outputs(&a.out, &b.out);
        assert_int_equal(b.st.late, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(transport_duplicate_dropped),
            cmocka_unit_test(out_of_order_within_lateness),
            cmocka_unit_test(late_record_counted_and_used),
            cmocka_unit_test(determinism_under_shuffle_within_lateness),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
