/*
 * window_chain.h - the recent members of keyed groups, newest first.
 *
 * The pairing detectors (retry_duplicate, repeated_swipe) ask one question
 * per charge: "which earlier charges of my group are within my window?".
 * A chain answers it without scanning anything but the group: members live
 * in one ring in processing order, each linking to the previous member of
 * its group, and a state table maps the group key to its newest member.
 *
 * Members are fixed-size (member_size bytes, starting with pg_chain_hdr_t)
 * and are dropped from the ring's tail once older than the horizon. A link
 * to a dropped member ends the walk: members are dropped oldest first, so
 * everything behind it is gone too. A member may carry one short string
 * (a txn_id), kept in the chain's string log in member order and dropped
 * with the member, so it is there exactly as long as the member is; or it
 * may refer to a string kept elsewhere for longer (the engine's, with the
 * charge's fact), which costs the chain nothing.
 *
 * Not thread-safe: one chain belongs to one engine.
 */
#ifndef PG_WINDOW_CHAIN_H
#define PG_WINDOW_CHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "state_strlog.h"
#include "state_table.h"

typedef struct pg_chain_hdr {
        int64_t t;     /* event time of the member */
        uint64_t prev; /* ring position of the previous member + 1; 0: none */
        uint64_t str;  /* its string in the chain's string log, or with
                        * PG_CHAIN_SHARED in the shared one; 0: none */
} pg_chain_hdr_t;

#define PG_CHAIN_SHARED (UINT64_C(1) << 63)

typedef struct pg_chain pg_chain_t;

/* horizon_ms: how long after its event time a member may still be asked
 * for (window + allowed lateness). */
pg_chain_t *pg_chain_new(const char *name, size_t member_size,
                         int64_t horizon_ms, pg_budget_t *b);
void pg_chain_free(pg_chain_t *c);

typedef struct pg_chain_iter {
        const pg_chain_t *c;
        uint64_t next; /* position + 1; 0: done */
        void *group;   /* pg_chain_open: key's group, NULL when refused */
} pg_chain_iter_t;

/* Walk the members of key, newest first. */
/* Start loading key's group into the cache (a hint, see
 * pg_table_prefetch). */
void pg_chain_prefetch(const pg_chain_t *c, pg_key_t key);
void pg_chain_walk(const pg_chain_t *c, pg_key_t key, int64_t now,
                   pg_chain_iter_t *it);
void *pg_chain_next(pg_chain_iter_t *it);

/* Append a member of key with event time t; returns it (header filled,
 * the rest NOT initialised: the caller fills every field it will read) or
 * NULL when the memory cap refuses it. */
void *pg_chain_append(pg_chain_t *c, pg_key_t key, int64_t t, int64_t now);

/* The walk of a member about to be appended, and its append, with one
 * lookup of key's group instead of two: pg_chain_open makes the group
 * ready for a member with event time t (as pg_chain_append would) and
 * walks it as pg_chain_walk does; pg_chain_append_open then appends that
 * member. Nothing else may use c in between. */
void pg_chain_open(pg_chain_t *c, pg_key_t key, int64_t t, int64_t now,
                   pg_chain_iter_t *it);
void *pg_chain_append_open(pg_chain_t *c, pg_chain_iter_t *it, int64_t t);

/* Give member m (the newest, just appended) its string; false when the
 * memory cap refuses it (the member then has none: ""). */
bool pg_chain_set_str(pg_chain_t *c, void *m, const char *s, size_t len);
/* Strings kept elsewhere: members may refer to strings of l
 * (pg_chain_ref_str) instead of keeping their own. */
void pg_chain_share_strings(pg_chain_t *c, const pg_strlog_t *l);
/* Give member m (the newest, just appended) the string at pos in the
 * shared log (pg_chain_share_strings); the caller keeps it there as long
 * as the member is in the ring (pg_chain_oldest). */
void pg_chain_ref_str(pg_chain_t *c, void *m, uint64_t pos);
/* Member m's string ("" when none, or when a shared one is gone). */
const char *pg_chain_str(const pg_chain_t *c, const void *m);

/* The event time of the oldest member still in the ring (expired or not:
 * the expiry's work is bounded); false when there is none. */
bool pg_chain_oldest(const pg_chain_t *c, int64_t *t);

/* Drop members older than now - horizon from the ring (bounded by
 * max_work); the group table sweeps itself. */
void pg_chain_expire(pg_chain_t *c, int64_t now, size_t max_work);

size_t pg_chain_bytes(const pg_chain_t *c);
/* Members still in the ring. */
size_t pg_chain_count(const pg_chain_t *c);

#endif
