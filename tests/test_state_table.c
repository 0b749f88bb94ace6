/*
 * test_state_table.c - the state table: insert, lookup, expiry by event
 * time, extension, removal with backward shift, growth, and the memory cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "state_strlog.h"
#include "state_table.h"
#include "util_mem.h"
#include "window_chain.h"

static pg_key_t key(uint64_t i)
{
        pg_keyb_t kb;
        pg_keyb_init(&kb, 9);
        pg_keyb_i64(&kb, (int64_t)i);
        return pg_keyb_done(&kb);
}

static void insert_lookup_expire(void **state)
{
        pg_budget_t b = {0};
        pg_table_t *t = pg_table_new("t", sizeof(int64_t), &b);
        bool created;
        for (uint64_t i = 0; i < 10000; i++) {
                int64_t *v =
                    pg_table_upsert(t, key(i), 0, 1000 + (int64_t)i, &created);
                assert_non_null(v);
                assert_true(created);
                *v = (int64_t)i * 3;
        }
        assert_int_equal(pg_table_count(t), 10000);
        for (uint64_t i = 0; i < 10000; i++) {
                int64_t *v = pg_table_lookup(t, key(i), 0);
                assert_non_null(v);
                assert_int_equal(*v, (int64_t)i * 3);
        }
        /* live while now < expire_at */
        assert_non_null(pg_table_lookup(t, key(5000), 5999));
        assert_null(pg_table_lookup(t, key(5000), 6000));
        /* extend one entry, then expire up to 8000 */
        int64_t *v = pg_table_upsert(t, key(10), 0, 20000, &created);
        assert_false(created);
        assert_int_equal(*v, 30);
        pg_table_expire(t, 8000, SIZE_MAX);
        /* i = 7000 expires at 8000 exactly: dead */
        assert_int_equal(pg_table_count(t), 2999 + 1);
        assert_non_null(pg_table_lookup(t, key(10), 8000));
        assert_null(pg_table_lookup(t, key(7000), 8000));
        for (uint64_t i = 7001; i < 10000; i++)
                assert_non_null(pg_table_lookup(t, key(i), 8000));
        /* removal keeps every other key reachable (backward shift) */
        for (uint64_t i = 7001; i < 10000; i += 2)
                pg_table_remove(t, key(i));
        for (uint64_t i = 7002; i < 10000; i += 2)
                assert_non_null(pg_table_lookup(t, key(i), 8000));
        for (uint64_t i = 7001; i < 10000; i += 2)
                assert_null(pg_table_lookup(t, key(i), 8000));
        /* a dead entry upserted again comes back zeroed */
        v = pg_table_upsert(t, key(9002), 20000, 30000, &created);
        assert_true(created);
        assert_int_equal(*v, 0);
        pg_table_expire(t, 1 << 30, SIZE_MAX);
        assert_int_equal(pg_table_count(t), 0);
        pg_table_free(t);
        assert_int_equal(b.used, 0);
}

/* A table made with room for n entries holds them in the array it started
 * with (one array: no doubling, so the budget never held two), and grows
 * past them as any table does; the string log likewise. */
