// bench_tables.cc - posguard's state table beside Concurrency Kit's ck_ht
// and liburcu's cds_lfht on the engine's workload, with Google Benchmark.
//
// The workload of one iteration, for N distinct 128-bit keys with a 16-byte
// value each (the engine's tables hold keys like these):
//   insert all N, look all N up (hits), then remove all N in insertion order
// (the engine's tables expire by event time in that order: pg_table_expire
// with a time past every entry; ck_ht / cds_lfht remove key by key).
// Reported: items_per_second over the 3N operations.
//
// Single thread (BM_<table>/N): posguard's sequential table (the engine's
// today; _sized: made with room for N, as cds_lfht is), posguard's
// concurrent table (state_ctable.c), ck_ht, cds_lfht.
// Thread axis (BM_mt_<table>/N/T, T = 1, 2, 4, ... up to the cores): the
// same workload split over T threads on one shared table, each thread on
// its own N/T keys (the engine's partitions sharing a table). ck_ht is
// single-writer (SPMC): its thread axis is one writer doing the inserts and
// removals while T-1 readers do the lookups, which is the most it allows.
//
// Run: bench/tables.sh (writes bench/results/tables-<host>-<date>.json).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include <ck_ht.h>
#define _LGPL_SOURCE
#include <urcu.h>
#include <urcu/rculfhash.h>

#include "state_ctable.h"
#include "state_table.h"
#include "util_mem.h"
}

#include <atomic>
#include <thread>

