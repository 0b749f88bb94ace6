/*
 * state_table.c - open-addressing hash table with event-time expiry.
 *
 * How it works. Slots hold {key, expire_at, value}; the 128-bit key is
 * already a hash, so its low bits pick the home slot and linear probing
 * resolves collisions. The empty slot is key (0,0) (util_hash never makes
 * it). Deletion shifts the following entries of the probe run back, so
 * there are no tombstones and probe runs stay short at load <= 3/4.
 *
 * Expiry is a sweep, not a list: every created entry pays for SWEEP_STEP (4)
 * slots of a cursor that walks the slot array and deletes the entries dead
 * at the creating call's time, so a whole pass takes cap / SWEEP_STEP
 * creations (at most a quarter of the slots hold dead entries between
 * passes; 8 slots, an eighth, cost 5 % more of the engine's instructions
 * for memory the pass before a doubling gets back anyway), and no
 * per-entry expiry record is kept (that record, 24 bytes
 * in a FIFO, used to be a third of a small entry's memory). Before the
 * array doubles, one full pass removes whatever is dead: the table grows
 * only when live entries need the room. A dead entry is never returned in
 * between, so when the sweep gets to it changes memory only, never a
 * result. The table keeps a lower bound of its entries' expiries (the
 * least of those created since the last full pass, and of what that pass
 * kept): before it, there is nothing to sweep, so a table whose horizon
 * has not come round yet (30 days of facts) pays nothing. pg_table_expire
 * sweeps on demand (tests, and callers that want memory back at once).
 *
 * Growth is incremental. Doubling allocates the next array and makes it
 * the current one; the old array stays as it is and every upsert first
 * moves MOVE_STEP of its slots, in index order, into the current one
 * (entries dead by then are left behind). A whole table reinserted at
 * once stalled the engine in proportion to its size (a 192 MiB facts
 * array on the 2-core VM: about 40 ms of reinsertion after 70 ms of
 * faulting the new array in; 10M facts, over a second). The new array is
 * still faulted in whole when it is allocated (pg_big_calloc): faulting it
 * in 64 KiB per upsert instead took the rest of the stall away but cost
 * 10-15 % of the engine's throughput (the page zeroing, spread over
 * thousands of records, evicted their state from the caches each time),
 * see docs/PERFORMANCE.md.
 *
 * While an old array is there: new keys go to the current array only; a
 * key is looked up in the current array, then (if absent there) in the
 * old one, where an entry counts only at or past the mover (slots before
 * it were moved; they are left as they were so that probe runs stay
 * whole). An entry of the old array that is upserted or removed before
 * the mover gets to it is moved (or dropped) at once and marked GONE
 * (dead at any time, skipped by the mover). Moving MOVE_STEP (8) slots per
 * upsert ends the move after old cap / 8 upserts (cap / 16), and the
 * current array, twice as large, holds at most 3/8 of its slots from the
 * old one: with at most cap / 16 creations meanwhile it stays under 7/16,
 * far from its 3/4 load limit (a creation that reaches the limit anyway
 * finishes the move first). Both arrays are charged to the
 * budget while both exist, so a doubling needs room for the new array
 * whole.
 *
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

struct pg_table {
        const char *name;
        size_t value_size;
        size_t slot_size;
        size_t cap;   /* slots, power of two */
        size_t count; /* occupied slots */
        unsigned char *slots;
        size_t cursor;      /* the sweep's next slot */
        uint64_t created;   /* entries created so far */
        uint64_t last_pass; /* created at the last full pass */
        int64_t earliest;   /* no entry expires before this (a bound) */
        pg_budget_t *budget;
        /* the array being moved out of (growth), or NULL */
        unsigned char *old;
        size_t ocap;     /* its slots (cap / 2) */
        size_t mover;    /* its slots [0, mover) are moved */
        size_t ocount;   /* its entries at or past the mover, not GONE */
        uint64_t shifts; /* changes that move entries between slots */
};

#define MIN_CAP 64
#define SWEEP_STEP 4   /* slots swept per created entry */
#define MOVE_STEP 8    /* old slots moved per upsert while growing */
#define GONE INT64_MIN /* expiry of an old entry moved or removed early */

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

static size_t slot_size_for(size_t value_size)
{
        return (sizeof(slot_hdr_t) + value_size + 7) & ~(size_t)7;
}

/* The least power-of-two capacity that holds n entries under the load at
 * which the table grows (3/4, pg_table_upsert). */
static size_t cap_for(size_t n)
{
        size_t cap = MIN_CAP;
        while ((n + 1) * 4 > cap * 3)
                cap *= 2;
        return cap;
}

size_t pg_table_bytes_for(size_t value_size, size_t entries)
{
        return cap_for(entries) * slot_size_for(value_size);
}