static void sized_table_holds_its_entries_without_growing(void **state)
{
        /* 24-byte header + 8-byte value = 32-byte slots; 3/4 load */
        assert_int_equal(pg_table_bytes_for(8, 0), 64 * 32);
        assert_int_equal(pg_table_bytes_for(8, 47), 64 * 32);
        assert_int_equal(pg_table_bytes_for(8, 48), 128 * 32);
        assert_int_equal(pg_table_bytes_for(8, 10000), 16384 * 32);
        pg_budget_t b = {0};
        pg_table_t *t = pg_table_new_sized("t", sizeof(int64_t), &b, 10000);
        size_t bytes = pg_table_bytes(t);
        assert_int_equal(bytes, pg_table_bytes_for(8, 10000));
        assert_int_equal(b.used, bytes);
        bool created;
        for (uint64_t i = 0; i < 10000; i++) {
                int64_t *v = pg_table_upsert(t, key(i), 0, 1000, &created);
                assert_non_null(v);
                *v = (int64_t)i;
        }
        assert_int_equal(pg_table_bytes(t), bytes);
        assert_int_equal(b.peak, bytes);
        for (uint64_t i = 10000; i < 13000; i++)
                assert_non_null(pg_table_upsert(t, key(i), 0, 1000, &created));
        assert_true(pg_table_bytes(t) >= 2 * bytes);
        for (uint64_t i = 0; i < 13000; i++) {
                int64_t *v = pg_table_lookup(t, key(i), 0);
                assert_non_null(v);
                if (i < 10000)
                        assert_int_equal(*v, (int64_t)i);
        }
        pg_table_free(t);
        assert_int_equal(b.used, 0);

        assert_int_equal(pg_strlog_bytes_for(0), 4096);
        assert_int_equal(pg_strlog_bytes_for(32 * 1000), 32768);
        b = (pg_budget_t){0};
        pg_strlog_t *l = pg_strlog_new_sized(&b, 32 * 1000);
        assert_int_equal(b.used, 32768);
        uint64_t first = 0;
        for (int i = 0; i < 1000; i++) {
                char txn[32];
                int n = snprintf(txn, sizeof(txn), "T%016d", i);
                uint64_t pos = pg_strlog_add(l, txn, (size_t)n, 1000);
                assert_true(pos != 0);
                if (!i)
                        first = pos;
        }
        assert_int_equal(b.peak, 32768); /* never doubled */
        assert_string_equal(pg_strlog_get(l, first), "T0000000000000000");
        pg_strlog_free(l);
        assert_int_equal(b.used, 0);
}

static void memory_cap_refuses_and_counts(void **state)
{
        pg_budget_t b = {.cap = 64 * 1024};
        pg_table_t *t = pg_table_new("t", 64, &b);
        bool created;
        uint64_t ok = 0, refused = 0;
        for (uint64_t i = 0; i < 100000; i++) {
                if (pg_table_upsert(t, key(i), 0, 10, &created))
                        ok++;
                else
                        refused++;
        }
        assert_true(ok > 100);
        assert_true(refused > 0);
        assert_true(b.refused > 0);
        assert_true(b.peak <= 2 * b.cap);
        /* everything admitted is still there */
        uint64_t found = 0;
        for (uint64_t i = 0; i < 100000; i++)
                found += pg_table_lookup(t, key(i), 0) != NULL;
        assert_int_equal(found, ok);
        pg_table_free(t);
}

/* Creating entries sweeps the table: a stream of short-lived keys, with no
 * expire call at all, keeps the table at the size its live keys need. */
static void creation_sweeps_dead_entries(void **state)
{
        pg_budget_t b = {0};
        pg_table_t *t = pg_table_new("t", sizeof(int64_t), &b);
        bool created;
        size_t most = 0;
        for (uint64_t i = 0; i < 1000000; i++) {
                int64_t now = (int64_t)i;
                assert_non_null(
                    pg_table_upsert(t, key(i), now, now + 1000, &created));
                if (pg_table_count(t) > most)
                        most = pg_table_count(t);
                /* the live ones are all there */
                if (i % 99991 == 0)
                        for (uint64_t j = i > 999 ? i - 999 : 0; j <= i; j++)
                                assert_non_null(
                                    pg_table_lookup(t, key(j), now));
        }
        /* 1000 live at any time; a pass takes cap / 4 creations */
        assert_true(most < 4000);
        assert_true(pg_table_bytes(t) <= 8192 * (16 + 8 + 8));
        pg_table_expire(t, 1 << 30, SIZE_MAX);
        assert_int_equal(pg_table_count(t), 0);
        pg_table_free(t);
        assert_int_equal(b.used, 0);
}