namespace
{

struct Key {
        uint64_t lo, hi;
};

std::vector<Key> make_keys(size_t n)
{
        std::vector<Key> k(n);
        uint64_t x = 0x9e3779b97f4a7c15ULL;
        for (size_t i = 0; i < n; i++) {
                // splitmix64
                for (int j = 0; j < 2; j++) {
                        x += 0x9e3779b97f4a7c15ULL;
                        uint64_t z = x;
                        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
                        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
                        z ^= z >> 31;
                        (j ? k[i].hi : k[i].lo) = z;
                }
        }
        return k;
}

void report(benchmark::State &state, size_t n)
{
        state.SetItemsProcessed(int64_t(state.iterations()) * 3 * int64_t(n));
}

// ---------------------------------------------------------------- ours

// sized: made with room for all N (pg_table_new_sized, as the engine's
// tables are with expect_records), as cds_lfht is below; otherwise grown
// from its smallest size, as ck_ht is
void posguard_table(benchmark::State &state, bool sized)
{
        size_t n = size_t(state.range(0));
        std::vector<Key> keys = make_keys(n);
        for (auto _ : state) {
                pg_budget_t b;
                std::memset(&b, 0, sizeof(b));
                b.cap = SIZE_MAX;
                pg_table_t *t =
                    pg_table_new_sized("bench", 16, &b, sized ? n : 0);
                for (size_t i = 0; i < n; i++) {
                        bool created;
                        pg_key_t k = {keys[i].lo, keys[i].hi};
                        void *v =
                            pg_table_upsert(t, k, 0, int64_t(i) + 1, &created);
                        benchmark::DoNotOptimize(v);
                }
                for (size_t i = 0; i < n; i++) {
                        pg_key_t k = {keys[i].lo, keys[i].hi};
                        benchmark::DoNotOptimize(pg_table_lookup(t, k, 0));
                }
                pg_table_expire(t, int64_t(n) + 1, SIZE_MAX);
                if (pg_table_count(t) != 0)
                        state.SkipWithError("expiry left entries");
                pg_table_free(t);
        }
        report(state, n);
}

void BM_posguard_table(benchmark::State &state)
{
        posguard_table(state, false);
}

void BM_posguard_table_sized(benchmark::State &state)
{
        posguard_table(state, true);
}

// ---------------------------------------------------------------- ck_ht

void *ck_alloc(size_t n)
{
        return std::malloc(n);
}
void *ck_realloc(void *p, size_t, size_t n, bool)
{
        return std::realloc(p, n);
}
void ck_free(void *p, size_t, bool)
{
        std::free(p);
}
struct ck_malloc ck_mem = {ck_alloc, ck_realloc, ck_free};

void ck_hash(ck_ht_hash_t *h, const void *key, size_t, uint64_t)
{
        // the keys are already uniform 128-bit hashes
        const Key *k = static_cast<const Key *>(key);
        h->value = k->lo ^ k->hi;
}

// One key's put / get / remove on ck_ht (bytestring keys).
bool ck_put(ck_ht_t *ht, const Key &k, void *value)
{
        ck_ht_entry_t e;
        ck_ht_hash_t h;
        ck_ht_hash(&h, ht, &k, sizeof(Key));
        ck_ht_entry_set(&e, h, &k, sizeof(Key), value);
        return ck_ht_put_spmc(ht, h, &e);
}

bool ck_get(ck_ht_t *ht, const Key &k)
{
        ck_ht_entry_t e;
        ck_ht_hash_t h;
        ck_ht_hash(&h, ht, &k, sizeof(Key));
        ck_ht_entry_key_set(&e, &k, sizeof(Key));
        return ck_ht_get_spmc(ht, h, &e);
}

void ck_del(ck_ht_t *ht, const Key &k)
{
        ck_ht_entry_t e;
        ck_ht_hash_t h;
        ck_ht_hash(&h, ht, &k, sizeof(Key));
        ck_ht_entry_key_set(&e, &k, sizeof(Key));
        ck_ht_remove_spmc(ht, h, &e);
}

void BM_ck_ht(benchmark::State &state)
{
        size_t n = size_t(state.range(0));
        std::vector<Key> keys = make_keys(n);
        std::vector<char> values(16 * n);
        for (auto _ : state) {
                ck_ht_t ht;
                if (!ck_ht_init(&ht, CK_HT_MODE_BYTESTRING, ck_hash, &ck_mem,
                                1024, 1)) {
                        state.SkipWithError("ck_ht_init");
                        break;
                }
                for (size_t i = 0; i < n; i++)
                        benchmark::DoNotOptimize(
                            ck_put(&ht, keys[i], &values[16 * i]));
                for (size_t i = 0; i < n; i++)
                        benchmark::DoNotOptimize(ck_get(&ht, keys[i]));
                for (size_t i = 0; i < n; i++)
                        ck_del(&ht, keys[i]);
                if (ck_ht_count(&ht) != 0)
                        state.SkipWithError("entries left");
                ck_ht_destroy(&ht);
        }
        report(state, n);
}

// ---------------------------------------------------------------- cds_lfht

struct LfNode {
        struct cds_lfht_node node;
        Key key;
        char value[16];
};

int lf_match(struct cds_lfht_node *node, const void *key)
{
        const LfNode *x = caa_container_of(node, LfNode, node);
        const Key *k = static_cast<const Key *>(key);
        return x->key.lo == k->lo && x->key.hi == k->hi;
}

// The workload on keys [from, to), in read-side critical sections of
// LF_SECTION operations, as a reader holds them for one batch of records.
// cds_lfht resizes in a worker thread (below), and a shrink waits for a
// grace period: in one section around the whole run, a shrink started by
// the thread that reached its removals first held the resize lock until
// the other thread's run ended, so that thread's table stopped growing
// (its 2-thread row took 0.5-5 s, against a second with sections).
constexpr size_t LF_SECTION = 256;

template <typename Op> void lf_sections(size_t from, size_t to, Op op)
{
        for (size_t a = from; a < to; a += LF_SECTION) {
                size_t b = to - a < LF_SECTION ? to : a + LF_SECTION;
                rcu_read_lock();
                for (size_t i = a; i < b; i++)
                        op(i);
                rcu_read_unlock();
        }
}

void lf_ops(struct cds_lfht *ht, const std::vector<Key> &keys,
            std::vector<LfNode> &nodes, size_t from, size_t to)
{
        lf_sections(from, to, [&](size_t i) {
                cds_lfht_node_init(&nodes[i].node);
                nodes[i].key = keys[i];
                unsigned long h = keys[i].lo ^ keys[i].hi;
                benchmark::DoNotOptimize(cds_lfht_add_unique(
                    ht, h, lf_match, &keys[i], &nodes[i].node));
        });
        lf_sections(from, to, [&](size_t i) {
                struct cds_lfht_iter it;
                unsigned long h = keys[i].lo ^ keys[i].hi;
                cds_lfht_lookup(ht, h, lf_match, &keys[i], &it);
                benchmark::DoNotOptimize(cds_lfht_iter_get_node(&it));
        });
        // node memory is the vector's (cds_lfht allocates nothing per
        // entry, like the other two), reused only after the grace period
        // the caller waits for before the next iteration
        lf_sections(from, to,
                    [&](size_t i) { cds_lfht_del(ht, &nodes[i].node); });
}

// cds_lfht is created with its final size (a bucket per key). Its
// automatic resize runs in a background worker (a urcu workqueue), and on
// this machine (liburcu 0.13.2, Debian 12) that worker now and then never
// ran a queued resize: the table stayed at its first 1,024 buckets, the
// lookups walked chains of thousands of nodes, and one repetition took
// 40 s to over 15 minutes instead of a second or a minute (a 1M-key run
// after another table was destroyed, the 20M-key thread axis), which is
// what made its rows seem not to finish. Sized up front it never resizes:
// this favours cds_lfht, the other two grow from a small table.
struct cds_lfht *lf_new(size_t n)
{
        unsigned long size = 1024;
        while (size < n)
                size *= 2;
        return cds_lfht_new(size, 1024, 0, CDS_LFHT_ACCOUNTING, nullptr);
}

void BM_cds_lfht(benchmark::State &state)
{
        size_t n = size_t(state.range(0));
        std::vector<Key> keys = make_keys(n);
        std::vector<LfNode> nodes(n);
        rcu_register_thread();
        for (auto _ : state) {
                struct cds_lfht *ht = lf_new(n);
                lf_ops(ht, keys, nodes, 0, n);
                synchronize_rcu();
                cds_lfht_destroy(ht, nullptr);
        }
        rcu_unregister_thread();
        report(state, n);
}

// ---------------------------------------------------------------- ctable

// initial: the table's first slots (1,024 grows from small, as ck_ht
// does; BM_mt_posguard_ctable_sized makes it at its final size, as
// cds_lfht is made)
struct Ct {
        pg_epoch_t *ep;
        pg_ctable_t *t;
        explicit Ct(size_t initial = 1024)
        {
                ep = pg_epoch_new();
                char err[128];
                pg_ctable_conf_t c = {"bench", 16, size_t(16) << 30, initial};
                t = pg_ctable_new(&c, ep, err, sizeof(err));
        }
        ~Ct()
        {
                pg_epoch_reclaim(ep);
                pg_ctable_free(t);
                pg_epoch_free(ep);
        }
};

// keys [from, to): insert, look up, remove; on one registered thread
void ct_work(Ct &ct, const std::vector<Key> &keys, size_t from, size_t to)
{
        pg_epoch_handle_t h;
        pg_epoch_register(ct.ep, &h);
        pg_epoch_enter(&h);
        for (size_t i = from; i < to; i++) {
                pg_key_t k = {keys[i].lo, keys[i].hi};
                benchmark::DoNotOptimize(pg_ctable_upsert(
                    ct.t, k, 0, int64_t(i) + 1, true, nullptr, nullptr));
                if ((i & 1023) == 0) {
                        pg_epoch_exit(&h);
                        pg_epoch_enter(&h);
                }
        }
        char v[16];
        for (size_t i = from; i < to; i++) {
                pg_key_t k = {keys[i].lo, keys[i].hi};
                benchmark::DoNotOptimize(pg_ctable_get(ct.t, k, 0, v));
        }
        for (size_t i = from; i < to; i++) {
                pg_key_t k = {keys[i].lo, keys[i].hi};
                pg_ctable_remove(ct.t, k, 0);
        }
        pg_epoch_exit(&h);
        pg_epoch_unregister(&h);
}

void BM_posguard_ctable(benchmark::State &state)
{
        size_t n = size_t(state.range(0));
        std::vector<Key> keys = make_keys(n);
        for (auto _ : state) {
                Ct ct;
                ct_work(ct, keys, 0, n);
                pg_ctable_stats_t st;
                pg_ctable_stats(ct.t, &st);
                if (st.live != 0)
                        state.SkipWithError("entries left");
        }
        report(state, n);
}

template <typename F> void split_threads(size_t n, int nt, F f)
{
        std::vector<std::thread> th;
        for (int i = 0; i < nt; i++)
                th.emplace_back(f, n * size_t(i) / size_t(nt),
                                n * size_t(i + 1) / size_t(nt));
        for (auto &t : th)
                t.join();
}

// initial: the table's first slots (Ct)
void mt_ctable(benchmark::State &state, size_t initial)
{
        size_t n = size_t(state.range(0));
        int nt = int(state.range(1));
        std::vector<Key> keys = make_keys(n);
        for (auto _ : state) {
                Ct ct(initial);
                split_threads(n, nt, [&](size_t a, size_t b) {
                        ct_work(ct, keys, a, b);
                });
        }
        report(state, n);
}

void BM_mt_posguard_ctable(benchmark::State &state)
{
        mt_ctable(state, 1024);
}

// made with room for all n keys under the 3/4 load that starts a resize:
// like for like with cds_lfht, created at its final size
void BM_mt_posguard_ctable_sized(benchmark::State &state)
{
        mt_ctable(state, size_t(state.range(0)) / 3 * 4 + 64);
}

void lf_work(struct cds_lfht *ht, const std::vector<Key> &keys,
             std::vector<LfNode> &nodes, size_t from, size_t to)
{
        rcu_register_thread();
        lf_ops(ht, keys, nodes, from, to);
        rcu_unregister_thread();
}

void BM_mt_cds_lfht(benchmark::State &state)
{
        size_t n = size_t(state.range(0));
        int nt = int(state.range(1));
        std::vector<Key> keys = make_keys(n);
        std::vector<LfNode> nodes(n);
        rcu_register_thread();
        for (auto _ : state) {
                struct cds_lfht *ht = lf_new(n);
                split_threads(n, nt, [&](size_t a, size_t b) {
                        lf_work(ht, keys, nodes, a, b);
                });
                synchronize_rcu();
                cds_lfht_destroy(ht, nullptr);
        }
        rcu_unregister_thread();
        report(state, n);
}

// ck_ht: one writer (inserts, then removals after the readers finish),
// T-1 readers looking up the keys as they appear (T = 1: the writer looks
// them up itself).
void BM_mt_ck_ht(benchmark::State &state)
{
        size_t n = size_t(state.range(0));
        int nt = int(state.range(1));
        std::vector<Key> keys = make_keys(n);
        std::vector<char> values(16 * n);
        for (auto _ : state) {
                ck_ht_t ht;
                if (!ck_ht_init(&ht, CK_HT_MODE_BYTESTRING, ck_hash, &ck_mem,
                                1024, 1)) {
                        state.SkipWithError("ck_ht_init");
                        break;
                }
                std::atomic<size_t> inserted{0};
                auto lookup = [&](size_t a, size_t b) {
                        for (size_t i = a; i < b; i++) {
                                while (inserted.load(
                                           std::memory_order_acquire) <= i)
                                        std::this_thread::yield();
                                benchmark::DoNotOptimize(ck_get(&ht, keys[i]));
                        }
                };
                std::vector<std::thread> readers;
                for (int r = 1; r < nt; r++)
                        readers.emplace_back(lookup,
                                             n * size_t(r - 1) / size_t(nt - 1),
                                             n * size_t(r) / size_t(nt - 1));
                for (size_t i = 0; i < n; i++) {
                        ck_put(&ht, keys[i], &values[16 * i]);
                        inserted.store(i + 1, std::memory_order_release);
                }
                if (nt == 1)
                        lookup(0, n);
                for (auto &t : readers)
                        t.join();
                for (size_t i = 0; i < n; i++)
                        ck_del(&ht, keys[i]);
                ck_ht_destroy(&ht);
        }
        report(state, n);
}

} // namespace

