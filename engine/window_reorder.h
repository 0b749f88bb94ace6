/*
 * window_reorder.h - the reorder buffer: records in arrival order in,
 * records in (event time, arrival) order out, held back by the allowed
 * lateness (SEMANTICS.md section 2).
 *
 * Records are copied into a pool of fixed-size slots that grows in chunks
 * and is reused, so the steady state allocates nothing per record.
 * Not thread-safe: one buffer per engine.
 */
#ifndef PG_WINDOW_REORDER_H
#define PG_WINDOW_REORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "util_mem.h"

typedef struct pg_reorder pg_reorder_t;

pg_reorder_t *pg_reorder_new(pg_budget_t *b);
void pg_reorder_free(pg_reorder_t *r);
/* Copy rec in, with arrival sequence number seq. */
/* Returns the buffer's copy of rec, which the caller may complete (its
 * engine-private fields) before the next pop. */
pg_record_t *pg_reorder_push(pg_reorder_t *r, const pg_record_t *rec,
                             uint64_t seq);
/* The oldest buffered record, or NULL when empty. Valid until pop. */
const pg_record_t *pg_reorder_peek(const pg_reorder_t *r);
/* Remove the oldest; the record returned stays valid until the next push
 * or pop_release. */
pg_record_t *pg_reorder_pop(pg_reorder_t *r);
/* Give a popped record's slot back. */
void pg_reorder_release(pg_reorder_t *r, pg_record_t *rec);
size_t pg_reorder_len(const pg_reorder_t *r);
size_t pg_reorder_bytes(const pg_reorder_t *r);

#endif