/* The string log: strings come back as written across wraps (pads) and
 * growth, go at their expiry in order, renew keeps one alive, and the cap
 * refuses without losing what is there. */
static void strlog_keeps_drops_and_renews(void **state)
{
        pg_budget_t b = {0};
        pg_strlog_t *l = pg_strlog_new(&b);
        enum { N = 20000 };
        static uint64_t pos[N];
        char s[80];
        for (int i = 0; i < N; i++) {
                int n = snprintf(
                    s, sizeof(s), "txn-%d-%.*s", i, i % 50,
                    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz");
                pos[i] = pg_strlog_add(l, s, (size_t)n, 1000 + i);
                assert_true(pos[i] != 0);
                /* keep about 300 live: the ring wraps many times */
                pg_strlog_expire(l, i - 300 + 1000, SIZE_MAX);
                if (i >= 300) { /* kept while now < expire_at */
                        assert_null(pg_strlog_get(l, pos[i - 300]));
                        snprintf(s, sizeof(s), "txn-%d-", i - 299);
                        const char *g = pg_strlog_get(l, pos[i - 299]);
                        assert_non_null(g);
                        assert_memory_equal(g, s, strlen(s));
                }
        }
        assert_true(pg_strlog_count(l) <= 300);
        assert_true(pg_strlog_bytes(l) <= 32768);
        /* renew: the same position while it is kept long enough, else a
         * new one that outlives the old */
        uint64_t p = pos[N - 1];
        assert_true(pg_strlog_renew(l, p, 1000 + N - 1) == p);
        uint64_t q = pg_strlog_renew(l, p, 1 << 30);
        assert_true(q != p && q != 0);
        pg_strlog_expire(l, 1 << 29, SIZE_MAX);
        assert_null(pg_strlog_get(l, p));
        snprintf(s, sizeof(s), "txn-%d-", N - 1);
        assert_memory_equal(pg_strlog_get(l, q), s, strlen(s));
        assert_int_equal(pg_strlog_renew(l, p, 1 << 30), 0); /* gone */
        assert_null(pg_strlog_get(l, 0));
        pg_strlog_free(l);
        assert_int_equal(b.used, 0);

        /* at the cap: refused, counted, the rest intact */
        pg_budget_t c = {.cap = 8192};
        l = pg_strlog_new(&c);
        uint64_t first = pg_strlog_add(l, "first", 5, 1 << 30), last = 0;
        int ok = 0;
        for (int i = 0; i < 1000; i++) {
                uint64_t r = pg_strlog_add(l, "0123456789abcdef", 16, 1 << 30);
                if (!r)
                        break;
                last = r;
                ok++;
        }
        assert_true(ok > 100 && ok < 1000);
        assert_true(c.refused > 0);
        assert_string_equal(pg_strlog_get(l, first), "first");
        assert_string_equal(pg_strlog_get(l, last), "0123456789abcdef");
        pg_strlog_free(l);
}

typedef struct member {
        pg_chain_hdr_t h;
        int id;
} member_t;

static void chain_walk_newest_first_and_expiry(void **state)
{
        pg_budget_t b = {0};
        pg_chain_t *c = pg_chain_new("c", sizeof(member_t), 100, &b);
        for (int i = 0; i < 1000; i++) {
                member_t *m = pg_chain_append(c, key((uint64_t)(i % 3)), i, i);
                assert_non_null(m);
                m->id = i;
                char str[16];
                int n = snprintf(str, sizeof(str), "m%d", i);
                assert_true(pg_chain_set_str(c, m, str, (size_t)n));
        }
        pg_chain_iter_t it;
        pg_chain_walk(c, key(1), 999, &it);
        member_t *m = pg_chain_next(&it);
        assert_int_equal(m->id, 997);
        m = pg_chain_next(&it);
        assert_int_equal(m->id, 994);
        pg_chain_expire(c, 999, SIZE_MAX);
        /* members older than 999 - 100 are gone: the walk ends there */
        int n = 0, last = -1;
        pg_chain_walk(c, key(1), 999, &it);
        while ((m = pg_chain_next(&it))) {
                n++;
                last = m->id;
                /* a member's string is there as long as it is */
                char str[16];
                snprintf(str, sizeof(str), "m%d", m->id);
                assert_string_equal(pg_chain_str(c, m), str);
        }
        assert_int_equal(last, 901); /* 999 - 901 <= 100 < 999 - 898 */
        assert_int_equal(n, 33);
        pg_chain_free(c);
}

/* From 200,000 on, which a member carries, mixed (every order of kinds
 * comes up at a member's expiry): 0 a string of the shared log, 1 one of
 * its own, 2 none. */
static int mixed_kind(int id)
{
        return (int)(((uint32_t)id * 2654435761u) >> 16) % 3;
}

/* What a member of the runs below carries: ids under 100,000 a string of
 * their own; then a third none (multiples of 3); from 200,000 on, as
 * mixed_kind says. */
static void expected_str(int id, char *str, size_t size)
{
        bool has = id < 100000   ? true
                   : id < 200000 ? id % 3 != 0
                                 : mixed_kind(id) != 2;
        if (has)
                snprintf(str, size, "m%d", id);
        else
                str[0] = 0;
}

/* Every member of c walked at now has the string it was given; returns
 * how many there are. */
static int check_chain_strings(pg_chain_t *c, int64_t now)
{
        int n = 0;
        for (uint64_t k = 0; k < 7; k++) {
                pg_chain_iter_t it;
                pg_chain_walk(c, key(k), now, &it);
                member_t *m;
                while ((m = pg_chain_next(&it))) {
                        n++;
                        char str[16];
                        expected_str(m->id, str, sizeof(str));
                        assert_string_equal(pg_chain_str(c, m), str);
                }
        }
        return n;
}

/* Long runs of members expired as they go: all with a string of their
 * own, then a third without, then some referring to a shared log. The
 * live members keep their strings (checked right after expiries, when the
 * oldest kept member is the one whose string marks where the dropping
 * stopped), and the chain gives its dropped strings' memory back (its log
 * stays small); the shared log is the caller's. */
static void chain_expiry_gives_strings_back(void **state)
{
        pg_budget_t b = {0}, sb = {0};
        pg_chain_t *c = pg_chain_new("c", sizeof(member_t), 100, &b);
        pg_strlog_t *shared = pg_strlog_new(&sb);
        pg_chain_share_strings(c, shared);
        for (int phase = 0; phase < 3; phase++) {
                for (int i = phase * 100000; i < (phase + 1) * 100000; i++) {
                        member_t *m =
                            pg_chain_append(c, key((uint64_t)(i % 7)), i, i);
                        assert_non_null(m);
                        m->id = i;
                        char str[16];
                        expected_str(i, str, sizeof(str));
                        size_t n = strlen(str);
                        if (phase == 2 && mixed_kind(i) == 0)
                                pg_chain_ref_str(
                                    c, m,
                                    pg_strlog_add(shared, str, n, INT64_MAX));
                        else if (n)
                                assert_true(pg_chain_set_str(c, m, str, n));
                        if (i % 10 == 0)
                                pg_chain_expire(c, i, SIZE_MAX);
                        if (i % 1000 == 0 && i)
                                assert_true(check_chain_strings(c, i) >= 90);
                }
                /* about 110 members live, 16 bytes of string each at
                 * most: without the strings going, 100,000 of them would
                 * be 1.6 MB */
                assert_true(pg_chain_bytes(c) <= 64 * 1024);
        }
        pg_chain_free(c);
        assert_int_equal(b.used, 0);
        pg_strlog_free(shared);
}

/* pg_big_calloc: zeroed memory at every size, small (calloc) or mapped on
 * its own (from PG_BIG_MIN), all of it writable, given back by
 * pg_big_free with the same size. */
static void big_alloc_zeroed(void **state)
{
        const size_t sizes[] = {
            1,          4096,           PG_BIG_MIN - 1,
            PG_BIG_MIN, PG_BIG_MIN + 1, 3 * PG_BIG_MIN + 12345};
        for (int round = 0; round < 3; round++)
                for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                        size_t n = sizes[i];
                        unsigned char *p = pg_big_calloc(n);
                        assert_non_null(p);
                        for (size_t k = 0; k < n; k += 4093)
                                assert_int_equal(p[k], 0);
                        assert_int_equal(p[n - 1], 0);
                        memset(p, 0x5a, n); /* all of it is ours */
                        pg_big_free(p, n);
                }
        pg_big_free(NULL, PG_BIG_MIN);
}

