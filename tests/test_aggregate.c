/*
 * test_aggregate.c - DOMAIN.md detector 5: count / sum / distinct over a
 * sliding event-time window, one alert per crossing, re-armed below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "engine_harness.h"

static pg_rule_t *agg(h_rules_t *R, pg_agg_fn_t fn, long long threshold)
{
        pg_rule_t *r = h_rule(R, "agg", PG_DET_AGGREGATE, PG_ACTION_ALERT);
        r->fn = fn;
        r->n_group_by = 1;
        r->group_by[0] = PG_F_CARD_TOKEN;
        r->window_ms = 600000;
        r->threshold = threshold;
        return r;
}

static void count_crossing_and_rearm(void **state)
{
        h_rules_t R;
        h_rules_init(&R);
        agg(&R, PG_AGG_COUNT, 3);
        h_run_t run;
        h_start(&run, &R, NULL);
        char id[16];
        /* 3 in the window: alert at the third; the 4th does not alert */
        for (int i = 0; i < 4; i++) {
                snprintf(id, sizeof(id), "A%d", i);
                h_push(&run,
                       h_charge(id, T0 + i * 1000, "M1", "T1", id, "c1", 1));
        }
        /* window inclusive: at T0+600000 the event at T0 still counts, so
         * the value stays >= 3 and nothing re-arms */
        h_push(&run, h_charge("B0", T0 + 600000, "M1", "T1", "B0", "c1", 1));
        /* 20 minutes later everything expired: re-armed, alert again at the
         * third */
        for (int i = 0; i < 3; i++) {
                snprintf(id, sizeof(id), "C%d", i);
                h_push(&run,
                       h_charge(id, T0 + 1800000 + i, "M1", "T1", id, "c1", 1));
        }
        /* another card: its own group */
        h_push(&run, h_charge("D0", T0 + 1800010, "M1", "T1", "D0", "c2", 1));
        h_finish(&run);
        assert_int_equal(run.out.n_alerts, 2);
        assert_string_equal(run.out.alerts[0].txn_ids[0], "A2");
        assert_string_equal(run.out.alerts[0].finding, "agg");
        assert_string_equal(run.out.alerts[1].txn_ids[0], "C2");
}

static void sum_and_distinct(void **state)
{
        h_rules_t R;
        h_rules_init(&R);
        agg(&R, PG_AGG_SUM, 1000);
        pg_rule_t *d = agg(&R, PG_AGG_DISTINCT, 3);
        snprintf(d->id, sizeof(d->id), "dist");
        d->group_by[0] = PG_F_TERMINAL_ID;
        d->distinct_field = PG_F_CARD_TOKEN;
        h_run_t run;
        h_start(&run, &R, NULL);
        h_push(&run, h_charge("S1", T0, "M1", "T1", "1", "c1", 600));
        h_push(&run, h_charge("S2", T0 + 1, "M1", "T1", "2", "c1", 399));
        h_push(&run, h_charge("S3", T0 + 2, "M1", "T1", "3", "c1", 1));
        /* distinct cards at terminal T9: c7, c7, c8, c9 -> alert at c9 */
        h_push(&run, h_charge("D1", T0 + 3, "M1", "T9", "4", "c7", 5));
        h_push(&run, h_charge("D2", T0 + 4, "M1", "T9", "5", "c7", 5));
        h_push(&run, h_charge("D3", T0 + 5, "M1", "T9", "6", "c8", 5));
        h_push(&run, h_charge("D4", T0 + 6, "M1", "T9", "7", "c9", 5));
        h_finish(&run);
        assert_non_null(h_find_alert(&run, "agg", "S3"));
        assert_non_null(h_find_alert(&run, "dist", "D4"));
        /* T1 saw only c1: no distinct alert there */
        assert_int_equal(run.out.n_alerts, 2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(count_crossing_and_rearm),
            cmocka_unit_test(sum_and_distinct),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
