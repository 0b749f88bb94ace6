/*
 * state_table.h - the engine's keyed state: a hash table whose entries
 * expire by event time.
 *
 * Every index of the engine (transport dedupe, rrn facts, pairing groups,
 * aggregate groups, refund caps) is one of these tables, so that a later
 * lock-free or sharded table can replace this module without touching the
 * detectors: they only use lookup / upsert / remove / expire.
 *
 * An entry is live while now < expire_at; a dead entry is never returned,
 * even before the table's sweep has physically removed it. Values are
 * fixed-size, zeroed when created, and stay where they are until the next
 * upsert or expire call on the same table (a pointer is valid until then).
 * Growth is incremental: no call does more than a bounded share of a
 * doubling's work (state_table.c says how).
 *
 * Not thread-safe: one table belongs to one engine, driven by one thread.
 */
#ifndef PG_STATE_TABLE_H
#define PG_STATE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util_hash.h"
#include "util_mem.h"

typedef struct pg_table pg_table_t;

/* value_size: bytes of value per entry. Memory is taken from b. */
pg_table_t *pg_table_new(const char *name, size_t value_size, pg_budget_t *b);
/* The same with room for `entries` live entries from the start (no growth
 * until they are there; growth past them as usual). Its array is charged
 * to b whatever the cap: the caller checks pg_table_bytes_for first. */
pg_table_t *pg_table_new_sized(const char *name, size_t value_size,
                               pg_budget_t *b, size_t entries);
/* The bytes of the array pg_table_new_sized makes for these arguments. */
size_t pg_table_bytes_for(size_t value_size, size_t entries);
void pg_table_free(pg_table_t *t);

/* The live value for k at time now, or NULL. */
void *pg_table_lookup(const pg_table_t *t, pg_key_t k, int64_t now);
/* Start loading k's home slot into the cache (a hint: nothing changes), so
 * that a lookup or upsert of k a little later does not wait for memory. */
void pg_table_prefetch(const pg_table_t *t, pg_key_t k);

/*
 * The live value for k, created (zeroed, *created = true) when absent or
 * dead. Its expiry becomes max(current, expire_at). Returns NULL when the
 * memory cap refuses the new entry (the caller counts it).
 */
void *pg_table_upsert(pg_table_t *t, pg_key_t k, int64_t now, int64_t expire_at,
                      bool *created);

/* The expiry of a live value returned by lookup/upsert. */
int64_t pg_table_expiry(const void *value);

/* Raise the expiry of a live value returned by lookup/upsert. */
void pg_table_extend(pg_table_t *t, void *value, int64_t expire_at);

void pg_table_remove(pg_table_t *t, pg_key_t k);

/*
 * Physically remove entries dead at now, examining at most max_work slots
 * (one pass of the table at most; while the table grows, slots of the
 * array it is moving out of, dead entries left behind). Creating entries
 * already sweeps the table as it goes, so callers need this only to have
 * memory back at once; lookups are correct either way.
 */
void pg_table_expire(pg_table_t *t, int64_t now, size_t max_work);

size_t pg_table_count(const pg_table_t *t);
size_t pg_table_bytes(const pg_table_t *t);

#endif
