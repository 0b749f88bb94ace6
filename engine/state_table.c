/*
 * state_table.c - open-addressing hash table with event-time expiry.
 *
 * How it works. Slots hold {key, expire_at, value}; the 128-bit key is
 * already a hash, so its low bits pick the home slot and linear probing
 * resolves collisions. The empty slot is key (0,0) (util_hash never makes
 * it). Deletion shifts the following entries of the probe run back, so
 * there are no tombstones and probe runs stay short at load <= 3/4.
 *
 * Expiry. Each entry is announced once, at creation, in a FIFO of
 * {key, expire_at}. Entries are created in (almost) event-time order, so
 * the FIFO is (almost) sorted; expire() pops records whose expire_at has
 * passed and deletes the entry if it is really dead. An entry whose expiry
 * was extended meanwhile is announced again at the back. Every entry is
 * popped at most once per extension, so expiry is O(1) amortised per
 * insert, and max_work bounds the work of one call. Late records (out of
 * order beyond the allowed lateness) only delay their own removal.
 *
 * Growth doubles the slot array and reinserts (amortised O(1) per insert).
 * When the budget refuses a grow, the table keeps filling up to 7/8 and
 * then refuses new entries.
 */
#include "state_table.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot_hdr {
        pg_key_t key;
        int64_t expire_at;
} slot_hdr_t;

typedef struct exp_rec {
        pg_key_t key;
        int64_t expire_at;
} exp_rec_t;

struct pg_table {
        const char *name;
        size_t value_size;
        size_t slot_size;
        size_t cap;   /* slots, power of two */
        size_t count; /* occupied slots */
        unsigned char *slots;
        /* expiry FIFO: ring of qcap records, qhead..qhead+qlen */
        exp_rec_t *q;
        size_t qcap, qhead, qlen;
        pg_budget_t *budget;
};

#define MIN_CAP 64

static inline slot_hdr_t *slot_at(const pg_table_t *t, size_t i)
{
        return (slot_hdr_t *)(t->slots + i * t->slot_size);
}

static inline void *slot_value(slot_hdr_t *s)
{
        return (unsigned char *)s + sizeof(slot_hdr_t);
}

static inline bool slot_empty(const slot_hdr_t *s)
{
        return !s->key.lo && !s->key.hi;
}

pg_table_t *pg_table_new(const char *name, size_t value_size, pg_budget_t *b)
{
        pg_table_t *t = pg_xcalloc(1, sizeof(*t));
        t->name = name;
        t->value_size = value_size;
        t->slot_size = (sizeof(slot_hdr_t) + value_size + 7) & ~(size_t)7;
        t->budget = b;
        t->cap = MIN_CAP;
        t->slots = pg_xcalloc(t->cap, t->slot_size);
        t->qcap = MIN_CAP;
        t->q = pg_xmalloc(t->qcap * sizeof(exp_rec_t));
        pg_budget_take(b, 0); /* keeps peak consistent */
        b->used += t->cap * t->slot_size + t->qcap * sizeof(exp_rec_t);
        if (b->used > b->peak)
                b->peak = b->used;
        return t;
}

void pg_table_free(pg_table_t *t)
{
        if (!t)
                return;
        pg_budget_give(t->budget,
                       t->cap * t->slot_size + t->qcap * sizeof(exp_rec_t));
        free(t->slots);
        free(t->q);
        free(t);
}

/* Index of k's slot, or of the empty slot where it would go. */
static size_t find(const pg_table_t *t, pg_key_t k)
{
        size_t mask = t->cap - 1;
        size_t i = (size_t)k.lo & mask;
        for (;;) {
                slot_hdr_t *s = slot_at(t, i);
                if (slot_empty(s) || pg_key_eq(s->key, k))
                        return i;
                i = (i + 1) & mask;
        }
}

void *pg_table_lookup(const pg_table_t *t, pg_key_t k, int64_t now)
{
        slot_hdr_t *s = slot_at(t, find(t, k));
        if (slot_empty(s) || now >= s->expire_at)
                return NULL;
        return slot_value(s);
}

static bool grow(pg_table_t *t)
{
        size_t ncap = t->cap * 2;
        if (!pg_budget_take(t->budget, t->cap * t->slot_size))
                return false;
        unsigned char *old = t->slots;
        size_t ocap = t->cap;
        t->slots = pg_xcalloc(ncap, t->slot_size);
        t->cap = ncap;
        for (size_t i = 0; i < ocap; i++) {
                slot_hdr_t *s = (slot_hdr_t *)(old + i * t->slot_size);
                if (!slot_empty(s))
                        memcpy(slot_at(t, find(t, s->key)), s, t->slot_size);
        }
        free(old);
        return true;
}

