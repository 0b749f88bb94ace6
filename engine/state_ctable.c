/*
 * state_ctable.c - concurrent hash table with event-time expiry, a memory
 * cap and incremental resize (see state_ctable.h).
 *
 * Layout. One array of fixed-size slots, 64-byte aligned, each slot
 * {key lo, key hi, ctl, expire_at, value words}, padded so that no slot
 * straddles two cache lines (a 16-byte value makes a 64-byte slot, no
 * value a 32-byte one). The key is already a hash: its low bits pick the
 * home slot and linear probing resolves collisions, so a lookup usually
 * touches one cache line, and pg_ctable_get_batch prefetches the home
 * lines of a whole batch before probing.
 *
 * Slot states. key lo == 0: empty; key lo == LO_CLOSED: empty slot closed
 * by a resize (go to the next array). Otherwise the slot belongs to that
 * key for the life of the array (keys are remapped so that neither
 * reserved value, nor hi == 0, ever occurs). ctl holds a version (bits
 * 4..63, +16 per change) and three flags: LIVE (a value is published),
 * WRITE (a writer is copying a new value in), MOVED (a resize copied the
 * entry to the next array, or dropped it). ctl == 0: the key was claimed
 * and is being published.
 *
 * Insert: CAS key lo from 0 to the key (the only way a slot is claimed),
 * store hi, value and expiry, then store ctl = LIVE (release); the insert
 * is linearised at that store. A thread that meets the key in between
 * waits for it (a few stores of the claiming thread).
 *
 * Update (optimistic, seqlock style): read ctl (acquire, no WRITE bit),
 * copy the value, re-read ctl; run the caller's function on the private
 * copy; CAS ctl from the version read to version|WRITE; a release fence;
 * store the value words (relaxed atomics); store ctl = version + 16
 * (release). Readers copy the words between two reads of ctl separated by
 * an acquire fence and retry when they differ, so they never see a torn
 * value and never block a writer. The only wait in the table is on a
 * WRITE or publication window of another thread, which is a bounded copy
 * of at most PG_CT_VALUE_MAX bytes with no caller code inside it.
 *
 * Removal and expiry never free a slot: they clear LIVE (a tombstone that
 * keeps probe runs intact). The same key may revive its own tombstone.
 * Tombstones and expired entries are dropped by the next resize.
 *
 * Resize (incremental). When an insert would pass 3/4 load, a new array
 * is published as arr->next (CAS, one winner): twice the size when more
 * than half the slots are live, the same size (a compaction) when enough
 * are dead, half when few are live. From then on every write first helps:
 * it claims CHUNK slots of the old array (fetch_add on a cursor) and moves
 * them. Moving a slot: close it if empty (CAS lo 0 -> LO_CLOSED, so a late
 * insert cannot land behind the mover), else take its WRITE bit, copy the
 * entry to the new array unless dead at the table clock, and set MOVED.
 * New keys go to the new array only; live entries of the old array are
 * updated in place until moved (the mover's CAS on ctl then retries).
 * Lookups that meet MOVED, LO_CLOSED, or a miss while a next array exists,
 * continue in the next array. Whoever moves the last chunk swaps the
 * table's current array and retires the old one. The bound: one write
 * moves at most CHUNK slots, so a resize never stalls a caller for more
 * than CHUNK slot copies.
 *
 * Reclamation. Old arrays are retired to the epoch domain
 * (state_epoch.c): every operation runs inside a section, and an array is
 * freed only after every section that could have loaded a pointer to it
 * has ended. Values are never handed out by pointer, so nothing else
 * needs protection.
 *
 * Memory cap. An array is allocated only when the current one plus the
 * new one fit under max_bytes; when they do not, inserts go on to 7/8 load
 * and are then refused (PG_CT_FULL, counted in full), while moves of
 * existing entries may fill a target to 15/16. An array left by a resize
 * stops counting when it is retired and is freed one grace period later
 * (state_epoch.c): for that moment the footprint can pass the cap by it.
 */
