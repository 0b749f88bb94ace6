/*
 * test_state_ctable_concurrent.c - the concurrent state table under many
 * threads, checked against sequential models (run under TSan in CI).
 *
 * owned_keys_vs_model: writers own disjoint key sets and check every
 * result against their own sequential model while the others write (so
 * resizes, sweeps and tombstones happen under them); readers meanwhile
 * read random keys and check that no value is ever torn; at the end the
 * table equals the union of the models.
 *
 * shared_counters_linearizable: several threads increment the same few
 * keys (same-key write contention) and read them, while filler threads
 * insert and remove other keys to force resizes. Every ROUND_OPS
 * operations a thread moves on to a fresh set of keys, so keys are also
 * created by several threads at once while resizes start and run (two
 * creators once ended up with the key in two arrays, each keeping its
 * own count). Each operation records
 * its invocation and response on a global ticket counter. A history of a
 * counter is linearizable iff the increments returned exactly 1..n, no
 * increment returned less than one that had completed before it began,
 * and every read saw at least the increments completed before it began
 * and at most those begun before it ended: that is what is checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_ctable.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SCALE 8 /* sanitizers are slow: fewer operations, same shape */
#else
#define SCALE 1
#endif

static pg_key_t key(uint64_t i)
{
        pg_keyb_t kb;
        pg_keyb_init(&kb, 7);
        pg_keyb_i64(&kb, (int64_t)i);
        return pg_keyb_done(&kb);
}

static uint64_t rnd(uint64_t *x)
{
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        return *x;
}

/* Values carry a checksum pattern: v[1] = 3 v[0] + 1, v[2] = ~v[0]. */
typedef struct val {
        int64_t a, b, c;
        int64_t pad;
} val_t;

static bool add_checked(void *value, bool created, int64_t *expire_at,
                        void *arg)
{
        val_t *v = value;
        v->a += *(int64_t *)arg;
        v->b = 3 * v->a + 1;
        v->c = ~v->a;
        return true;
}

static bool consistent(const val_t *v)
{
        return v->b == 3 * v->a + 1 && v->c == ~v->a;
}

/* ---- owned keys ---- */

enum { WRITERS = 4, READERS = 2, KEYS = 40000 };

typedef struct shared {
        pg_epoch_t *ep;
        pg_ctable_t *t;
        _Atomic int64_t now[WRITERS]; /* each writer's clock */
        _Atomic int writers_done;
        _Atomic uint64_t torn, reads, hits;
} shared_t;

typedef struct model {
        bool present;
        int64_t v, exp;
} model_t;

typedef struct wctx {
        shared_t *sh;
        int id;
        model_t *m; /* indexed by key / WRITERS */
        uint64_t mismatches;
} wctx_t;

static void *writer(void *p)
{
        wctx_t *w = p;
        shared_t *sh = w->sh;
        pg_epoch_handle_t h;
        if (!pg_epoch_register(sh->ep, &h))
                abort();
        uint64_t x = 0x1234567ULL * (uint64_t)(w->id + 1);
        int64_t now = 0;
        int ops = 300000 / SCALE;
        pg_epoch_enter(&h);
        for (int i = 0; i < ops; i++) {
                if (i % 256 == 0) {
                        /* a new section now and then, as a batch would */
                        pg_epoch_exit(&h);
                        pg_epoch_enter(&h);
                        now++;
                        atomic_store(&sh->now[w->id], now);
                        /* the table clock may not pass any writer's time */
                        int64_t min = now;
                        for (int j = 0; j < WRITERS; j++) {
                                int64_t o = atomic_load(&sh->now[j]);
                                if (o < min)
                                        min = o;
                        }
                        pg_ctable_expire(sh->t, min, 128);
                }
                uint64_t r = rnd(&x);
                uint64_t slot = r % (KEYS / WRITERS);
                uint64_t k = slot * WRITERS + (uint64_t)w->id;
                model_t *m = &w->m[slot];
                bool live = m->present && now < m->exp;
                int op = (int)((r >> 24) % 10);
                if (op < 5) {
                        int64_t exp = now + 1 + (int64_t)((r >> 32) % 40);
                        int64_t d = (int64_t)((r >> 44) % 5) + 1;
                        pg_ct_result_t res = pg_ctable_upsert(
                            sh->t, key(k), now, exp, true, add_checked, &d);
                        if (res != (live ? PG_CT_UPDATED : PG_CT_CREATED)) {
                                w->mismatches++;
                                fprintf(stderr,
                                        "upsert k=%llu now=%lld res=%d live=%d "
                                        "present=%d exp=%lld\n",
                                        (unsigned long long)k, (long long)now,
                                        res, live, m->present,
                                        (long long)m->exp);
                        }
                        if (live) {
                                m->v += d;
                                if (exp > m->exp)
                                        m->exp = exp;
                        } else {
                                *m = (model_t){true, d, exp};
                        }
                } else if (op < 7) {
                        if (pg_ctable_remove(sh->t, key(k), now) != live) {
                                w->mismatches++;
                                fprintf(
                                    stderr,
                                    "remove k=%llu now=%lld live=%d exp=%lld\n",
                                    (unsigned long long)k, (long long)now, live,
                                    (long long)m->exp);
                        }
                        m->present = false;
                } else {
                        val_t v;
                        bool got = pg_ctable_get(sh->t, key(k), now, &v);
                        if (got != live || (got && v.a != m->v) ||
                            (got && !consistent(&v))) {
                                w->mismatches++;
                                fprintf(stderr,
                                        "get k=%llu now=%lld got=%d live=%d "
                                        "va=%lld mv=%lld exp=%lld\n",
                                        (unsigned long long)k, (long long)now,
                                        got, live, (long long)v.a,
                                        (long long)m->v, (long long)m->exp);
                        }
                }
        }
        pg_epoch_exit(&h);
        pg_epoch_unregister(&h);
        atomic_fetch_add(&sh->writers_done, 1);
        return NULL;
}

