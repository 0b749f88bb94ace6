/*
 * state_strlog.h - short strings kept until an event time, in one ring.
 *
 * State entries of fixed size (a fact in the facts table) refer to a string
 * of variable length (the charge's txn_id, 1 to 64 bytes) by its position
 * here instead of holding 65 bytes each. Strings are appended in
 * processing order, each with the time it may be dropped at, and are
 * dropped from the ring's tail once that time has passed, so the ring holds
 * what live entries refer to plus what is queued behind an older string
 * still live.
 *
 * A holder whose life is extended past its string's expiry appends the
 * string again (pg_strlog_renew). pg_strlog_get returns NULL for a position
 * already dropped; a holder that keeps to these rules never sees it.
 *
 * Not thread-safe: one log belongs to one engine.
 */
#ifndef PG_STATE_STRLOG_H
#define PG_STATE_STRLOG_H

#include <stddef.h>
#include <stdint.h>

#include "util_mem.h"

typedef struct pg_strlog pg_strlog_t;

pg_strlog_t *pg_strlog_new(pg_budget_t *b);
/* The same with room for `bytes` of records from the start (a string of n
 * bytes takes 8 + n + 1 rounded up to 8: a 17-byte txn_id 32), charged to
 * b whatever the cap: the caller checks pg_strlog_bytes_for first. */
pg_strlog_t *pg_strlog_new_sized(pg_budget_t *b, size_t bytes);
/* The bytes of the ring pg_strlog_new_sized makes for `bytes`. */
size_t pg_strlog_bytes_for(size_t bytes);
void pg_strlog_free(pg_strlog_t *l);

/* Append s (len bytes, at most 255), kept while now < expire_at. Returns
 * its position (never 0), or 0 when the memory cap refuses it. */
uint64_t pg_strlog_add(pg_strlog_t *l, const char *s, size_t len,
                       int64_t expire_at);

/* The NUL-terminated string at pos, or NULL when it was dropped (or pos
 * is 0). */
const char *pg_strlog_get(const pg_strlog_t *l, uint64_t pos);

/* pos's string kept at least while now < expire_at: pos itself when it
 * already is, else a new position (0: refused by the cap). */
uint64_t pg_strlog_renew(pg_strlog_t *l, uint64_t pos, int64_t expire_at);

/* Drop strings from the tail whose expiry is at or before now (at most
 * max_work of them). */
void pg_strlog_expire(pg_strlog_t *l, int64_t now, size_t max_work);

/* Drop every string up to and including pos, live or not (for a holder
 * that itself goes in order: a ring of chain members). */
void pg_strlog_drop_through(pg_strlog_t *l, uint64_t pos);

size_t pg_strlog_count(const pg_strlog_t *l);
size_t pg_strlog_bytes(const pg_strlog_t *l);

#endif