#include "state_ctable.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_mem.h"

#define CT_LIVE 1u
#define CT_WRITE 2u
#define CT_MOVED 4u
#define CT_VER 16u
#define LO_CLOSED UINT64_MAX
#define CHUNK 64
#define MIN_CAP 64

typedef struct slot {
        _Atomic uint64_t lo, hi, ctl;
        _Atomic int64_t expire;
        _Atomic uint64_t v[];
} slot_t;

/* Counters that every insert touches are striped by key (16 cache lines)
 * so that writers on different keys do not bounce one line between cores;
 * a key always counts on the same stripe. */
#define STRIPES 16
typedef struct stripe {
        _Alignas(64) _Atomic int64_t n;
} stripe_t;

static inline unsigned stripe_of(uint64_t hi)
{
        return (unsigned)(hi >> 60);
}

static int64_t stripes_sum(const stripe_t *s)
{
        int64_t n = 0;
        for (int i = 0; i < STRIPES; i++)
                /* relaxed: a statistic, exact only when writers rest */
                n += atomic_load_explicit(&s[i].n, memory_order_relaxed);
        return n > 0 ? n : 0;
}

static inline void stripe_add(stripe_t *s, uint64_t hi, int64_t d)
{
        /* relaxed: counts order nothing */
        atomic_fetch_add_explicit(&s[stripe_of(hi)].n, d, memory_order_relaxed);
}

typedef struct arr {
        size_t cap, mask, bytes;
        stripe_t used[STRIPES]; /* claimed slots */
        _Atomic(struct arr *) next;
        _Atomic size_t mig_next, mig_done;
        unsigned char *slots;
} arr_t;

struct pg_ctable {
        char name[32];
        size_t value_size, words, slot_size, max_bytes;
        pg_epoch_t *ep;
        _Atomic(arr_t *) cur;
        _Atomic int64_t clock;
        _Atomic size_t sweep_pos;
        stripe_t live[STRIPES];
        _Atomic size_t bytes, peak;
        _Atomic uint64_t full, resizes, swept;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
}

size_t pg_ctable_slot_size(size_t value_size)
{
        size_t s = sizeof(slot_t) + value_size;
        if (s <= 64) {
                size_t p = 32;
                while (p < s)
                        p *= 2;
                return p;
        }
        return (s + 63) & ~(size_t)63;
}

static inline slot_t *slot_at(const pg_ctable_t *t, const arr_t *a, size_t i)
{
        return (slot_t *)(a->slots + i * t->slot_size);
}

/* Keys as stored: never lo 0 or LO_CLOSED, never hi 0. */
static inline pg_key_t remap(pg_key_t k)
{
        if (k.lo == 0 || k.lo == LO_CLOSED)
                k.lo = 0x9e3779b97f4a7c15ULL;
        if (k.hi == 0)
                k.hi = 1;
        return k;
}

static void account_peak(pg_ctable_t *t, size_t now)
{
        size_t peak = atomic_load_explicit(&t->peak, memory_order_relaxed);
        /* relaxed: peak is a statistic, ordered with nothing */
        while (now > peak && !atomic_compare_exchange_weak_explicit(
                                 &t->peak, &peak, now, memory_order_relaxed,
                                 memory_order_relaxed))
                ;
}

/* A new zeroed array of cap slots, or NULL when the cap refuses it. */
static arr_t *arr_new(pg_ctable_t *t, size_t cap)
{
        size_t bytes = cap * t->slot_size;
        size_t used = atomic_load(&t->bytes);
        do
                if (used + bytes > t->max_bytes)
                        return NULL;
        while (!atomic_compare_exchange_weak(&t->bytes, &used, used + bytes));
        account_peak(t, used + bytes);
        arr_t *a = aligned_alloc(64, (sizeof(*a) + 63) & ~(size_t)63);
        if (!a) {
                fprintf(stderr, "posguard: out of memory\n");
                abort();
        }
        memset(a, 0, sizeof(*a));
        a->cap = cap;
        a->mask = cap - 1;
        a->bytes = bytes;
        a->slots = aligned_alloc(64, bytes);
        if (!a->slots) {
                fprintf(stderr, "posguard: out of memory (%zu bytes)\n", bytes);
                abort();
        }
        memset(a->slots, 0, bytes);
        atomic_init(&a->next, NULL);
        atomic_init(&a->mig_next, 0);
        atomic_init(&a->mig_done, 0);
        return a;
}

