/*
 * state_epoch.h - epoch-based reclamation for the concurrent state tables.
 *
 * A thread that reads or writes a concurrent table does so inside a
 * section (pg_epoch_enter / pg_epoch_exit). Memory unlinked from a table
 * (the old slot array after a resize) is retired, not freed: it is freed
 * once every thread that was inside a section when it was retired has left
 * that section. Sections are meant to be long (one batch of records), so
 * their cost (two stores and a fence) is paid per batch, not per lookup.
 *
 * Threads: pg_epoch_register / unregister once per thread; enter / exit
 * only by the thread that owns the handle; retire and reclaim from any
 * registered thread. The domain outlives every handle and every table that
 * retires into it.
 */
#ifndef PG_STATE_EPOCH_H
#define PG_STATE_EPOCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PG_EPOCH_MAX_THREADS 128

typedef struct pg_epoch pg_epoch_t;

typedef struct pg_epoch_handle {
        pg_epoch_t *ep;
        int slot;
} pg_epoch_handle_t;

pg_epoch_t *pg_epoch_new(void);
/* Frees everything still retired, then the domain: call when no thread
 * uses it any more. */
void pg_epoch_free(pg_epoch_t *ep);
/* Retired blocks not yet freed. */
size_t pg_epoch_pending(pg_epoch_t *ep);

/* Claim a slot for the calling thread; false when PG_EPOCH_MAX_THREADS
 * threads are registered already. */
bool pg_epoch_register(pg_epoch_t *ep, pg_epoch_handle_t *h);
void pg_epoch_unregister(pg_epoch_handle_t *h);

void pg_epoch_enter(pg_epoch_handle_t *h);
void pg_epoch_exit(pg_epoch_handle_t *h);

/* Hand p to the domain: free_fn(p) runs once no section that could still
 * see p is open. Takes ownership of p. The caller must have unlinked p
 * (no new reader can reach it) before the call. */
void pg_epoch_retire(pg_epoch_t *ep, void *p, void (*free_fn)(void *));

/* Free what can be freed now; never waits. Returns how many were freed. */
size_t pg_epoch_reclaim(pg_epoch_t *ep);

#endif
