/*
 * util_mem.h - counted allocation for engine state.
 *
 * Every table, ring and slab of the engine allocates through a budget, so
 * state memory is known at all times and capped: a grow that would pass the
 * cap is refused (the caller counts it and goes on without the new state),
 * never a crash. Allocation failure of the system allocator is fatal: the
 * engine cannot keep its promises without memory, and exits loudly.
 */
#ifndef PG_UTIL_MEM_H
#define PG_UTIL_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pg_budget {
        size_t cap; /* bytes; 0 = unlimited */
        size_t used;
        size_t peak;
        uint64_t refused; /* grows refused by the cap */
} pg_budget_t;

/* Reserve n bytes against b; false (and b->refused++) if over the cap. */
bool pg_budget_take(pg_budget_t *b, size_t n);
void pg_budget_give(pg_budget_t *b, size_t n);
/* Count n bytes against b whatever the cap: the least a structure needs
 * to exist (a new table's first slots), which the cap cannot refuse. */
void pg_budget_charge(pg_budget_t *b, size_t n);

/* Allocation that never returns NULL (aborts with a message instead). */
void *pg_xmalloc(size_t n);
void *pg_xcalloc(size_t count, size_t n);
void *pg_xrealloc(void *p, size_t n);

/* Zeroed memory for a large array of state (a table's slots, a ring),
 * freed with pg_big_free and the same size. From PG_BIG_MIN bytes on it is
 * mapped on its own, in transparent huge pages where the kernel gives
 * them (TLB misses: see util_mem.c), with every page faulted in at once:
 * a table that doubles touches every page of the new array while it
 * reinserts, and one kernel call that fills them costs far less than a
 * page fault for each 4 KiB (in a VM, a fault is an exit; 170,000 of them
 * were a fifth of the refund-anomaly rule's time on 1M records, see
 * docs/PERFORMANCE.md). Smaller arrays come from calloc. */
#define PG_BIG_MIN ((size_t)2 << 20)
void *pg_big_calloc(size_t n);
void pg_big_free(void *p, size_t n);
/* Double a ring of cap units (a power of two) of unit bytes each, from
 * pg_big_calloc(cap * unit), whose live units are the absolute positions
 * [from, to), unit p at index p mod cap: returns the ring of 2 * cap
 * units (freed with pg_big_free(ring, 2 * cap * unit)) with each live unit
 * at index p mod 2 * cap. The old ring is gone. A big ring grows in place
 * (mremap: its pages move, none is copied or faulted in, the new half
 * faults in as it fills) and only the run that belongs higher up is
 * copied, so a doubling costs at most the live bytes once, never the
 * whole new array. Units outside [from, to) are left as they are. */
void *pg_ring_double(void *ring, size_t cap, size_t unit, uint64_t from,
                     uint64_t to);

#endif
