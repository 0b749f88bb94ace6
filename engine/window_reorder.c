/*
 * window_reorder.c - reorder buffer (see window_reorder.h).
 *
 * Two parts, both ordered by (event_time, seq): a FIFO run for records
 * that arrive in order (event time not below the run's last, which is the
 * common case: the run stays sorted because seq only grows), and a binary
 * min-heap for the others. Peek and pop take the smaller of the run's head
 * and the heap's top. In-order records cost O(1); an out-of-order one costs
 * O(log n) in the heap's size, which the allowed lateness bounds (rate x
 * lateness). The records themselves live in chunks of CHUNK slots;
 * released slots go on a free stack.
 */
#include "window_reorder.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK 1024

struct pg_reorder {
        pg_record_t **heap;
        size_t n, heap_cap;
        pg_record_t **run; /* ring of run_cap: run_head .. run_head+run_n */
        size_t run_head, run_n, run_cap;
        int64_t run_last_t; /* event time of the run's newest record */
        pg_record_t **free_stack;
        size_t nfree, free_cap;
        pg_record_t **chunks;
        size_t nchunks, chunks_cap;
        pg_budget_t *budget;
};

pg_reorder_t *pg_reorder_new(pg_budget_t *b)
{
        pg_reorder_t *r = pg_xcalloc(1, sizeof(*r));
        r->budget = b;
        return r;
}

void pg_reorder_free(pg_reorder_t *r)
{
        if (!r)
                return;
        pg_budget_give(r->budget, pg_reorder_bytes(r));
        for (size_t i = 0; i < r->nchunks; i++)
                free(r->chunks[i]);
        free(r->chunks);
        free(r->heap);
        free(r->run);
        free(r->free_stack);
        free(r);
}

static inline bool less(const pg_record_t *a, const pg_record_t *b)
{
        if (a->event_time != b->event_time)
                return a->event_time < b->event_time;
        return a->seq < b->seq;
}

/* The reorder buffer is not capped by the budget: refusing a record here
 * would lose it. Its size is bounded by rate x allowed lateness; the memory
 * is still counted. */
static void add_chunk(pg_reorder_t *r)
{
        if (r->nchunks == r->chunks_cap) {
                r->chunks_cap = r->chunks_cap ? 2 * r->chunks_cap : 8;
                r->chunks =
                    pg_xrealloc(r->chunks, r->chunks_cap * sizeof(*r->chunks));
        }
        pg_record_t *c = pg_xmalloc(CHUNK * sizeof(pg_record_t));
        r->chunks[r->nchunks++] = c;
        if (r->free_cap < r->nchunks * CHUNK) {
                r->free_cap = r->nchunks * CHUNK;
                r->free_stack = pg_xrealloc(
                    r->free_stack, r->free_cap * sizeof(*r->free_stack));
                r->heap_cap = r->free_cap;
                r->heap = pg_xrealloc(r->heap, r->heap_cap * sizeof(*r->heap));
                /* the run: unwrapped into the larger ring */
                pg_record_t **nr = pg_xmalloc(r->free_cap * sizeof(*nr));
                for (size_t i = 0; i < r->run_n; i++)
                        nr[i] = r->run[(r->run_head + i) % r->run_cap];
                free(r->run);
                r->run = nr;
                r->run_head = 0;
                r->run_cap = r->free_cap;
        }
        for (size_t i = CHUNK; i-- > 0;)
                r->free_stack[r->nfree++] = &c[i];
        pg_budget_charge(r->budget,
                         CHUNK * (sizeof(pg_record_t) + 3 * sizeof(void *)));
}

pg_record_t *pg_reorder_push(pg_reorder_t *r, const pg_record_t *rec,
                             uint64_t seq)
{
        if (!r->nfree)
                add_chunk(r);
        pg_record_t *slot = r->free_stack[--r->nfree];
        memcpy(slot, rec, sizeof(*slot));
        slot->seq = seq;
        if (!r->run_n || slot->event_time >= r->run_last_t) {
                /* the ring's size is no power of two: wrap without % */
                size_t at = r->run_head + r->run_n++;
                r->run[at >= r->run_cap ? at - r->run_cap : at] = slot;
                r->run_last_t = slot->event_time;
                return slot;
        }
        size_t i = r->n++;
        while (i > 0) {
                size_t p = (i - 1) / 2;
                if (!less(slot, r->heap[p]))
                        break;
                r->heap[i] = r->heap[p];
                i = p;
        }
        r->heap[i] = slot;
        return slot;
}

/* True when the next record out is the run's head (not the heap's). */
static inline bool run_first(const pg_reorder_t *r)
{
        return r->run_n && (!r->n || less(r->run[r->run_head], r->heap[0]));
}

const pg_record_t *pg_reorder_peek(const pg_reorder_t *r)
{
        if (run_first(r))
                return r->run[r->run_head];
        return r->n ? r->heap[0] : NULL;
}

pg_record_t *pg_reorder_pop(pg_reorder_t *r)
{
        if (run_first(r)) {
                pg_record_t *top = r->run[r->run_head];
                if (++r->run_head == r->run_cap)
                        r->run_head = 0;
                r->run_n--;
                return top;
        }
        if (!r->n)
                return NULL;
        pg_record_t *top = r->heap[0];
        pg_record_t *last = r->heap[--r->n];
        size_t i = 0;
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= r->n)
                        break;
                if (c + 1 < r->n && less(r->heap[c + 1], r->heap[c]))
                        c++;
                if (!less(r->heap[c], last))
                        break;
                r->heap[i] = r->heap[c];
                i = c;
        }
        if (r->n)
                r->heap[i] = last;
        return top;
}

void pg_reorder_release(pg_reorder_t *r, pg_record_t *rec)
{
        r->free_stack[r->nfree++] = rec;
}

size_t pg_reorder_len(const pg_reorder_t *r)
{
        return r->n + r->run_n;
}

size_t pg_reorder_bytes(const pg_reorder_t *r)
{
        return r->nchunks * CHUNK * (sizeof(pg_record_t) + 3 * sizeof(void *));
}