static bool queue_push(pg_table_t *t, pg_key_t k, int64_t expire_at)
{
        if (t->qlen == t->qcap) {
                if (!pg_budget_take(t->budget, t->qcap * sizeof(exp_rec_t)))
                        return false;
                exp_rec_t *nq = pg_xmalloc(2 * t->qcap * sizeof(exp_rec_t));
                for (size_t i = 0; i < t->qlen; i++)
                        nq[i] = t->q[(t->qhead + i) % t->qcap];
                free(t->q);
                t->q = nq;
                t->qhead = 0;
                t->qcap *= 2;
        }
        t->q[(t->qhead + t->qlen) % t->qcap] = (exp_rec_t){k, expire_at};
        t->qlen++;
        return true;
}

void *pg_table_upsert(pg_table_t *t, pg_key_t k, int64_t now, int64_t expire_at,
                      bool *created)
{
        size_t i = find(t, k);
        slot_hdr_t *s = slot_at(t, i);
        if (!slot_empty(s)) {
                if (now >= s->expire_at) {
                        /* Dead but not yet removed: reuse in place. Its
                         * FIFO record is still queued and will announce it
                         * again when popped. */
                        memset(slot_value(s), 0, t->value_size);
                        s->expire_at = expire_at;
                        *created = true;
                } else {
                        if (expire_at > s->expire_at)
                                s->expire_at = expire_at;
                        *created = false;
                }
                return slot_value(s);
        }
        if ((t->count + 1) * 4 > t->cap * 3) {
                if (grow(t)) {
                        i = find(t, k);
                        s = slot_at(t, i);
                } else if ((t->count + 1) * 8 > t->cap * 7) {
                        return NULL;
                }
        }
        if (!queue_push(t, k, expire_at))
                return NULL;
        s->key = k;
        s->expire_at = expire_at;
        memset(slot_value(s), 0, t->value_size);
        t->count++;
        *created = true;
        return slot_value(s);
}

void pg_table_extend(pg_table_t *t, void *value, int64_t expire_at)
{
        slot_hdr_t *s =
            (slot_hdr_t *)((unsigned char *)value - sizeof(slot_hdr_t));
        if (expire_at > s->expire_at)
                s->expire_at = expire_at;
}

/* Backward-shift deletion: move later members of the probe run into the
 * hole when their home slot is at or before it (cyclically). */
static void delete_at(pg_table_t *t, size_t hole)
{
        size_t mask = t->cap - 1;
        size_t j = hole;
        for (;;) {
                j = (j + 1) & mask;
                slot_hdr_t *s = slot_at(t, j);
                if (slot_empty(s))
                        break;
                size_t home = (size_t)s->key.lo & mask;
                /* s may move to hole iff home is not in (hole, j]. */
                bool in_range = hole <= j ? (home > hole && home <= j)
                                          : (home > hole || home <= j);
                if (!in_range) {
                        memcpy(slot_at(t, hole), s, t->slot_size);
                        hole = j;
                }
        }
        memset(slot_at(t, hole), 0, t->slot_size);
        t->count--;
}

void pg_table_remove(pg_table_t *t, pg_key_t k)
{
        size_t i = find(t, k);
        if (!slot_empty(slot_at(t, i)))
                delete_at(t, i);
}

void pg_table_expire(pg_table_t *t, int64_t now, size_t max_work)
{
        while (t->qlen && max_work--) {
                exp_rec_t r = t->q[t->qhead];
                if (now < r.expire_at)
                        break;
                t->qhead = (t->qhead + 1) % t->qcap;
                t->qlen--;
                size_t i = find(t, r.key);
                slot_hdr_t *s = slot_at(t, i);
                if (slot_empty(s))
                        continue; /* removed explicitly */
                if (now >= s->expire_at)
                        delete_at(t, i);
                else
                        queue_push(t, s->key, s->expire_at); /* extended */
        }
}

size_t pg_table_count(const pg_table_t *t)
{
        return t->count;
}

size_t pg_table_bytes(const pg_table_t *t)
{
        return t->cap * t->slot_size + t->qcap * sizeof(exp_rec_t);
}