/* Random operations against a model, on a table that doubles many times
 * while they run: every result (found or not, the value, created or not,
 * the count once swept) is the model's, whatever is being moved from the
 * old array at the time. With cap set, the budget refuses growth part of
 * the way and the model leaves refused keys out. */
typedef struct mentry {
        int64_t expire_at; /* 0: absent */
        uint64_t value;
} mentry_t;

static uint64_t rng(uint64_t *x)
{
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        return *x;
}

static void model_run(size_t cap_bytes, int64_t horizon, uint64_t seed)
{
        enum { KEYS = 200000, OPS = 1500000 };
        static mentry_t m[KEYS];
        memset(m, 0, sizeof(m));
        pg_budget_t b = {.cap = cap_bytes};
        pg_table_t *t = pg_table_new("t", sizeof(uint64_t), &b);
        uint64_t x = seed;
        int64_t now = 0;
        size_t refused = 0, uncharged = 0;
        for (uint64_t op = 0; op < OPS; op++) {
                if (rng(&x) % 4 == 0)
                        now++;
                /* the key universe widens over the run: growth throughout */
                uint64_t span = 1000 + op * (KEYS - 1000) / OPS;
                uint64_t i = rng(&x) % span;
                mentry_t *e = &m[i];
                bool live = e->expire_at > now;
                uint64_t r = rng(&x) % 100;
                if (r < 50) {
                        int64_t exp =
                            now + 1 + (int64_t)(rng(&x) % (uint64_t)horizon);
                        bool created;
                        uint64_t *v =
                            pg_table_upsert(t, key(i), now, exp, &created);
                        if (!v) {
                                assert_false(live);
                                assert_true(cap_bytes > 0);
                                refused++;
                                continue;
                        }
                        assert_int_equal(created, !live);
                        if (live) {
                                assert_int_equal(*v, e->value);
                                if (exp > e->expire_at)
                                        e->expire_at = exp;
                        } else {
                                assert_int_equal(*v, 0);
                                e->expire_at = exp;
                        }
                        assert_int_equal(pg_table_expiry(v), e->expire_at);
                        *v = e->value = rng(&x) | 1;
                } else if (r < 90) {
                        uint64_t *v = pg_table_lookup(t, key(i), now);
                        if (live) {
                                assert_non_null(v);
                                assert_int_equal(*v, e->value);
                        } else {
                                assert_null(v);
                        }
                } else if (r < 97) {
                        pg_table_remove(t, key(i));
                        e->expire_at = 0;
                } else if (r < 99) {
                        pg_table_expire(t, now, rng(&x) % 64);
                } else {
                        pg_table_prefetch(t, key(i));
                }
                /* the count holds every live entry (and dead ones not yet
                 * swept or left behind) */
                if (op % 100000 == 0) {
                        size_t n = 0;
                        for (uint64_t j = 0; j < KEYS; j++)
                                n += m[j].expire_at > now;
                        assert_true(pg_table_count(t) >= n);
                }
                /* both arrays are charged while a move is under way */
                if (pg_table_bytes(t) != b.used)
                        uncharged++;
        }
        assert_int_equal(uncharged, 0);
        /* everything live is there; once swept, nothing else is */
        size_t want = 0;
        for (uint64_t i = 0; i < KEYS; i++) {
                uint64_t *v = pg_table_lookup(t, key(i), now);
                if (m[i].expire_at > now) {
                        want++;
                        assert_non_null(v);
                        assert_int_equal(*v, m[i].value);
                } else {
                        assert_null(v);
                }
        }
        pg_table_expire(t, now, SIZE_MAX);
        assert_int_equal(pg_table_count(t), want);
        if (cap_bytes)
                assert_true(refused > 0);
        assert_true(b.peak <= (cap_bytes ? cap_bytes : SIZE_MAX));
        pg_table_free(t);
        assert_int_equal(b.used, 0);
}