static void *reader(void *p)
{
        shared_t *sh = p;
        pg_epoch_handle_t h;
        if (!pg_epoch_register(sh->ep, &h))
                abort();
        uint64_t x = 987654321;
        while (atomic_load(&sh->writers_done) < WRITERS) {
                pg_epoch_enter(&h);
                for (int i = 0; i < 512; i++) {
                        val_t v;
                        /* now 0: every entry ever inserted and not removed
                         * counts as live, the widest view */
                        if (pg_ctable_get(sh->t, key(rnd(&x) % KEYS), 0, &v)) {
                                atomic_fetch_add_explicit(&sh->hits, 1,
                                                          memory_order_relaxed);
                                if (!consistent(&v))
                                        atomic_fetch_add(&sh->torn, 1);
                        }
                        atomic_fetch_add_explicit(&sh->reads, 1,
                                                  memory_order_relaxed);
                }
                pg_epoch_exit(&h);
        }
        pg_epoch_unregister(&h);
        return NULL;
}

static void owned_keys_vs_model(void **state)
{
        shared_t *sh = calloc(1, sizeof(*sh));
        sh->ep = pg_epoch_new();
        char err[128];
        pg_ctable_conf_t c = {"owned", sizeof(val_t), 0, 0};
        sh->t = pg_ctable_new(&c, sh->ep, err, sizeof(err));
        assert_non_null(sh->t);
        pthread_t tw[WRITERS], tr[READERS];
        wctx_t w[WRITERS];
        for (int i = 0; i < WRITERS; i++) {
                w[i] =
                    (wctx_t){sh, i, calloc(KEYS / WRITERS, sizeof(model_t)), 0};
                pthread_create(&tw[i], NULL, writer, &w[i]);
        }
        for (int i = 0; i < READERS; i++)
                pthread_create(&tr[i], NULL, reader, sh);
        for (int i = 0; i < WRITERS; i++)
                pthread_join(tw[i], NULL);
        for (int i = 0; i < READERS; i++)
                pthread_join(tr[i], NULL);

        pg_ctable_stats_t st;
        pg_ctable_stats(sh->t, &st);
        print_message("owned: %zu live, %zu slots, %llu resizes, %llu swept, "
                      "%llu reads (%llu hits), %llu torn\n",
                      st.live, st.cap, (unsigned long long)st.resizes,
                      (unsigned long long)st.swept,
                      (unsigned long long)atomic_load(&sh->reads),
                      (unsigned long long)atomic_load(&sh->hits),
                      (unsigned long long)atomic_load(&sh->torn));
        for (int i = 0; i < WRITERS; i++)
                assert_int_equal(w[i].mismatches, 0);
        assert_int_equal(atomic_load(&sh->torn), 0);
        assert_true(st.resizes > 0);
        assert_true(st.live <= KEYS);

        /* the final contents equal the union of the models */
        pg_epoch_handle_t h;
        assert_true(pg_epoch_register(sh->ep, &h));
        pg_epoch_enter(&h);
        for (int i = 0; i < WRITERS; i++) {
                int64_t now = atomic_load(&sh->now[i]);
                for (uint64_t s = 0; s < KEYS / WRITERS; s++) {
                        model_t *m = &w[i].m[s];
                        bool live = m->present && now < m->exp;
                        val_t v;
                        bool got = pg_ctable_get(
                            sh->t, key(s * WRITERS + (uint64_t)i), now, &v);
                        assert_int_equal(got, live);
                        if (got)
                                assert_int_equal(v.a, m->v);
                }
                free(w[i].m);
        }
        pg_epoch_exit(&h);
        pg_epoch_unregister(&h);
        pg_epoch_reclaim(sh->ep);
        assert_int_equal(pg_epoch_pending(sh->ep), 0);
        pg_ctable_free(sh->t);
        pg_epoch_free(sh->ep);
        free(sh);
}

