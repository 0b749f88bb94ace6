/*
 * detect_aggregate.c - aggregate (DOMAIN.md detector 5): a sliding-window
 * count / sum / distinct per group, one alert when it reaches the
 * threshold, re-armed when it falls back below.
 *
 * How it works. Matching records become events in a FIFO ring in
 * processing order (so in event-time order, late records aside). Each group
 * keeps its running count, sum and number of distinct values; a distinct
 * table counts each (group, value) pair inside the window. Expiry pops
 * events older than now - window from the ring and takes them off their
 * group, so a group's value is always exact for [now - window, now]; every
 * event is pushed and popped once: O(1) amortised per record, no scan.
 * A group re-arms the moment expiry takes its value below the threshold,
 * which is exact because only expiry lowers a value.
 */
#include "engine_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_expr.h"

typedef struct agg_event {
        int64_t t;
        int64_t amount;
        pg_key_t group;
        pg_key_t value; /* distinct: the value's key; (0,0) when absent */
        pg_str_t txn;   /* incident rules: the record's txn_id */
} agg_event_t;

typedef struct agg_group {
        int64_t count;
        int64_t sum;
        int64_t ndistinct;
        uint8_t armed;
} agg_group_t;

bool pg_detect_aggregate_init(pg_engine_t *e, int ri)
{
        pg_agg_state_t *s = &e->rule_state[ri].agg;
        s->groups = pg_table_new("aggregate", sizeof(agg_group_t), &e->budget);
        s->distinct =
            pg_table_new("aggregate-distinct", sizeof(int64_t), &e->budget);
        s->cap = 64;
        s->ring = pg_xmalloc(s->cap * sizeof(agg_event_t));
        pg_budget_charge(&e->budget, s->cap * sizeof(agg_event_t));
        return true;
}

void pg_detect_aggregate_free(pg_engine_t *e, int ri)
{
        pg_agg_state_t *s = &e->rule_state[ri].agg;
        pg_budget_give(&e->budget, s->cap * sizeof(agg_event_t));
        pg_table_free(s->groups);
        pg_table_free(s->distinct);
        free(s->ring);
}

size_t pg_detect_aggregate_bytes(const pg_engine_t *e, int ri)
{
        const pg_agg_state_t *s = &e->rule_state[ri].agg;
        return s->cap * sizeof(agg_event_t) + pg_table_bytes(s->groups) +
               pg_table_bytes(s->distinct);
}

static inline agg_event_t *ev_at(const pg_agg_state_t *s, uint64_t pos)
{
        return (agg_event_t *)s->ring + (pos & (s->cap - 1));
}

static int64_t value_of(const pg_rule_t *r, const agg_group_t *g)
{
        switch (r->fn) {
        case PG_AGG_SUM:
                return g->sum;
        case PG_AGG_DISTINCT:
                return g->ndistinct;
        default:
                return g->count;
        }
}

static pg_key_t distinct_key(pg_key_t group, pg_key_t value)
{
        pg_keyb_t kb;
        pg_keyb_init(&kb, PG_TAG_AGGV);
        pg_keyb_bytes(&kb, &group, sizeof(group));
        pg_keyb_bytes(&kb, &value, sizeof(value));
        return pg_keyb_done(&kb);
}

/* Feed one field's value into a key; absent optional values are marked. */
void pg_detect_aggregate_expire(pg_engine_t *e, int ri)
{
        const pg_rule_t *r = &e->rs->rules[ri];
        pg_agg_state_t *s = &e->rule_state[ri].agg;
        int64_t limit = e->now - r->window_ms; /* events with t < limit go */
        while (s->tail < s->head) {
                agg_event_t *ev = ev_at(s, s->tail);
                if (ev->t >= limit)
                        break;
                s->tail++;
                agg_group_t *g = pg_table_lookup(s->groups, ev->group, e->now);
                if (!g)
                        continue;
                g->count--;
                g->sum -= ev->amount;
                if (ev->value.lo || ev->value.hi) {
                        pg_key_t dk = distinct_key(ev->group, ev->value);
                        int64_t *n = pg_table_lookup(s->distinct, dk, e->now);
                        if (n && --*n == 0) {
                                pg_table_remove(s->distinct, dk);
                                g->ndistinct--;
                        }
                }
                if (value_of(r, g) < r->threshold)
                        g->armed = 1;
        }
}

