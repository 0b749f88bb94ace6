/*
 * state_epoch.c - epoch-based reclamation (see state_epoch.h).
 *
 * How it works. A global epoch counter only grows. enter() stores the
 * value it reads into the thread's slot; exit() stores 0. retire(p) reads
 * the global epoch e after p was unlinked and queues (p, e). reclaim()
 * first advances the global epoch, then reads every slot: p may be freed
 * when every thread inside a section entered with an epoch > e.
 *
 * Why that is safe (every access below is seq_cst, so all of them fall in
 * one total order S). Take a reader R that may hold p: it loaded the table
 * pointer that led to p inside a section entered with epoch x, so its slot
 * store (local = x) precedes its pointer load in S, and that load precedes
 * the unlink in S (otherwise it could not have found p). The retirer's
 * load of e follows the unlink, so R read the global before it was
 * advanced past e: x <= e. reclaim() advances the global and then scans;
 * the scan reads R's slot after R's store (which precedes the unlink,
 * which precedes the retire, which precedes this reclaim's advance), so it
 * sees x or, if R left, 0 - and it frees p only when no slot holds a value
 * <= e. A thread that enters after the scan read its slot loads the table
 * pointer after the unlink and cannot reach p. So p is freed only once no
 * reader can reach it.
 *
 * Bounded work: enter/exit are two stores and a load; reclaim scans
 * PG_EPOCH_MAX_THREADS slots and the retired list, and only one thread
 * reclaims at a time (the others return at once).
 */
#include "state_epoch.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "util_mem.h"

typedef struct pg_epoch_retired pg_epoch_retired_t;

struct pg_epoch {
        _Atomic uint64_t global; /* starts at 1; 0 in a slot = quiescent */
        /* slot i: 0 when free, 1 when registered (claimed by CAS) */
        _Atomic int used[PG_EPOCH_MAX_THREADS];
        /* slot i: epoch seen at enter, 0 outside a section; written only by
         * the slot's owner */
        _Atomic uint64_t local[PG_EPOCH_MAX_THREADS];
        /* retired memory: a Treiber stack, pushed by any thread, taken
         * whole by the one reclaimer */
        _Atomic(pg_epoch_retired_t *) retired;
        atomic_flag reclaiming; /* one reclaimer at a time, never waited on */
        _Atomic size_t pending; /* retired, not yet freed */
};

struct pg_epoch_retired {
        pg_epoch_retired_t *next;
        void *p;
        void (*free_fn)(void *);
        uint64_t epoch;
};

pg_epoch_t *pg_epoch_new(void)
{
        pg_epoch_t *ep = pg_xmalloc(sizeof(*ep));
        atomic_init(&ep->global, 1);
        for (int i = 0; i < PG_EPOCH_MAX_THREADS; i++) {
                atomic_init(&ep->used[i], 0);
                atomic_init(&ep->local[i], 0);
        }
        atomic_init(&ep->retired, NULL);
        atomic_flag_clear(&ep->reclaiming);
        atomic_init(&ep->pending, 0);
        return ep;
}

size_t pg_epoch_pending(pg_epoch_t *ep)
{
        /* relaxed: a hint for callers deciding whether to reclaim */
        return atomic_load_explicit(&ep->pending, memory_order_relaxed);
}

void pg_epoch_free(pg_epoch_t *ep)
{
        if (!ep)
                return;
        pg_epoch_retired_t *r = atomic_exchange(&ep->retired, NULL);
        while (r) {
                pg_epoch_retired_t *next = r->next;
                r->free_fn(r->p);
                free(r);
                r = next;
        }
        free(ep);
}

bool pg_epoch_register(pg_epoch_t *ep, pg_epoch_handle_t *h)
{
        for (int i = 0; i < PG_EPOCH_MAX_THREADS; i++) {
                int expect = 0;
                if (atomic_compare_exchange_strong(&ep->used[i], &expect, 1)) {
                        h->ep = ep;
                        h->slot = i;
                        return true;
                }
        }
        return false;
}

void pg_epoch_unregister(pg_epoch_handle_t *h)
{
        atomic_store(&h->ep->local[h->slot], 0);
        atomic_store(&h->ep->used[h->slot], 0);
        h->ep = NULL;
}

void pg_epoch_enter(pg_epoch_handle_t *h)
{
        uint64_t g = atomic_load(&h->ep->global);
        atomic_store(&h->ep->local[h->slot], g);
}

void pg_epoch_exit(pg_epoch_handle_t *h)
{
        atomic_store(&h->ep->local[h->slot], 0);
}

static void push_list(pg_epoch_t *ep, pg_epoch_retired_t *first,
                      pg_epoch_retired_t *last)
{
        pg_epoch_retired_t *head = atomic_load(&ep->retired);
        do
                last->next = head;
        while (!atomic_compare_exchange_weak(&ep->retired, &head, first));
}

void pg_epoch_retire(pg_epoch_t *ep, void *p, void (*free_fn)(void *))
{
        pg_epoch_retired_t *r = pg_xmalloc(sizeof(*r));
        r->p = p;
        r->free_fn = free_fn;
        r->epoch = atomic_load(&ep->global);
        atomic_fetch_add(&ep->pending, 1);
        push_list(ep, r, r);
}

size_t pg_epoch_reclaim(pg_epoch_t *ep)
{
        if (atomic_flag_test_and_set(&ep->reclaiming))
                return 0;
        pg_epoch_retired_t *list = atomic_exchange(&ep->retired, NULL);
        size_t n = 0;
        if (list) {
                atomic_fetch_add(&ep->global, 1);
                uint64_t min = UINT64_MAX;
                for (int i = 0; i < PG_EPOCH_MAX_THREADS; i++) {
                        uint64_t x = atomic_load(&ep->local[i]);
                        if (x && x < min)
                                min = x;
                }
                pg_epoch_retired_t *keep = NULL, *keep_last = NULL;
                while (list) {
                        pg_epoch_retired_t *next = list->next;
                        if (list->epoch < min) {
                                list->free_fn(list->p);
                                free(list);
                                n++;
                        } else {
                                list->next = keep;
                                keep = list;
                                if (!keep_last)
                                        keep_last = list;
                        }
                        list = next;
                }
                if (keep)
                        push_list(ep, keep, keep_last);
                atomic_fetch_sub(&ep->pending, n);
        }
        atomic_flag_clear(&ep->reclaiming);
        return n;
}