/* ---- shared counters ---- */

enum { COUNTERS = 4, INCR_THREADS = 4, FILLERS = 2, ROUND_OPS = 100 };

typedef struct hop {
        uint64_t inv, resp;
        int64_t val;
        uint32_t counter; /* round * COUNTERS + counter */
        uint8_t is_read;
} hop_t;

typedef struct cshared {
        pg_epoch_t *ep;
        pg_ctable_t *t;
        _Atomic uint64_t ticket;
        _Atomic int incr_done;
} cshared_t;

typedef struct ictx {
        cshared_t *sh;
        int id;
        hop_t *ops;
        size_t nops;
} ictx_t;

typedef struct incr_arg {
        int64_t result; /* value installed by the last call */
} incr_arg_t;

static bool incr(void *value, bool created, int64_t *expire_at, void *arg)
{
        val_t *v = value;
        v->a++;
        v->b = 3 * v->a + 1;
        v->c = ~v->a;
        ((incr_arg_t *)arg)->result = v->a;
        return true;
}

static void *incrementer(void *p)
{
        ictx_t *c = p;
        pg_epoch_handle_t h;
        if (!pg_epoch_register(c->sh->ep, &h))
                abort();
        uint64_t x = 55555ULL + (uint64_t)c->id;
        size_t n = 40000 / SCALE;
        c->ops = calloc(n, sizeof(hop_t));
        pg_epoch_enter(&h);
        for (size_t i = 0; i < n; i++) {
                uint64_t r = rnd(&x);
                hop_t *o = &c->ops[c->nops++];
                o->inv = atomic_fetch_add(&c->sh->ticket, 1);
                /* the round from the shared ticket: all threads move to
                 * the new keys together, so they create them at once */
                o->counter = (uint32_t)((o->inv / (2 * ROUND_OPS)) * COUNTERS +
                                        r % COUNTERS);
                o->is_read = (r >> 30) % 4 == 0;
                pg_key_t k = key(1000000 + o->counter);
                if (o->is_read) {
                        val_t v = {0};
                        o->val = pg_ctable_get(c->sh->t, k, 0, &v) ? v.a : 0;
                        if (!consistent(&v) && v.a)
                                o->val = -1;
                } else {
                        incr_arg_t a = {0};
                        pg_ctable_upsert(c->sh->t, k, 0, INT64_MAX, true, incr,
                                         &a);
                        o->val = a.result;
                }
                o->resp = atomic_fetch_add(&c->sh->ticket, 1);
                if (i % 128 == 0) {
                        pg_epoch_exit(&h);
                        pg_epoch_enter(&h);
                }
        }
        pg_epoch_exit(&h);
        pg_epoch_unregister(&h);
        atomic_fetch_add(&c->sh->incr_done, 1);
        return NULL;
}

static void *filler(void *p)
{
        cshared_t *sh = p;
        pg_epoch_handle_t h;
        if (!pg_epoch_register(sh->ep, &h))
                abort();
        uint64_t x = 777;
        uint64_t base = (uint64_t)(uintptr_t)&h % 1000 * 100000;
        pg_epoch_enter(&h);
        for (uint64_t i = 0; atomic_load(&sh->incr_done) < INCR_THREADS; i++) {
                int64_t d = 1;
                pg_ctable_upsert(sh->t, key(2000000 + base + i), 0, INT64_MAX,
                                 true, add_checked, &d);
                if (i >= 2000)
                        pg_ctable_remove(
                            sh->t,
                            key(2000000 + base + i - 2000 + rnd(&x) % 1000), 0);
                if (i % 128 == 0) {
                        pg_epoch_exit(&h);
                        pg_epoch_enter(&h);
                        pg_ctable_expire(sh->t, 0, 256);
                }
        }
        pg_epoch_exit(&h);
        pg_epoch_unregister(&h);
        return NULL;
}