static void arr_free(void *p)
{
        arr_t *a = p;
        free(a->slots);
        free(a);
}

pg_ctable_t *pg_ctable_new(const pg_ctable_conf_t *conf, pg_epoch_t *ep,
                           char *errstr, size_t errstr_size)
{
        if (conf->value_size % 8 || conf->value_size > PG_CT_VALUE_MAX) {
                snprintf(errstr, errstr_size,
                         "table %s: value size %zu is not a multiple of 8 "
                         "up to %d",
                         conf->name ? conf->name : "?", conf->value_size,
                         PG_CT_VALUE_MAX);
                return NULL;
        }
        pg_ctable_t *t = aligned_alloc(64, (sizeof(*t) + 63) & ~(size_t)63);
        if (!t) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        memset(t, 0, sizeof(*t));
        snprintf(t->name, sizeof(t->name), "%s",
                 conf->name ? conf->name : "table");
        t->value_size = conf->value_size;
        t->words = conf->value_size / 8;
        t->slot_size = pg_ctable_slot_size(conf->value_size);
        t->max_bytes = conf->max_bytes ? conf->max_bytes : (size_t)1 << 30;
        t->ep = ep;
        size_t cap = MIN_CAP;
        while (cap < conf->initial_cap)
                cap *= 2;
        while (cap > MIN_CAP && 2 * cap * t->slot_size > t->max_bytes)
                cap /= 2;
        arr_t *a = arr_new(t, cap);
        if (!a) {
                snprintf(errstr, errstr_size,
                         "table %s: memory cap %zu bytes is below one array "
                         "of %d slots",
                         t->name, t->max_bytes, MIN_CAP);
                free(t);
                return NULL;
        }
        atomic_init(&t->cur, a);
        return t;
}

void pg_ctable_free(pg_ctable_t *t)
{
        if (!t)
                return;
        arr_t *a = atomic_load(&t->cur);
        while (a) {
                arr_t *next = atomic_load(&a->next);
                arr_free(a);
                a = next;
        }
        free(t);
}

/* ---- probing ---- */

enum { P_FOUND, P_EMPTY, P_CLOSED, P_WRAPPED };

/* Find k's slot in a, or the first empty slot of its probe run. */
static int probe(const pg_ctable_t *t, const arr_t *a, pg_key_t k, slot_t **out)
{
        size_t i = (size_t)k.lo & a->mask;
        for (size_t n = 0; n < a->cap; n++, i = (i + 1) & a->mask) {
                slot_t *s = slot_at(t, a, i);
                /* acquire: pairs with the claiming CAS, so hi is read
                 * after the claim it belongs to */
                uint64_t lo =
                    atomic_load_explicit(&s->lo, memory_order_acquire);
                if (lo == 0) {
                        *out = s;
                        return P_EMPTY;
                }
                if (lo == LO_CLOSED)
                        return P_CLOSED;
                if (lo != k.lo)
                        continue;
                uint64_t hi;
                /* the claimer stores hi right after its CAS */
                while (
                    !(hi = atomic_load_explicit(&s->hi, memory_order_acquire)))
                        cpu_relax();
                if (hi == k.hi) {
                        *out = s;
                        return P_FOUND;
                }
        }
        return P_WRAPPED;
}

/* Copy a slot's value consistently. Returns its ctl (WRITE clear) and
 * sets *exp; a ctl without LIVE, or with MOVED, carries no value. */
