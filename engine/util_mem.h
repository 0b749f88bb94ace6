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

/* Allocation that never returns NULL (aborts with a message instead). */
void *pg_xmalloc(size_t n);
void *pg_xcalloc(size_t count, size_t n);
void *pg_xrealloc(void *p, size_t n);

#endif
