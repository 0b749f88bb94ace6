/*
 * test_state_ctable.c - the concurrent state table on one thread: insert,
 * update, lookup, removal and revival, expiry by event time, incremental
 * resize (growth, compaction, shrink), the memory cap, batched lookup, and
 * a long random run checked op by op against a sequential model. The
 * multi-threaded behaviour is in test_state_ctable_concurrent.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state_ctable.h"

static pg_key_t key(uint64_t i)
{
        pg_keyb_t kb;
        pg_keyb_init(&kb, 9);
        pg_keyb_i64(&kb, (int64_t)i);
        return pg_keyb_done(&kb);
}

typedef struct fixture {
        pg_epoch_t *ep;
        pg_epoch_handle_t h;
        pg_ctable_t *t;
} fixture_t;

static fixture_t *open_table(size_t value_size, size_t max_bytes)
{
        fixture_t *f = calloc(1, sizeof(*f));
        f->ep = pg_epoch_new();
        assert_true(pg_epoch_register(f->ep, &f->h));
        char err[128];
        pg_ctable_conf_t c = {"t", value_size, max_bytes, 0};
        f->t = pg_ctable_new(&c, f->ep, err, sizeof(err));
        assert_non_null(f->t);
        pg_epoch_enter(&f->h);
        return f;
}

static void close_table(fixture_t *f)
{
        pg_epoch_exit(&f->h);
        pg_epoch_reclaim(f->ep);
        pg_ctable_free(f->t);
        pg_epoch_unregister(&f->h);
        pg_epoch_free(f->ep);
        free(f);
}

/* The update callback of these tests: value[0] += *(int64_t *)arg. */
static bool add(void *value, bool created, int64_t *expire_at, void *arg)
{
        int64_t *v = value;
        v[0] += *(int64_t *)arg;
        v[1] = created;
        return true;
}

static void insert_update_get(void **state)
{
        fixture_t *f = open_table(16, 0);
        int64_t one = 1, v[2];
        for (uint64_t i = 0; i < 50000; i++)
                assert_int_equal(
                    pg_ctable_upsert(f->t, key(i), 0, 1000, true, add, &one),
                    PG_CT_CREATED);
        for (uint64_t i = 0; i < 50000; i += 2)
                assert_int_equal(
                    pg_ctable_upsert(f->t, key(i), 0, 1000, true, add, &one),
                    PG_CT_UPDATED);
        for (uint64_t i = 0; i < 50000; i++) {
                assert_true(pg_ctable_get(f->t, key(i), 0, v));
                assert_int_equal(v[0], i % 2 ? 1 : 2);
                assert_int_equal(v[1], i % 2 ? 1 : 0);
        }
        assert_false(pg_ctable_get(f->t, key(50000), 0, v));
        assert_int_equal(
            pg_ctable_upsert(f->t, key(50000), 0, 1000, false, add, &one),
            PG_CT_ABSENT);
        pg_ctable_stats_t st;
        pg_ctable_stats(f->t, &st);
        assert_int_equal(st.live, 50000);
        assert_true(st.resizes >= 10); /* 64 slots at the start */
        assert_true(st.cap >= 65536);
        close_table(f);
}

static void expiry_and_revival(void **state)
{
        fixture_t *f = open_table(16, 0);
        int64_t one = 1, v[2];
        pg_ctable_upsert(f->t, key(1), 0, 100, true, add, &one);
        assert_true(pg_ctable_get(f->t, key(1), 99, v));
        assert_false(pg_ctable_get(f->t, key(1), 100, v)); /* dead at 100 */
        /* an update of a live entry raises the expiry, never lowers it */
        pg_ctable_upsert(f->t, key(1), 50, 200, true, add, &one);
        pg_ctable_upsert(f->t, key(1), 60, 150, true, add, &one);
        assert_true(pg_ctable_get(f->t, key(1), 199, v));
        assert_int_equal(v[0], 3);
        /* a dead entry is created again, zeroed */
        assert_int_equal(
            pg_ctable_upsert(f->t, key(1), 200, 300, true, add, &one),
            PG_CT_CREATED);
        assert_true(pg_ctable_get(f->t, key(1), 250, v));
        assert_int_equal(v[0], 1);
        /* removal, then revival of the tombstone */
        assert_true(pg_ctable_remove(f->t, key(1), 250));
        assert_false(pg_ctable_remove(f->t, key(1), 250));
        assert_false(pg_ctable_get(f->t, key(1), 250, v));
        assert_int_equal(
            pg_ctable_upsert(f->t, key(1), 250, 300, true, add, &one),
            PG_CT_CREATED);
        assert_true(pg_ctable_get(f->t, key(1), 250, v));
        assert_int_equal(v[0], 1);
        close_table(f);
}

static void sweep_and_compaction(void **state)
{
        fixture_t *f = open_table(0, 0);
        /* waves of short-lived keys: expiry sweeps and resizes keep the
         * table at the size of one wave, not of everything ever seen */
        for (int64_t wave = 0; wave < 40; wave++) {
                for (int n = 0; n < 64; n++)
                        pg_ctable_expire(f->t, wave * 10, 1024);
                for (uint64_t i = 0; i < 4000; i++)
                        assert_int_equal(
                            pg_ctable_upsert(
                                f->t, key((uint64_t)wave * 4000 + i), wave * 10,
                                wave * 10 + 10, true, NULL, NULL),
                            PG_CT_CREATED);
        }
        pg_ctable_stats_t st;
        pg_ctable_stats(f->t, &st);
        assert_true(st.live <= 8000);
        assert_true(st.cap <= 16384);
        assert_true(st.swept >= 38 * 4000);
        for (uint64_t i = 0; i < 4000; i++)
                assert_true(pg_ctable_get(f->t, key(39 * 4000 + i), 395, NULL));
        assert_false(pg_ctable_get(f->t, key(38 * 4000), 395, NULL));
        close_table(f);
}

