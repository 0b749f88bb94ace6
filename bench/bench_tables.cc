// bench_tables.cc - posguard's state table beside Concurrency Kit's ck_ht
// and liburcu's cds_lfht on the engine's workload, with Google Benchmark.
//
// The workload of one iteration, for N distinct 128-bit keys with a 16-byte
// value each (the engine's tables hold keys like these):
//   insert all N, look all N up (hits), then remove all N in insertion order
// (the engine's tables expire by event time in that order: pg_table_expire
// with a time past every entry; ck_ht / cds_lfht remove key by key).
// Reported: items_per_second over the 3N operations, single thread (our
// table is single-writer today; issue 5 makes it concurrent, and this file
// grows a thread axis then).
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

#include "state_table.h"
#include "util_mem.h"
}

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

void BM_posguard_table(benchmark::State &state)
{
        size_t n = size_t(state.range(0));
        std::vector<Key> keys = make_keys(n);
        for (auto _ : state) {
                pg_budget_t b;
                std::memset(&b, 0, sizeof(b));
                b.cap = SIZE_MAX;
                pg_table_t *t = pg_table_new("bench", 16, &b);
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
                for (size_t i = 0; i < n; i++) {
                        ck_ht_entry_t e;
                        ck_ht_hash_t h;
                        ck_ht_hash(&h, &ht, &keys[i], sizeof(Key));
                        ck_ht_entry_set(&e, h, &keys[i], sizeof(Key),
                                        &values[16 * i]);
                        benchmark::DoNotOptimize(ck_ht_put_spmc(&ht, h, &e));
                }
                for (size_t i = 0; i < n; i++) {
                        ck_ht_entry_t e;
                        ck_ht_hash_t h;
                        ck_ht_hash(&h, &ht, &keys[i], sizeof(Key));
                        ck_ht_entry_key_set(&e, &keys[i], sizeof(Key));
                        benchmark::DoNotOptimize(ck_ht_get_spmc(&ht, h, &e));
                }
                for (size_t i = 0; i < n; i++) {
                        ck_ht_entry_t e;
                        ck_ht_hash_t h;
                        ck_ht_hash(&h, &ht, &keys[i], sizeof(Key));
                        ck_ht_entry_key_set(&e, &keys[i], sizeof(Key));
                        ck_ht_remove_spmc(&ht, h, &e);
                }
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

void BM_cds_lfht(benchmark::State &state)
{
        size_t n = size_t(state.range(0));
        std::vector<Key> keys = make_keys(n);
        std::vector<LfNode> nodes(n);
        rcu_register_thread();
        for (auto _ : state) {
                struct cds_lfht *ht = cds_lfht_new(
                    1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING,
                    nullptr);
                // node memory is the vector's: cds_lfht allocates nothing
                // per entry, like the other two
                rcu_read_lock();
                for (size_t i = 0; i < n; i++) {
                        cds_lfht_node_init(&nodes[i].node);
                        nodes[i].key = keys[i];
                        unsigned long h = keys[i].lo ^ keys[i].hi;
                        benchmark::DoNotOptimize(cds_lfht_add_unique(
                            ht, h, lf_match, &keys[i], &nodes[i].node));
                }
                for (size_t i = 0; i < n; i++) {
                        struct cds_lfht_iter it;
                        unsigned long h = keys[i].lo ^ keys[i].hi;
                        cds_lfht_lookup(ht, h, lf_match, &keys[i], &it);
                        benchmark::DoNotOptimize(cds_lfht_iter_get_node(&it));
                }
                for (size_t i = 0; i < n; i++)
                        cds_lfht_del(ht, &nodes[i].node);
                rcu_read_unlock();
                synchronize_rcu();
                cds_lfht_destroy(ht, nullptr);
        }
        rcu_unregister_thread();
        report(state, n);
}

} // namespace

BENCHMARK(BM_posguard_table)
    ->Arg(1 << 16)
    ->Arg(1 << 20)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ck_ht)->Arg(1 << 16)->Arg(1 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_cds_lfht)
    ->Arg(1 << 16)
    ->Arg(1 << 20)
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