static uint64_t slot_snapshot(const pg_ctable_t *t, slot_t *s, uint64_t *w,
                              int64_t *exp)
{
        for (;;) {
                /* acquire: pairs with the release store that published
                 * this version */
                uint64_t c1 =
                    atomic_load_explicit(&s->ctl, memory_order_acquire);
                if (c1 & CT_WRITE || c1 == 0) {
                        cpu_relax();
                        continue;
                }
                if (!(c1 & CT_LIVE) || c1 & CT_MOVED)
                        return c1;
                /* relaxed: validated by the second ctl read below */
                *exp = atomic_load_explicit(&s->expire, memory_order_relaxed);
                for (size_t i = 0; i < t->words; i++)
                        w[i] = atomic_load_explicit(&s->v[i],
                                                    memory_order_relaxed);
                /* acquire fence: the word loads above happen before the
                 * ctl re-read, pairing with the writer's release fence */
                atomic_thread_fence(memory_order_acquire);
                if (atomic_load_explicit(&s->ctl, memory_order_relaxed) == c1)
                        return c1;
        }
}

/* Install w/exp in a slot whose ctl we still hold at c (WRITE not set):
 * true when the CAS won. newctl is the flag part of the result. */
static bool slot_install(pg_ctable_t *t, slot_t *s, uint64_t c,
                         const uint64_t *w, int64_t exp, uint64_t flags)
{
        /* acquire on success: later stores stay after the claim */
        if (!atomic_compare_exchange_strong_explicit(&s->ctl, &c, c | CT_WRITE,
                                                     memory_order_acquire,
                                                     memory_order_relaxed))
                return false;
        /* release fence: a reader that sees any word below also sees the
         * WRITE bit (pairs with slot_snapshot's acquire fence) */
        atomic_thread_fence(memory_order_release);
        atomic_store_explicit(&s->expire, exp, memory_order_relaxed);
        for (size_t i = 0; i < t->words; i++)
                atomic_store_explicit(&s->v[i], w[i], memory_order_relaxed);
        /* release: publishes the words with the new version */
        atomic_store_explicit(&s->ctl,
                              ((c & ~(uint64_t)(CT_VER - 1)) + CT_VER) | flags,
                              memory_order_release);
        return true;
}

/* ---- resize ---- */

/* Claim the empty slot s of a for k and publish w / exp in it. False when
 * another thread claimed s first (the caller probes again). */
static bool claim_publish(pg_ctable_t *t, arr_t *a, slot_t *s, pg_key_t k,
                          const uint64_t *w, int64_t exp)
{
        uint64_t zero = 0;
        /* acq_rel: the claim happens before our stores below; on failure
         * the caller re-probes and reads what the winner claimed */
        if (!atomic_compare_exchange_strong_explicit(&s->lo, &zero, k.lo,
                                                     memory_order_acq_rel,
                                                     memory_order_acquire))
                return false;
        stripe_add(a->used, k.hi, 1);
        atomic_store_explicit(&s->hi, k.hi, memory_order_release);
        atomic_store_explicit(&s->expire, exp, memory_order_relaxed);
        for (size_t i = 0; i < t->words; i++)
                atomic_store_explicit(&s->v[i], w[i], memory_order_relaxed);
        /* release: publishes key, value and expiry (the linearisation
         * point of an insert) */
        atomic_store_explicit(&s->ctl, CT_VER | CT_LIVE, memory_order_release);
        return true;
}

static bool start_resize(pg_ctable_t *t, arr_t *a);

/* Copy a moved entry into the newest array of the chain from nx, unless
 * the key is already anywhere on the way: a writer put a newer history of
 * it there (an insert, an update or a removal). */