static int by_val(const void *a, const void *b)
{
        const hop_t *x = *(hop_t *const *)a, *y = *(hop_t *const *)b;
        return x->val < y->val ? -1 : x->val > y->val;
}

static int by_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/* How many of the sorted v[0..n) are below x. */
static size_t count_below(const uint64_t *v, size_t n, uint64_t x)
{
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (v[mid] < x)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static void check_counter(ictx_t *c, int n_threads, uint32_t counter)
{
        size_t n = 0, nr = 0;
        for (int i = 0; i < n_threads; i++)
                for (size_t j = 0; j < c[i].nops; j++)
                        if (c[i].ops[j].counter == counter)
                                c[i].ops[j].is_read ? nr++ : n++;
        hop_t **inc = calloc(n + 1, sizeof(*inc));
        hop_t **rd = calloc(nr + 1, sizeof(*rd));
        size_t a = 0, b = 0;
        for (int i = 0; i < n_threads; i++)
                for (size_t j = 0; j < c[i].nops; j++) {
                        hop_t *o = &c[i].ops[j];
                        if (o->counter != counter)
                                continue;
                        if (o->is_read)
                                rd[b++] = o;
                        else
                                inc[a++] = o;
                }
        qsort(inc, n, sizeof(*inc), by_val);
        /* the increments returned exactly 1..n: none lost, none doubled */
        for (size_t i = 0; i < n; i++)
                assert_int_equal(inc[i]->val, (int64_t)i + 1);
        /* real-time order: an increment that completed before another
         * began returned less (suffix minimum of responses) */
        uint64_t min_resp = UINT64_MAX;
        for (size_t i = n; i-- > 0;) {
                assert_true(min_resp > inc[i]->inv);
                if (inc[i]->resp < min_resp)
                        min_resp = inc[i]->resp;
        }
        /* reads: completed-before <= value <= begun-before */
        uint64_t *resp = calloc(n + 1, sizeof(*resp));
        uint64_t *inv = calloc(n + 1, sizeof(*inv));
        for (size_t i = 0; i < n; i++) {
                resp[i] = inc[i]->resp;
                inv[i] = inc[i]->inv;
        }
        qsort(resp, n, sizeof(*resp), by_u64);
        qsort(inv, n, sizeof(*inv), by_u64);
        for (size_t r = 0; r < nr; r++) {
                assert_true(rd[r]->val >= 0); /* never torn */
                size_t lo = count_below(resp, n, rd[r]->inv);
                size_t hi = count_below(inv, n, rd[r]->resp);
                assert_true((size_t)rd[r]->val >= lo);
                assert_true((size_t)rd[r]->val <= hi);
        }
        free(resp);
        free(inv);
        free(inc);
        free(rd);
}

static void shared_counters_linearizable(void **state)
{
        cshared_t *sh = calloc(1, sizeof(*sh));
        sh->ep = pg_epoch_new();
        char err[128];
        pg_ctable_conf_t c = {"counters", sizeof(val_t), 0, 0};
        sh->t = pg_ctable_new(&c, sh->ep, err, sizeof(err));
        assert_non_null(sh->t);
        pthread_t ti[INCR_THREADS], tf[FILLERS];
        ictx_t ic[INCR_THREADS];
        for (int i = 0; i < FILLERS; i++)
                pthread_create(&tf[i], NULL, filler, sh);
        for (int i = 0; i < INCR_THREADS; i++) {
                ic[i] = (ictx_t){sh, i, NULL, 0};
                pthread_create(&ti[i], NULL, incrementer, &ic[i]);
        }
        for (int i = 0; i < INCR_THREADS; i++)
                pthread_join(ti[i], NULL);
        for (int i = 0; i < FILLERS; i++)
                pthread_join(tf[i], NULL);
        pg_ctable_stats_t st;
        pg_ctable_stats(sh->t, &st);
        print_message("counters: %llu resizes during the run, %zu live\n",
                      (unsigned long long)st.resizes, st.live);
        assert_true(st.resizes > 0);
        uint32_t keys =
            (uint32_t)((atomic_load(&sh->ticket) / (2 * ROUND_OPS) + 1) *
                       COUNTERS);
        for (uint32_t k = 0; k < keys; k++)
                check_counter(ic, INCR_THREADS, k);
        for (int i = 0; i < INCR_THREADS; i++)
                free(ic[i].ops);
        pg_epoch_reclaim(sh->ep);
        pg_ctable_free(sh->t);
        pg_epoch_free(sh->ep);
        free(sh);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(owned_keys_vs_model),
            cmocka_unit_test(shared_counters_linearizable),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
