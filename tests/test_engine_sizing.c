/*
 * test_engine_sizing.c - an engine sized for its load from the start
 * (pg_engine_conf_t.expect_records): the same outputs as one that grows,
 * no table doubling up to that load, the facts table sized in proportion
 * to how long facts are kept, and a size the state cap cannot hold
 * refused before anything is allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "engine_harness.h"

static h_rules_t R;     /* retry, swipe, refund anomaly: facts for 30 days */
static h_rules_t SHORT; /* retry alone: facts for 17 minutes */

static int setup(void **state)
{
        h_rules_init(&R);
        h_rule(&R, "retry", PG_DET_RETRY_DUPLICATE, PG_ACTION_REFUND);
        h_rule(&R, "swipe", PG_DET_REPEATED_SWIPE, PG_ACTION_REFUND);
        h_rule(&R, "refunds", PG_DET_REFUND_ANOMALY, PG_ACTION_ALERT);
        h_rules_init(&SHORT);
        h_rule(&SHORT, "retry", PG_DET_RETRY_DUPLICATE, PG_ACTION_REFUND);
        return 0;
}

/* Bytes held by the engine's own table `name`. */
static size_t part_bytes(const pg_engine_t *e, const char *name)
{
        pg_state_part_t parts[64];
        size_t n = pg_engine_state_parts(e, parts, 64);
        size_t bytes = 0;
        for (size_t i = 0; i < n && i < 64; i++)
                if (!strcmp(parts[i].table, name) && !parts[i].rule[0])
                        bytes += parts[i].bytes;
        return bytes;
}

enum { CHARGES = 3000 };

/* CHARGES charges on 40 cards, one second apart, each of its own amount;
 * every 25th retransmitted (a retry duplicate, refunded), every 10th
 * partly refunded by the merchant. */
static void push_traffic(h_run_t *run)
{
        for (int i = 0; i < CHARGES; i++) {
                char txn[16], stan[16], card[16];
                snprintf(txn, sizeof(txn), "T%05d", i);
                snprintf(stan, sizeof(stan), "%06d", i);
                snprintf(card, sizeof(card), "c%d", i % 40);
                long long t = T0 + i * 1000LL;
                h_push(run, h_charge(txn, t, "M1", "T1", stan, card, 500 + i));
                if (i % 25 == 0) {
                        snprintf(txn, sizeof(txn), "D%05d", i);
                        h_push(run, h_charge(txn, t + 400, "M1", "T1", stan,
                                             card, 500 + i));
                }
                if (i % 10 == 5) {
                        char rtxn[16], orig[16], ocard[16];
                        snprintf(rtxn, sizeof(rtxn), "F%05d", i);
                        snprintf(orig, sizeof(orig), "T%05d", i - 5);
                        snprintf(ocard, sizeof(ocard), "c%d", (i - 5) % 40);
                        h_push(run, h_follow(rtxn, t + 600, PG_KIND_REFUND,
                                             orig, ocard, 200));
                }
        }
}

static void sized_engine_same_outputs_no_doubling(void **state)
{
        h_run_t grown, sized;
        h_start(&grown, &R, NULL);
        size_t grown_dedupe0 = part_bytes(grown.e, "dedupe");
        push_traffic(&grown);
        assert_true(part_bytes(grown.e, "dedupe") > grown_dedupe0);
        h_finish(&grown);

        pg_engine_conf_t conf;
        memset(&conf, 0, sizeof(conf));
        conf.expect_records = 4000;
        h_start(&sized, &R, &conf);
        size_t dedupe0 = part_bytes(sized.e, "dedupe"),
               facts0 = part_bytes(sized.e, "facts");
        assert_true(dedupe0 > grown_dedupe0);
        push_traffic(&sized);
        /* 3,420 records, 3,000 charges: neither table doubled */
        assert_int_equal(part_bytes(sized.e, "dedupe"), dedupe0);
        assert_int_equal(part_bytes(sized.e, "facts"), facts0);
        pg_engine_stats(sized.e, &sized.st);
        assert_true(sized.st.state_bytes_peak < 2 * sized.st.state_bytes);
        h_finish(&sized);

        assert_true(grown.out.n_refunds >= CHARGES / 25);
        assert_true(grown.out.n_alerts >= CHARGES / 25);
        h_assert_same_outputs(&grown.out, &sized.out);
        assert_int_equal(grown.st.records, sized.st.records);
        assert_int_equal(grown.st.duplicates, sized.st.duplicates);
}

/* Facts kept 17 minutes against a 24-hour dedupe horizon: at a steady
 * rate the facts table holds about 1/80 of the dedupe's records, and is
 * sized so. */
static void facts_sized_in_proportion(void **state)
{
        pg_engine_conf_t conf;
        memset(&conf, 0, sizeof(conf));
        conf.expect_records = 1 << 20;
        h_run_t long_facts, short_facts;
        h_start(&long_facts, &R, &conf);
        h_start(&short_facts, &SHORT, &conf);
        assert_int_equal(part_bytes(long_facts.e, "dedupe"),
                         part_bytes(short_facts.e, "dedupe"));
        size_t lf = part_bytes(long_facts.e, "facts"),
               sf = part_bytes(short_facts.e, "facts");
        assert_true(sf * 32 < lf);
        assert_true(sf > 0);
        h_finish(&long_facts);
        h_finish(&short_facts);
}

static void size_over_half_the_cap_refused(void **state)
{
        pg_engine_conf_t conf;
        memset(&conf, 0, sizeof(conf));
        conf.expect_records = 50000000; /* 50M: GiBs of arrays */
        conf.max_state_bytes = (size_t)1 << 30;
        char err[256] = "";
        assert_int_equal(pg_engine_conf_check(&R.rs, &conf, err, sizeof(err)),
                         -1);
        assert_non_null(strstr(err, "more than half the state cap (1024 MiB)"));
        pg_sink_t sink = {h_on_alert, h_on_refund, NULL};
        err[0] = '\0';
        assert_null(pg_engine_new(&R.rs, &conf, &sink, err, sizeof(err)));
        assert_non_null(strstr(err, "more than half the state cap"));

        /* with a cap that holds it, the check passes (it allocates
         * nothing, so 64 GiB need not exist here) */
        conf.max_state_bytes = (size_t)64 << 30;
        assert_int_equal(pg_engine_conf_check(&R.rs, &conf, err, sizeof(err)),
                         0);
        /* beyond PG_MAX_EXPECT_RECORDS, whatever the cap */
        conf.expect_records = PG_MAX_EXPECT_RECORDS + 1;
        conf.max_state_bytes = SIZE_MAX;
        assert_int_equal(pg_engine_conf_check(&R.rs, &conf, err, sizeof(err)),
                         -1);
        assert_non_null(strstr(err, "expected records"));
        /* 0 is no sizing at all, under any cap */
        conf.expect_records = 0;
        conf.max_state_bytes = 1;
        assert_int_equal(pg_engine_conf_check(&R.rs, &conf, err, sizeof(err)),
                         0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(sized_engine_same_outputs_no_doubling),
            cmocka_unit_test(facts_sized_in_proportion),
            cmocka_unit_test(size_over_half_the_cap_refused),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