static void move_into(pg_ctable_t *t, arr_t *nx, pg_key_t k, const uint64_t *w,
                      int64_t exp)
{
        arr_t *a = nx;
        while (a) {
                slot_t *s;
                int r = probe(t, a, k, &s);
                if (r == P_FOUND) {
                        /* a newer history of k is there: this copy, which
                         * was counted live, is dropped */
                        stripe_add(t->live, k.hi, -1);
                        return;
                }
                arr_t *n2 = atomic_load(&a->next);
                if (n2 || r == P_CLOSED) {
                        a = n2 ? n2 : atomic_load(&a->next);
                        continue;
                }
                size_t used = (size_t)stripes_sum(a->used);
                if (r == P_WRAPPED || (used + 1) * 8 > a->cap * 7) {
                        /* the target filled up while this migration ran
                         * (its mover was descheduled): chain a resize */
                        /* if the cap refuses a chained resize, a move may
                         * still fill the target to 15/16 (inserts stop at
                         * 7/8): existing state goes before new keys */
                        if (start_resize(t, a))
                                continue;
                        if (r == P_WRAPPED || (used + 1) * 16 > a->cap * 15)
                                break;
                }
                if (!claim_publish(t, a, s, k, w, exp))
                        continue;
                return;
        }
        /* only when the memory cap refuses every further array: the
         * entry is lost, and counted like a refused insert */
        atomic_fetch_add(&t->full, 1);
        stripe_add(t->live, k.hi, -1);
}

static void move_slot(pg_ctable_t *t, arr_t *a, arr_t *nx, slot_t *s)
{
        uint64_t w[PG_CT_VALUE_MAX / 8];
        int64_t clock = atomic_load_explicit(&t->clock, memory_order_acquire);
        for (;;) {
                uint64_t lo =
                    atomic_load_explicit(&s->lo, memory_order_acquire);
                if (lo == 0) {
                        if (atomic_compare_exchange_strong(&s->lo, &lo,
                                                           LO_CLOSED))
                                return;
                        continue;
                }
                if (lo == LO_CLOSED)
                        return; /* closed by a writer going on to next */
                uint64_t c =
                    atomic_load_explicit(&s->ctl, memory_order_acquire);
                if (c == 0 || c & CT_WRITE) {
                        cpu_relax(); /* being published or written */
                        continue;
                }
                if (c & CT_MOVED)
                        return;
                int64_t exp =
                    atomic_load_explicit(&s->expire, memory_order_relaxed);
                bool live = c & CT_LIVE;
                if (!live || exp <= clock) {
                        if (!atomic_compare_exchange_strong(&s->ctl, &c,
                                                            c | CT_MOVED))
                                continue;
                        if (live) {
                                stripe_add(t->live,
                                           atomic_load_explicit(
                                               &s->hi, memory_order_relaxed),
                                           -1);
                                atomic_fetch_add(&t->swept, 1);
                        }
                        return;
                }
                /* acquire: the words read below are the ones of version c */
                if (!atomic_compare_exchange_strong_explicit(
                        &s->ctl, &c, c | CT_WRITE, memory_order_acquire,
                        memory_order_relaxed))
                        continue;
                exp = atomic_load_explicit(&s->expire, memory_order_relaxed);
                for (size_t i = 0; i < t->words; i++)
                        w[i] = atomic_load_explicit(&s->v[i],
                                                    memory_order_relaxed);
                pg_key_t k = {
                    lo, atomic_load_explicit(&s->hi, memory_order_relaxed)};
                move_into(t, nx, k, w, exp);
                /* release: the copy in nx is visible before MOVED */
                atomic_store_explicit(&s->ctl,
                                      ((c & ~(uint64_t)(CT_VER - 1)) + CT_VER) |
                                          CT_MOVED,
                                      memory_order_release);
                return;
        }
        (void)a;
}

/* Make the first array whose entries have all moved stop being current,
 * as often as that holds (a chained resize can end out of order). */
static void advance_cur(pg_ctable_t *t)
{
        for (;;) {
                arr_t *c = atomic_load(&t->cur);
                arr_t *n = atomic_load(&c->next);
                if (!n || atomic_load(&c->mig_done) < c->cap)
                        return;
                if (atomic_compare_exchange_strong(&t->cur, &c, n)) {
                        atomic_fetch_sub(&t->bytes, c->bytes);
                        atomic_fetch_add(&t->resizes, 1);
                        pg_epoch_retire(t->ep, c, arr_free);
                }
        }
}

