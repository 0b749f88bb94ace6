/*
 * window_chain.c - keyed groups of recent members (see window_chain.h).
 *
 * Positions are absolute (a 64-bit count of appends); the ring keeps
 * positions [tail, head). Position p lives at ring[p % cap]. A link is
 * valid iff tail <= p < head, so a dropped member is detected without
 * generations. The ring doubles when full (amortised O(1) per append).
 */
#include "window_chain.h"

#include <stdlib.h>
#include <string.h>

typedef struct group {
        uint64_t newest; /* position + 1 */
} group_t;

struct pg_chain {
        size_t member_size;
        int64_t horizon;
        unsigned char *ring;
        uint64_t cap; /* members, power of two */
        uint64_t tail, head;
        pg_table_t *groups;
        pg_strlog_t *strings;      /* the members' strings, in member order */
        const pg_strlog_t *shared; /* strings members refer to, or NULL */
        pg_budget_t *budget;
};

pg_chain_t *pg_chain_new(const char *name, size_t member_size,
                         int64_t horizon_ms, pg_budget_t *b)
{
        pg_chain_t *c = pg_xcalloc(1, sizeof(*c));
        c->member_size = (member_size + 7) & ~(size_t)7;
        c->horizon = horizon_ms;
        c->cap = 64;
        c->ring = pg_big_calloc(c->cap * c->member_size);
        pg_budget_charge(b, c->cap * c->member_size);
        c->groups = pg_table_new(name, sizeof(group_t), b);
        c->strings = pg_strlog_new(b);
        c->budget = b;
        return c;
}

void pg_chain_free(pg_chain_t *c)
{
        if (!c)
                return;
        pg_budget_give(c->budget, c->cap * c->member_size);
        pg_table_free(c->groups);
        pg_strlog_free(c->strings);
        pg_big_free(c->ring, c->cap * c->member_size);
        free(c);
}

static inline void *at(const pg_chain_t *c, uint64_t pos)
{
        return c->ring + (pos & (c->cap - 1)) * c->member_size;
}

void pg_chain_prefetch(const pg_chain_t *c, pg_key_t key)
{
        pg_table_prefetch(c->groups, key);
}

void pg_chain_walk(const pg_chain_t *c, pg_key_t key, int64_t now,
                   pg_chain_iter_t *it)
{
        group_t *g = pg_table_lookup(c->groups, key, now);
        it->c = c;
        it->next = g ? g->newest : 0;
        it->group = NULL;
}

void *pg_chain_next(pg_chain_iter_t *it)
{
        const pg_chain_t *c = it->c;
        if (!it->next)
                return NULL;
        uint64_t pos = it->next - 1;
        if (pos < c->tail || pos >= c->head) {
                it->next = 0;
                return NULL;
        }
        pg_chain_hdr_t *h = at(c, pos);
        it->next = h->prev;
        return h;
}

static bool grow(pg_chain_t *c)
{
        if (!pg_budget_take(c->budget, c->cap * c->member_size))
                return false;
        c->ring =
            pg_ring_double(c->ring, c->cap, c->member_size, c->tail, c->head);
        c->cap *= 2;
        return true;
}

void pg_chain_open(pg_chain_t *c, pg_key_t key, int64_t t, int64_t now,
                   pg_chain_iter_t *it)
{
        int64_t exp = (t > now ? t : now) + c->horizon + 1;
        bool created;
        /* a created group is zeroed: newest 0, nothing to walk */
        group_t *g = pg_table_upsert(c->groups, key, now, exp, &created);
        it->c = c;
        it->next = g ? g->newest : 0;
        it->group = g;
}

void *pg_chain_append_open(pg_chain_t *c, pg_chain_iter_t *it, int64_t t)
{
        group_t *g = it->group;
        if (!g || (c->head - c->tail == c->cap && !grow(c)))
                return NULL;
        uint64_t pos = c->head++;
        pg_chain_hdr_t *h = at(c, pos);
        h->t = t;
        h->str = 0;
        h->prev = g->newest;
        g->newest = pos + 1;
        return h;
}

void *pg_chain_append(pg_chain_t *c, pg_key_t key, int64_t t, int64_t now)
{
        pg_chain_iter_t it;
        pg_chain_open(c, key, t, now, &it);
        return pg_chain_append_open(c, &it, t);
}

/* Members go from the tail, and their own strings (written in member
 * order: pg_chain_set_str comes right after the append) through the last
 * dropped one's. Most members refer to their fact's string instead and
 * have none here. */
void pg_chain_expire(pg_chain_t *c, int64_t now, size_t max_work)
{
        size_t n = max_work;
        uint64_t dropped = 0; /* the last dropped member's string */
        while (c->tail < c->head && n--) {
                pg_chain_hdr_t *h = at(c, c->tail);
                if (now - h->t <= c->horizon)
                        break;
                if (h->str && !(h->str & PG_CHAIN_SHARED))
                        dropped = h->str;
                c->tail++;
        }
        if (dropped)
                pg_strlog_drop_through(c->strings, dropped);
}

bool pg_chain_oldest(const pg_chain_t *c, int64_t *t)
{
        if (c->tail == c->head)
                return false;
        *t = ((const pg_chain_hdr_t *)at(c, c->tail))->t;
        return true;
}

bool pg_chain_set_str(pg_chain_t *c, void *m, const char *s, size_t len)
{
        pg_chain_hdr_t *h = m;
        /* the expiry is unused: members drop their strings themselves */
        h->str = pg_strlog_add(c->strings, s, len, INT64_MAX);
        return h->str != 0;
}

void pg_chain_share_strings(pg_chain_t *c, const pg_strlog_t *l)
{
        c->shared = l;
}

void pg_chain_ref_str(pg_chain_t *c, void *m, uint64_t pos)
{
        ((pg_chain_hdr_t *)m)->str =
            c->shared && pos ? pos | PG_CHAIN_SHARED : 0;
}

const char *pg_chain_str(const pg_chain_t *c, const void *m)
{
        uint64_t p = ((const pg_chain_hdr_t *)m)->str;
        const char *s = p & PG_CHAIN_SHARED
                            ? pg_strlog_get(c->shared, p & ~PG_CHAIN_SHARED)
                            : pg_strlog_get(c->strings, p);
        return s ? s : "";
}

size_t pg_chain_bytes(const pg_chain_t *c)
{
        return c->cap * c->member_size + pg_table_bytes(c->groups) +
               pg_strlog_bytes(c->strings);
}

size_t pg_chain_count(const pg_chain_t *c)
{
        return (size_t)(c->head - c->tail);
}