static void memory_cap(void **state)
{
        /* 64-byte slots, 256 KiB: arrays up to 2048 slots (a 4096-slot
         * array beside it would pass the cap) */
        fixture_t *f = open_table(16, 256 << 10);
        int64_t one = 1;
        size_t created = 0, full = 0;
        for (uint64_t i = 0; i < 10000; i++) {
                pg_ct_result_t r =
                    pg_ctable_upsert(f->t, key(i), 0, 1000, true, add, &one);
                if (r == PG_CT_CREATED)
                        created++;
                else if (r == PG_CT_FULL)
                        full++;
                else
                        fail_msg("unexpected result %d", r);
        }
        pg_ctable_stats_t st;
        pg_ctable_stats(f->t, &st);
        assert_true(st.peak_bytes <= 256 << 10);
        assert_int_equal(st.full, full);
        assert_true(full > 0);
        assert_true(created >= 1500);
        /* everything accepted is still there */
        for (uint64_t i = 0, seen = 0; seen < created && i < 10000; i++)
                seen += pg_ctable_get(f->t, key(i), 0, NULL);
        assert_int_equal(st.live, created);
        /* once entries expire, the full table takes new keys again */
        for (int n = 0; n < 16; n++)
                pg_ctable_expire(f->t, 1000, 4096);
        assert_int_equal(
            pg_ctable_upsert(f->t, key(20000), 1000, 2000, true, add, &one),
            PG_CT_CREATED);
        close_table(f);
}

static void batch_lookup(void **state)
{
        fixture_t *f = open_table(16, 0);
        int64_t one = 1;
        pg_key_t keys[100];
        for (uint64_t i = 0; i < 100; i++) {
                keys[i] = key(i);
                if (i % 3)
                        pg_ctable_upsert(f->t, keys[i], 0, 10, true, add, &one);
        }
        int64_t out[200];
        bool found[100];
        pg_ctable_get_batch(f->t, keys, 100, 0, out, found);
        for (int i = 0; i < 100; i++) {
                assert_int_equal(found[i], i % 3 != 0);
                if (found[i])
                        assert_int_equal(out[2 * i], 1);
        }
        close_table(f);
}

static void bad_conf(void **state)
{
        pg_epoch_t *ep = pg_epoch_new();
        char err[128];
        pg_ctable_conf_t c = {"x", 12, 0, 0};
        assert_null(pg_ctable_new(&c, ep, err, sizeof(err)));
        assert_non_null(strstr(err, "multiple of 8"));
        pg_ctable_conf_t c2 = {"x", 16, 1024, 0};
        assert_null(pg_ctable_new(&c2, ep, err, sizeof(err)));
        assert_non_null(strstr(err, "memory cap"));
        pg_epoch_free(ep);
}

/* A long random run, op by op against a plain array model. */
typedef struct model {
        bool present;
        int64_t v, exp;
} model_t;

static void random_against_model(void **state)
{
        fixture_t *f = open_table(16, 0);
        enum { K = 3000 };
        static model_t m[K];
        memset(m, 0, sizeof(m));
        uint64_t x = 12345;
        int64_t now = 0;
        for (int step = 0; step < 400000; step++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                uint64_t k = x % K;
                int op = (int)((x >> 20) % 10);
                if (step % 100 == 0) {
                        now++;
                        pg_ctable_expire(f->t, now, 64);
                }
                bool live = m[k].present && now < m[k].exp;
                int64_t v[2];
                if (op < 5) {
                        int64_t exp = now + 1 + (int64_t)((x >> 32) % 50);
                        int64_t d = (int64_t)(x >> 40) % 7 + 1;
                        pg_ct_result_t r = pg_ctable_upsert(f->t, key(k), now,
                                                            exp, true, add, &d);
                        assert_int_equal(r,
                                         live ? PG_CT_UPDATED : PG_CT_CREATED);
                        if (live) {
                                m[k].v += d;
                                if (exp > m[k].exp)
                                        m[k].exp = exp;
                        } else {
                                m[k] = (model_t){true, d, exp};
                        }
                } else if (op < 7) {
                        assert_int_equal(pg_ctable_remove(f->t, key(k), now),
                                         live);
                        m[k].present = false;
                } else {
                        assert_int_equal(pg_ctable_get(f->t, key(k), now, v),
                                         live);
                        if (live)
                                assert_int_equal(v[0], m[k].v);
                }
        }
        pg_ctable_stats_t st;
        pg_ctable_stats(f->t, &st);
        assert_true(st.resizes > 0);
        close_table(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(insert_update_get),
            cmocka_unit_test(expiry_and_revival),
            cmocka_unit_test(sweep_and_compaction),
            cmocka_unit_test(memory_cap),
            cmocka_unit_test(batch_lookup),
            cmocka_unit_test(bad_conf),
            cmocka_unit_test(random_against_model),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