static void growth_moves_incrementally_like_the_model(void **state)
{
        (void)state;
        /* short lives: many dead entries moved or left behind; long ones:
         * the table reaches 256k slots (8 MiB; arrays from 2 MiB on are
         * mapped on their own) */
        model_run(0, 4000, 88172645463325252ULL);
        model_run(0, 400000, 12345);
        /* the budget refuses doublings part of the way: of small arrays,
         * and of big ones (the doubling to 4 MiB is taken, the one to 8
         * refused) */
        model_run((size_t)320 << 10, 4000, 977);
        model_run((size_t)8 << 20, 400000, 4242);
}

/* A ring doubled keeps every live unit at its position modulo the new
 * size: small rings (copied) and big ones (grown in place by mremap, the
 * run that belongs higher up moved), whichever of the two runs that is. */
static void ring_double_keeps_positions(void **state)
{
        (void)state;
        const struct {
                size_t cap, unit;
        } shapes[] = {{64, 8}, {4096, 1}, {1 << 15, 80}, {1 << 21, 1}};
        for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
                size_t cap = shapes[si].cap, unit = shapes[si].unit;
                /* the live range: whole and wrapped at an odd multiple of
                 * cap (the later run moves), at an even one (the earlier
                 * run moves), not wrapped, empty */
                const uint64_t from[] = {5 * cap - cap / 3, 6 * cap - cap / 3,
                                         7 * cap + 1, 3 * cap, 9 * cap};
                const uint64_t len[] = {cap, cap - 7, cap / 2, cap, 0};
                for (size_t ri = 0; ri < 5; ri++) {
                        uint64_t a = from[ri], z = a + len[ri];
                        unsigned char *r = pg_big_calloc(cap * unit);
                        for (uint64_t p = a; p < z; p++)
                                memset(r + (p & (cap - 1)) * unit,
                                       (int)(p % 251) + 1, unit);
                        r = pg_ring_double(r, cap, unit, a, z);
                        for (uint64_t p = a; p < z; p++) {
                                const unsigned char *u =
                                    r + (p & (2 * cap - 1)) * unit;
                                for (size_t k = 0; k < unit; k++)
                                        if (u[k] !=
                                            (unsigned char)(p % 251 + 1))
                                                fail_msg("cap %zu unit %zu "
                                                         "range %zu: unit %llu",
                                                         cap, unit, ri,
                                                         (unsigned long long)p);
                        }
                        pg_big_free(r, 2 * cap * unit);
                }
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(insert_lookup_expire),
            cmocka_unit_test(big_alloc_zeroed),
            cmocka_unit_test(ring_double_keeps_positions),
            cmocka_unit_test(memory_cap_refuses_and_counts),
            cmocka_unit_test(sized_table_holds_its_entries_without_growing),
            cmocka_unit_test(creation_sweeps_dead_entries),
            cmocka_unit_test(growth_moves_incrementally_like_the_model),
            cmocka_unit_test(strlog_keeps_drops_and_renews),
            cmocka_unit_test(chain_walk_newest_first_and_expiry),
            cmocka_unit_test(chain_expiry_gives_strings_back),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