// PG_BENCH_BIG=1 adds the 20M-key sizes (one iteration each: minutes, and
// a few GiB of memory).
int main(int argc, char **argv)
{
        bool big = std::getenv("PG_BENCH_BIG") != nullptr;
        std::vector<int64_t> sizes = {1 << 16, 1 << 20};
        if (big)
                sizes.push_back(20 << 20);
        int cores = int(std::thread::hardware_concurrency());
        std::vector<int64_t> threads;
        for (int t = 1; t <= (cores > 1 ? cores : 1); t *= 2)
                threads.push_back(t);
        if (threads.back() != cores && cores > 1)
                threads.push_back(cores);
        auto one = [&](const char *name, void (*fn)(benchmark::State &)) {
                for (int64_t n : sizes) {
                        auto *b = benchmark::RegisterBenchmark(name, fn)
                                      ->Arg(n)
                                      ->Unit(benchmark::kMillisecond);
                        if (n > (1 << 20))
                                b->Iterations(1);
                }
        };
        one("BM_posguard_table", BM_posguard_table);
        one("BM_posguard_table_sized", BM_posguard_table_sized);
        one("BM_posguard_ctable", BM_posguard_ctable);
        one("BM_ck_ht", BM_ck_ht);
        one("BM_cds_lfht", BM_cds_lfht);
        auto mt = [&](const char *name, void (*fn)(benchmark::State &)) {
                for (int64_t n : sizes)
                        for (int64_t t : threads) {
                                auto *b = benchmark::RegisterBenchmark(name, fn)
                                              ->Args({n, t})
                                              ->UseRealTime()
                                              ->Unit(benchmark::kMillisecond);
                                if (n > (1 << 20))
                                        b->Iterations(1);
                        }
        };
        mt("BM_mt_posguard_ctable", BM_mt_posguard_ctable);
        mt("BM_mt_posguard_ctable_sized", BM_mt_posguard_ctable_sized);
        mt("BM_mt_ck_ht", BM_mt_ck_ht);
        mt("BM_mt_cds_lfht", BM_mt_cds_lfht);
        benchmark::Initialize(&argc, argv);
        benchmark::RunSpecifiedBenchmarks();
        benchmark::Shutdown();
        return 0;
}