pg_table_t *pg_table_new_sized(const char *name, size_t value_size,
                               pg_budget_t *b, size_t entries)
{
        pg_table_t *t = pg_xcalloc(1, sizeof(*t));
        t->name = name;
        t->value_size = value_size;
        t->slot_size = slot_size_for(value_size);
        t->budget = b;
        t->cap = cap_for(entries);
        t->slots = pg_big_calloc(t->cap * t->slot_size);
        t->earliest = INT64_MAX;
        pg_budget_charge(b, t->cap * t->slot_size);
        return t;
}

pg_table_t *pg_table_new(const char *name, size_t value_size, pg_budget_t *b)
{
        return pg_table_new_sized(name, value_size, b, 0);
}

static void old_free(pg_table_t *t)
{
        pg_budget_give(t->budget, t->ocap * t->slot_size);
        pg_big_free(t->old, t->ocap * t->slot_size);
        t->old = NULL;
        t->ocap = t->mover = t->ocount = 0;
}

void pg_table_free(pg_table_t *t)
{
        if (!t)
                return;
        if (t->old)
                old_free(t);
        pg_budget_give(t->budget, t->cap * t->slot_size);
        pg_big_free(t->slots, t->cap * t->slot_size);
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

/* k's entry in the old array if it is at or past the mover (GONE ones
 * included: dead at any time), else NULL. */
static slot_hdr_t *find_old(const pg_table_t *t, pg_key_t k)
{
        size_t mask = t->ocap - 1;
        size_t i = (size_t)k.lo & mask;
        for (;;) {
                slot_hdr_t *s = (slot_hdr_t *)(t->old + i * t->slot_size);
                if (slot_empty(s))
                        return NULL;
                if (pg_key_eq(s->key, k))
                        return i >= t->mover ? s : NULL;
                i = (i + 1) & mask;
        }
}

/* An old entry the mover must skip: moved early, removed or dead. */
static void old_drop(pg_table_t *t, slot_hdr_t *o)
{
        if (o->expire_at != GONE) {
                o->expire_at = GONE;
                t->ocount--;
        }
}

void *pg_table_lookup(const pg_table_t *t, pg_key_t k, int64_t now)
{
        slot_hdr_t *s = slot_at(t, find(t, k));
        if (slot_empty(s) && (!t->old || !(s = find_old(t, k))))
                return NULL;
        if (now >= s->expire_at)
                return NULL;
        return slot_value(s);
}

void pg_table_prefetch(const pg_table_t *t, pg_key_t k)
{
        const unsigned char *s =
            (const unsigned char *)slot_at(t, (size_t)k.lo & (t->cap - 1));
        __builtin_prefetch(s, 1);
        /* a slot may straddle two cache lines */
        __builtin_prefetch(s + t->slot_size - 1, 1);
        if (t->old) {
                s = t->old + ((size_t)k.lo & (t->ocap - 1)) * t->slot_size;
                __builtin_prefetch(s, 1);
                __builtin_prefetch(s + t->slot_size - 1, 1);
        }
}

/* Move up to n slots of the old array (all of them: SIZE_MAX); the last
 * one frees it. */
static void move_some(pg_table_t *t, int64_t now, size_t n)
{
        const size_t ss = t->slot_size;
        while (n-- && t->mover < t->ocap) {
                slot_hdr_t *o = (slot_hdr_t *)(t->old + t->mover++ * ss);
                if (slot_empty(o) || o->expire_at == GONE)
                        continue;
                t->ocount--;
                if (now >= o->expire_at)
                        continue; /* dead: left behind */
                memcpy(slot_at(t, find(t, o->key)), o, ss);
                t->count++;
                t->shifts++;
        }
        if (t->mover == t->ocap)
                old_free(t);
}

/* Double the slot array: the old one is moved out of incrementally. Only
 * when no move is under way. */
static bool grow(pg_table_t *t)
{
        size_t ncap = t->cap * 2;
        /* both arrays are held until the move ends */
        if (!pg_budget_take(t->budget, ncap * t->slot_size))
                return false;
        t->old = t->slots;
        t->ocap = t->cap;
        t->mover = 0;
        t->ocount = t->count;
        t->slots = pg_big_calloc(ncap * t->slot_size);
        t->cap = ncap;
        t->count = 0;
        t->cursor = 0;
        t->shifts++;
        return true;
}

static void delete_at(pg_table_t *t, size_t hole);
static void sweep(pg_table_t *t, int64_t now, size_t n);

void *pg_table_upsert(pg_table_t *t, pg_key_t k, int64_t now, int64_t expire_at,
                      bool *created)
{
        if (t->old)
                move_some(t, now, MOVE_STEP);
        size_t i = find(t, k);
        slot_hdr_t *s = slot_at(t, i);
        if (slot_empty(s) && t->old) {
                slot_hdr_t *o = find_old(t, k);
                if (o && now < o->expire_at) {
                        /* live in the old array: moved now, then found */
                        memcpy(s, o, t->slot_size);
                        old_drop(t, o);
                        t->count++;
                } else if (o) {
                        old_drop(t, o); /* dead: created afresh below */
                }
        }
        if (!slot_empty(s)) {
                if (now >= s->expire_at) {
                        /* dead but not yet swept: reuse in place */
                        memset(slot_value(s), 0, t->value_size);
                        s->expire_at = expire_at;
                        if (expire_at < t->earliest)
                                t->earliest = expire_at;
                        *created = true;
                } else {
                        if (expire_at > s->expire_at)
                                s->expire_at = expire_at;
                        *created = false;
                }
                return slot_value(s);
        }
        /* a new entry: its share of the sweep first (the sweep moves
         * slots), and at the load limit a full pass before growing */
        uint64_t before = t->shifts;
        sweep(t, now, SWEEP_STEP);
        t->created++;
        if ((t->count + 1) * 4 > t->cap * 3) {
                /* a move still under way ends first (rare: see the top) */
                if (t->old)
                        move_some(t, now, SIZE_MAX);
                /* a full pass at most every cap/8 creations: at the cap,
                 * with growth refused, not one per insert */
                if (t->created - t->last_pass >= t->cap / 8) {
                        t->last_pass = t->created;
                        sweep(t, now, t->cap);
                }
                if ((t->count + 1) * 8 > t->cap * 5 && !grow(t) &&
                    (t->count + 1) * 8 > t->cap * 7)
                        return NULL;
        }
        if (t->shifts != before) { /* slots moved */
                i = find(t, k);
                s = slot_at(t, i);
        }
        if (expire_at < t->earliest)
                t->earliest = expire_at;
        s->key = k;
        s->expire_at = expire_at;
        memset(slot_value(s), 0, t->value_size);
        t->count++;
        *created = true;
        return slot_value(s);
}

int64_t pg_table_expiry(const void *value)
{
        return ((const slot_hdr_t *)((const unsigned char *)value -
                                     sizeof(slot_hdr_t)))
            ->expire_at;
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
/* not inlined: the sweep loop keeps its state in registers */
__attribute__((noinline)) static void delete_at(pg_table_t *t, size_t hole)
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
        t->shifts++;
}

void pg_table_remove(pg_table_t *t, pg_key_t k)
{
        size_t i = find(t, k);
        if (!slot_empty(slot_at(t, i))) {
                delete_at(t, i);
        } else if (t->old) {
                slot_hdr_t *o = find_old(t, k);
                if (o)
                        old_drop(t, o);
        }
}

/* Examine n slots from the cursor (at most one pass), deleting the
 * entries dead at now. A deletion shifts later entries of the run back into
 * the hole, so the slot is examined again; entries only ever move into
 * slots the cursor has not passed yet, or stay where they are, so one pass
 * finds every entry dead at its start. */
static void sweep(pg_table_t *t, int64_t now, size_t n)
{
        if (now < t->earliest)
                return; /* nothing can be dead yet */
        bool pass = n >= t->cap;
        if (pass)
                n = t->cap;
        int64_t least = INT64_MAX; /* of the survivors, for a full pass */
        /* the loop's state in locals: a slot's words are uint64_t too, and
         * the compiler would otherwise reload t->cursor and t->slots after
         * every read of one (about 40 instructions a slot, not 10) */
        const size_t mask = t->cap - 1, size = t->slot_size;
        unsigned char *const slots = t->slots;
        size_t cur = t->cursor;
        while (n--) {
                slot_hdr_t *s = (slot_hdr_t *)(slots + cur * size);
                /* the expiry first: a live entry (most) is told by one
                 * comparison, an empty slot's expiry is 0; what a deletion
                 * moves in is examined too */
                while (now >= s->expire_at && !slot_empty(s))
                        delete_at(t, cur);
                if (pass && s->expire_at < least && !slot_empty(s))
                        least = s->expire_at;
                cur = (cur + 1) & mask;
        }
        t->cursor = cur;
        if (pass)
                t->earliest = least;
}

void pg_table_expire(pg_table_t *t, int64_t now, size_t max_work)
{
        /* while a move is under way the work goes to it (it leaves the
         * dead behind); a sweep, and a full pass's bound of the expiries,
         * only once every entry is in one array */
        if (t->old) {
                move_some(t, now, max_work);
                if (t->old)
                        return;
        }
        sweep(t, now, max_work);
}

size_t pg_table_count(const pg_table_t *t)
{
        return t->count + t->ocount;
}

size_t pg_table_bytes(const pg_table_t *t)
{
        return (t->cap + t->ocap) * t->slot_size;
}