/* Move up to chunks chunks of slots of the oldest migrations on the chain
 * from a (CHUNK slots each). */
static void help_resize(pg_ctable_t *t, arr_t *a, int chunks)
{
        for (; a && chunks > 0; a = atomic_load(&a->next)) {
                arr_t *nx = atomic_load(&a->next);
                if (!nx)
                        return;
                while (chunks > 0) {
                        size_t i = atomic_fetch_add(&a->mig_next, CHUNK);
                        if (i >= a->cap)
                                break;
                        chunks--;
                        size_t end = i + CHUNK < a->cap ? i + CHUNK : a->cap;
                        for (size_t j = i; j < end; j++)
                                move_slot(t, a, nx, slot_at(t, a, j));
                        size_t done =
                            atomic_fetch_add(&a->mig_done, end - i) + (end - i);
                        if (done == a->cap)
                                advance_cur(t);
                }
        }
}

/* Start a resize of a (the current array). False when the memory cap
 * refuses the new array, or compaction would not free anything. */
static bool start_resize(pg_ctable_t *t, arr_t *a)
{
        if (atomic_load(&a->next))
                return true;
        size_t live = (size_t)stripes_sum(t->live);
        size_t used = (size_t)stripes_sum(a->used);
        size_t ncap = a->cap;
        if (live * 2 > a->cap)
                ncap = a->cap * 2;
        else if (live * 8 < a->cap && a->cap > MIN_CAP)
                ncap = a->cap / 2;
        arr_t *nx = ncap != a->cap ? arr_new(t, ncap) : NULL;
        if (!nx) {
                /* same size: worth it only when an eighth is reclaimable */
                if (used - (live < used ? live : used) < a->cap / 8)
                        return false;
                nx = arr_new(t, a->cap);
                if (!nx)
                        return false;
        }
        arr_t *expect = NULL;
        if (!atomic_compare_exchange_strong(&a->next, &expect, nx)) {
                atomic_fetch_sub(&t->bytes, nx->bytes);
                arr_free(nx);
        }
        return true;
}

/* ---- operations ---- */

static bool get_one(pg_ctable_t *t, pg_key_t k, int64_t now, void *out)
{
        uint64_t w[PG_CT_VALUE_MAX / 8];
        arr_t *a = atomic_load(&t->cur);
        while (a) {
                slot_t *s = NULL;
                int r = probe(t, a, k, &s);
                arr_t *nx = atomic_load(&a->next);
                if (r == P_FOUND) {
                        int64_t exp = 0;
                        uint64_t c = slot_snapshot(t, s, w, &exp);
                        if (!(c & CT_MOVED) && c & CT_LIVE && now < exp) {
                                if (out)
                                        memcpy(out, w, t->value_size);
                                return true;
                        }
                        if (c & CT_MOVED)
                                nx = atomic_load(&a->next);
                }
                a = nx;
        }
        return false;
}

bool pg_ctable_get(pg_ctable_t *t, pg_key_t k, int64_t now, void *out)
{
        return get_one(t, remap(k), now, out);
}

void pg_ctable_prefetch(pg_ctable_t *t, pg_key_t k)
{
        arr_t *a = atomic_load_explicit(&t->cur, memory_order_acquire);
        __builtin_prefetch(slot_at(t, a, (size_t)remap(k).lo & a->mask));
}

void pg_ctable_get_batch(pg_ctable_t *t, const pg_key_t *keys, size_t n,
                         int64_t now, void *out, bool *found)
{
        for (size_t i = 0; i < n; i++)
                pg_ctable_prefetch(t, keys[i]);
        for (size_t i = 0; i < n; i++)
                found[i] = get_one(t, remap(keys[i]), now,
                                   (unsigned char *)out + i * t->value_size);
}