static bool ring_room(pg_engine_t *e, pg_agg_state_t *s)
{
        if (s->head - s->tail < s->cap)
                return true;
        if (!pg_budget_take(&e->budget, s->cap * sizeof(agg_event_t)))
                return false;
        uint64_t ncap = s->cap * 2;
        agg_event_t *nr = pg_xmalloc(ncap * sizeof(agg_event_t));
        for (uint64_t p = s->tail; p < s->head; p++)
                nr[p & (ncap - 1)] = *ev_at(s, p);
        free(s->ring);
        s->ring = (unsigned char *)nr;
        s->cap = ncap;
        return true;
}

void pg_detect_aggregate(pg_engine_t *e, int ri, const pg_record_t *rec)
{
        const pg_rule_t *r = &e->rs->rules[ri];
        pg_agg_state_t *s = &e->rule_state[ri].agg;
        if (r->where && !pg_expr_eval(r->where, rec))
                return;
        pg_keyb_t kb;
        pg_keyb_init(&kb, PG_TAG_AGG);
        for (int i = 0; i < r->n_group_by; i++)
                if (!pg_engine_key_field(&kb, rec, r->group_by[i]))
                        return; /* lacks a group_by field: in no group */
        pg_key_t gk = pg_keyb_done(&kb);
        pg_key_t vk = {0, 0};
        if (r->fn == PG_AGG_DISTINCT) {
                pg_keyb_init(&kb, PG_TAG_AGGV);
                if (pg_engine_key_field(&kb, rec, r->distinct_field))
                        vk = pg_keyb_done(&kb);
        }
        int64_t t = rec->event_time;
        int64_t exp = (t > e->now ? t : e->now) + r->window_ms + 2;
        bool created;
        if (!ring_room(e, s)) {
                e->st.state_full++;
                return;
        }
        agg_group_t *g = pg_table_upsert(s->groups, gk, e->now, exp, &created);
        if (!g) {
                e->st.state_full++;
                return;
        }
        if (created || value_of(r, g) < r->threshold)
                g->armed = 1;
        if (vk.lo || vk.hi) {
                int64_t *n = pg_table_upsert(s->distinct, distinct_key(gk, vk),
                                             e->now, exp, &created);
                if (!n) {
                        e->st.state_full++;
                        vk = (pg_key_t){0, 0};
                } else if ((*n)++ == 0) {
                        g->ndistinct++;
                }
        }
        g->count++;
        g->sum += rec->amount;
        agg_event_t *ev = ev_at(s, s->head++);
        ev->t = t;
        ev->amount = rec->amount;
        ev->group = gk;
        ev->value = vk;
        if (r->on_findings)
                ev->txn = rec->txn_id;
        else
                ev->txn.len = 0;

        int64_t v = value_of(r, g);
        if (v < r->threshold || !g->armed)
                return;
        g->armed = 0;
        pg_alert_t a;
        pg_engine_alert_init(e, &a, r, PG_FIND_AGGREGATE, r->id, rec);
        if (r->on_findings) {
                /* an incident names the group's most recent affected
                 * records: a walk back over the window's events, done once
                 * per incident */
                for (uint64_t p = s->head - 1;
                     p-- > s->tail && a.n_txn_ids < PG_MAX_RELATED + 1;) {
                        const agg_event_t *q = ev_at(s, p);
                        if (q->group.lo == gk.lo && q->group.hi == gk.hi &&
                            q->txn.len)
                                a.txn_ids[a.n_txn_ids++] = q->txn.s;
                }
        }
        static const char *const fn[] = {"count", "sum", "distinct"};
        int n = snprintf(a.reason, sizeof(a.reason),
                         "%s%s %" PRId64 " reached threshold %" PRId64
                         " within %" PRId64 " s for",
                         r->on_findings ? "incident: " : "", fn[r->fn], v,
                         r->threshold, r->window_ms / 1000);
        for (int i = 0;
             i < r->n_group_by && n > 0 && (size_t)n < sizeof(a.reason); i++) {
                pg_field_t f = r->group_by[i];
                char val[PG_STR_MAX + 24];
                if (pg_record_field_type(f) == PG_FT_STRING) {
                        snprintf(val, sizeof(val), "%s",
                                 pg_record_str(rec, f)->s);
                } else {
                        bool present;
                        snprintf(val, sizeof(val), "%" PRId64,
                                 pg_record_int(rec, f, &present));
                }
                n += snprintf(a.reason + n, sizeof(a.reason) - (size_t)n,
                              " %s=%s", pg_record_field_name(f), val);
        }
        pg_engine_emit_alert(e, &a, PG_FIND_AGGREGATE, r);
}
