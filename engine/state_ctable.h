/*
 * state_ctable.h - the concurrent state table: a hash table with event-time
 * expiry and a hard memory cap, safe for several writer threads and any
 * number of concurrent readers without locks.
 *
 * Keys are 128-bit hashes (util_hash.h); values are fixed-size (value_size
 * bytes, a multiple of 8, at most PG_CT_VALUE_MAX) and are never handed out
 * by pointer: readers get a consistent copy, writers update through a
 * callback that sees a private copy (optimistic concurrency: the copy is
 * installed only if nobody changed the entry meanwhile, otherwise the
 * callback runs again on the fresh value). See the top of state_ctable.c
 * for the algorithm, the memory ordering and the reclamation argument.
 *
 * Time. An entry is live at time now while now < expire_at. Every call
 * passes its own now (a partition's event time). Physical removal of
 * expired entries (sweeps, resizes) uses the table's clock instead, which
 * callers advance with pg_ctable_expire: it must never pass the now of any
 * later lookup (with several partitions sharing a table, the minimum of
 * their times).
 *
 * Threads: every function may be called from any thread registered with
 * the table's epoch domain, between pg_epoch_enter and pg_epoch_exit,
 * except new/free (one thread, no other user).
 */
#ifndef PG_STATE_CTABLE_H
#define PG_STATE_CTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state_epoch.h"
#include "util_hash.h"

#define PG_CT_VALUE_MAX 96

typedef struct pg_ctable pg_ctable_t;

typedef struct pg_ctable_conf {
        const char *name;
        size_t value_size;  /* bytes, multiple of 8, <= PG_CT_VALUE_MAX */
        size_t max_bytes;   /* hard cap on slot memory, resizes included */
        size_t initial_cap; /* slots (rounded up to a power of two) */
} pg_ctable_conf_t;

/* NULL with errstr set when the configuration is invalid. The domain must
 * outlive the table. */
pg_ctable_t *pg_ctable_new(const pg_ctable_conf_t *conf, pg_epoch_t *ep,
                           char *errstr, size_t errstr_size);
/* No other thread may use t. Arrays retired earlier are the domain's. */
void pg_ctable_free(pg_ctable_t *t);

/* Copy the live value of k at now into out (value_size bytes; out may be
 * NULL to only test presence). */
bool pg_ctable_get(pg_ctable_t *t, pg_key_t k, int64_t now, void *out);

/* Batched lookup: n keys, their home slots prefetched first. found[i] and
 * out + i * value_size are filled for each key. */
void pg_ctable_get_batch(pg_ctable_t *t, const pg_key_t *keys, size_t n,
                         int64_t now, void *out, bool *found);

/* Start loading the cache line k lives on (a hint, no effect otherwise). */
void pg_ctable_prefetch(pg_ctable_t *t, pg_key_t k);

/*
 * The update callback: value is a private copy (zeroed when created),
 * *expire_at the entry's expiry (already raised to the caller's when that
 * is later). Return true to install value and *expire_at, false to leave
 * the entry as it is (a created entry is then not inserted). It may run
 * more than once per call when other threads change the entry; it must
 * depend only on its arguments.
 */
typedef bool (*pg_ctable_update_fn)(void *value, bool created,
                                    int64_t *expire_at, void *arg);

typedef enum pg_ct_result {
        PG_CT_UNCHANGED = 0, /* live entry, callback returned false */
        PG_CT_UPDATED,       /* live entry, new value installed */
        PG_CT_CREATED,       /* entry was absent or dead, now inserted */
        PG_CT_ABSENT,        /* absent and create was false */
        PG_CT_FULL           /* absent, and the memory cap refused it */
} pg_ct_result_t;

/* Find or (when create) insert k and apply fn. fn may be NULL: insert a
 * zeroed value / raise the expiry only. */
pg_ct_result_t pg_ctable_upsert(pg_ctable_t *t, pg_key_t k, int64_t now,
                                int64_t expire_at, bool create,
                                pg_ctable_update_fn fn, void *arg);

/* Remove k; true when a live entry was removed. */
bool pg_ctable_remove(pg_ctable_t *t, pg_key_t k, int64_t now);

/* Advance the table clock to now (never backwards) and sweep up to
 * max_work slots for entries dead at the clock. Also helps a resize in
 * progress and frees retired arrays that nobody can see any more. */
void pg_ctable_expire(pg_ctable_t *t, int64_t now, size_t max_work);

typedef struct {
        size_t live;  /* entries inserted and not yet removed/swept */
        size_t cap;   /* slots of the current array */
        size_t bytes; /* slot memory, including an array being left */
        size_t peak_bytes;
        uint64_t full;    /* inserts refused by the memory cap */
        uint64_t resizes; /* completed */
        uint64_t swept;   /* entries removed by expiry sweeps and resizes */
} pg_ctable_stats_t;

/* Approximate while writers run (each counter is read atomically). */
void pg_ctable_stats(pg_ctable_t *t, pg_ctable_stats_t *out);

/* Bytes of one slot: the header (key, expiry, version) and the value,
 * padded so that no slot straddles two cache lines. */
size_t pg_ctable_slot_size(size_t value_size);

#endif