pg_ct_result_t pg_ctable_upsert(pg_ctable_t *t, pg_key_t k, int64_t now,
                                int64_t expire_at, bool create,
                                pg_ctable_update_fn fn, void *arg)
{
        uint64_t w[PG_CT_VALUE_MAX / 8];
        k = remap(k);
        arr_t *a = atomic_load(&t->cur);
        help_resize(t, a, 1);
        for (;;) {
                slot_t *s = NULL;
                int r = probe(t, a, k, &s);
                arr_t *nx = atomic_load(&a->next);
                if (r == P_FOUND) {
                        int64_t exp = 0;
                        uint64_t c = slot_snapshot(t, s, w, &exp);
                        if (c & CT_MOVED) {
                                a = atomic_load(&a->next);
                                continue;
                        }
                        if (c & CT_LIVE && now < exp) {
                                int64_t e = exp > expire_at ? exp : expire_at;
                                bool change =
                                    fn ? fn(w, false, &e, arg) : e != exp;
                                if (!change)
                                        return PG_CT_UNCHANGED;
                                if (slot_install(t, s, c, w, e, CT_LIVE))
                                        return PG_CT_UPDATED;
                                continue;
                        }
                        /* dead here: revive in place unless a resize is
                         * under way (new entries go to the next array).
                         * Going on, seal the slot first, so that a writer
                         * that saw no resize cannot revive it here while we
                         * create the key there (both would then hold it):
                         * of its CAS and ours on ctl, one wins, and the
                         * loser probes again. */
                        if (nx && !create) {
                                a = nx; /* it may live there */
                                continue;
                        }
                        if (nx) {
                                uint64_t sealed =
                                    ((c & ~(uint64_t)(CT_VER - 1)) + CT_VER) |
                                    CT_MOVED;
                                if (!atomic_compare_exchange_strong(&s->ctl, &c,
                                                                    sealed))
                                        continue;
                                if (c & CT_LIVE) /* expired, still counted */
                                        stripe_add(t->live, k.hi, -1);
                                a = nx;
                                continue;
                        }
                        if (!create)
                                return PG_CT_ABSENT;
                        memset(w, 0, t->value_size);
                        int64_t e = expire_at;
                        if (fn && !fn(w, true, &e, arg))
                                return PG_CT_ABSENT;
                        if (!slot_install(t, s, c, w, e, CT_LIVE))
                                continue;
                        /* an expired entry not yet swept is still counted */
                        if (!(c & CT_LIVE))
                                stripe_add(t->live, k.hi, 1);
                        return PG_CT_CREATED;
                }
                if (nx) {
                        /* the same for an empty slot: close it (the mover
                         * would have), so that a writer that saw no resize
                         * cannot claim it for this key behind us */
                        if (r == P_EMPTY && create) {
                                uint64_t zero = 0;
                                if (!atomic_compare_exchange_strong(
                                        &s->lo, &zero, LO_CLOSED))
                                        continue;
                        }
                        a = nx;
                        help_resize(t, atomic_load(&t->cur), 1);
                        continue;
                }
                if (r == P_CLOSED) {
                        /* closed slots exist only once next is set */
                        a = atomic_load(&a->next);
                        continue;
                }
                if (!create)
                        return PG_CT_ABSENT;
                /* the load: this key's stripe times the stripes (exact
                 * for small arrays, where one stripe says little) */
                size_t used = a->cap < 4096 ? (size_t)stripes_sum(a->used)
                                            : (size_t)atomic_load_explicit(
                                                  &a->used[stripe_of(k.hi)].n,
                                                  memory_order_relaxed) *
                                                  STRIPES;
                if (r == P_WRAPPED || (used + 1) * 4 > a->cap * 3) {
                        /* a is the newest array (it may still be the
                         * target of a resize whose mover is slow) */
                        if (start_resize(t, a)) {
                                help_resize(t, atomic_load(&t->cur), 1);
                                continue;
                        }
                        used = (size_t)stripes_sum(a->used);
                        if (r == P_WRAPPED || (used + 1) * 8 > a->cap * 7) {
                                atomic_fetch_add(&t->full, 1);
                                return PG_CT_FULL;
                        }
                }
                memset(w, 0, t->value_size);
                int64_t e = expire_at;
                if (fn && !fn(w, true, &e, arg))
                        return PG_CT_ABSENT;
                if (!claim_publish(t, a, s, k, w, e))
                        continue;
                stripe_add(t->live, k.hi, 1);
                return PG_CT_CREATED;
        }
}

bool pg_ctable_remove(pg_ctable_t *t, pg_key_t k, int64_t now)
{
        uint64_t w[PG_CT_VALUE_MAX / 8];
        k = remap(k);
        arr_t *a = atomic_load(&t->cur);
        while (a) {
                slot_t *s = NULL;
                int r = probe(t, a, k, &s);
                arr_t *nx = atomic_load(&a->next);
                if (r == P_FOUND) {
                        int64_t exp = 0;
                        uint64_t c = slot_snapshot(t, s, w, &exp);
                        if (c & CT_MOVED) {
                                a = atomic_load(&a->next);
                                continue;
                        }
                        if (c & CT_LIVE && now < exp) {
                                uint64_t dead =
                                    (c & ~(uint64_t)(CT_VER - 1)) + CT_VER;
                                if (!atomic_compare_exchange_strong(&s->ctl, &c,
                                                                    dead))
                                        continue;
                                stripe_add(t->live, k.hi, -1);
                                return true;
                        }
                }
                a = nx;
        }
        return false;
}

void pg_ctable_expire(pg_ctable_t *t, int64_t now, size_t max_work)
{
        int64_t c = atomic_load(&t->clock);
        while (now > c && !atomic_compare_exchange_weak(&t->clock, &c, now))
                ;
        arr_t *a = atomic_load(&t->cur);
        help_resize(t, a, (int)(max_work / CHUNK) + 1);
        a = atomic_load(&t->cur);
        if (!atomic_load(&a->next)) {
                int64_t clock = atomic_load(&t->clock);
                size_t pos = atomic_fetch_add_explicit(&t->sweep_pos, max_work,
                                                       memory_order_relaxed);
                for (size_t n = 0; n < max_work && n < a->cap; n++) {
                        slot_t *s = slot_at(t, a, (pos + n) & a->mask);
                        uint64_t lo =
                            atomic_load_explicit(&s->lo, memory_order_acquire);
                        if (lo == 0 || lo == LO_CLOSED)
                                continue;
                        uint64_t ctl =
                            atomic_load_explicit(&s->ctl, memory_order_acquire);
                        if (ctl != (ctl & ~(uint64_t)(CT_WRITE | CT_MOVED)) ||
                            !(ctl & CT_LIVE))
                                continue;
                        if (atomic_load_explicit(&s->expire,
                                                 memory_order_relaxed) > clock)
                                continue;
                        uint64_t dead =
                            (ctl & ~(uint64_t)(CT_VER - 1)) + CT_VER;
                        if (atomic_compare_exchange_strong(&s->ctl, &ctl,
                                                           dead)) {
                                stripe_add(t->live,
                                           atomic_load_explicit(
                                               &s->hi, memory_order_relaxed),
                                           -1);
                                atomic_fetch_add(&t->swept, 1);
                        }
                }
        }
        if (pg_epoch_pending(t->ep))
                pg_epoch_reclaim(t->ep);
}

void pg_ctable_stats(pg_ctable_t *t, pg_ctable_stats_t *out)
{
        arr_t *a = atomic_load(&t->cur);
        out->live = (size_t)stripes_sum(t->live);
        out->cap = a->cap;
        out->bytes = atomic_load(&t->bytes);
        out->peak_bytes = atomic_load(&t->peak);
        out->full = atomic_load(&t->full);
        out->resizes = atomic_load(&t->resizes);
        out->swept = atomic_load(&t->swept);
}
