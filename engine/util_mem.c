/*
 * util_mem.c - counted allocation for engine state (see util_mem.h).
 */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MADV_HUGEPAGE, mremap */
#include "util_mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

bool pg_budget_take(pg_budget_t *b, size_t n)
{
        if (b->cap && (n > b->cap || b->used > b->cap - n)) {
                b->refused++;
                return false;
        }
        b->used += n;
        if (b->used > b->peak)
                b->peak = b->used;
        return true;
}

void pg_budget_charge(pg_budget_t *b, size_t n)
{
        b->used += n;
        if (b->used > b->peak)
                b->peak = b->used;
}

void pg_budget_give(pg_budget_t *b, size_t n)
{
        b->used = n > b->used ? 0 : b->used - n;
}

static void oom(size_t n)
{
        fprintf(stderr, "posguard: out of memory allocating %zu bytes\n", n);
        abort();
}

void *pg_xmalloc(size_t n)
{
        void *p = malloc(n ? n : 1);
        if (!p)
                oom(n);
        return p;
}

void *pg_xcalloc(size_t count, size_t n)
{
        void *p = calloc(count ? count : 1, n ? n : 1);
        if (!p)
                oom(count * n);
        return p;
}

void *pg_xrealloc(void *p, size_t n)
{
        void *q = realloc(p, n ? n : 1);
        if (!q)
                oom(n);
        return q;
}

/* Every page of [p, p + n) faulted in now: one kernel call where it has
 * MADV_POPULATE_WRITE (Linux 5.14), else a write to each page (of zero,
 * which the page already holds). */
static void populate_all(unsigned char *p, size_t n)
{
#ifdef MADV_POPULATE_WRITE
        if (madvise(p, n, MADV_POPULATE_WRITE) == 0)
                return;
#endif
        for (size_t i = 0; i < n; i += 4096)
                ((volatile unsigned char *)p)[i] = 0;
}

/* populate: every page faulted in now, else as used. The mapping asks for
 * transparent huge pages (MADV_HUGEPAGE; the kernel's default is often
 * "madvise", huge pages only where asked): state is read at random, one
 * cache line per lookup, and with 4 KiB pages nearly every lookup in a
 * table of some hundred MiB is also a TLB miss and a page walk. Where the
 * kernel has no huge pages to give, the advice is ignored and the pages
 * are small. */
static void *big_map(size_t n, bool populate)
{
        if (n < PG_BIG_MIN)
                return pg_xcalloc(1, n);
        void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                oom(n);
#ifdef MADV_HUGEPAGE
        (void)madvise(p, n, MADV_HUGEPAGE);
#endif
        if (populate)
                populate_all(p, n);
        return p;
}

void *pg_big_calloc(size_t n)
{
        return big_map(n, true);
}

void *pg_ring_double(void *ring, size_t cap, size_t unit, uint64_t from,
                     uint64_t to)
{
        size_t size = cap * unit, nsize = 2 * size;
        unsigned char *nr;
        bool in_place = size >= PG_BIG_MIN;
        if (in_place) {
                nr = mremap(ring, size, nsize, MREMAP_MAYMOVE);
                if (nr == MAP_FAILED)
                        oom(nsize);
        } else {
                nr = big_map(nsize,
                             false); /* the new half faults in as it fills */
        }
        const unsigned char *src = in_place ? nr : ring;
        /* [from, to) in at most two runs of the old array; each goes to
         * the same positions modulo the new size: it stays or moves up by
         * the old size (from [0, size) to [size, nsize): no overlap) */
        for (uint64_t p = from; p < to;) {
                uint64_t i = p & (cap - 1), n = cap - i;
                if (n > to - p)
                        n = to - p;
                uint64_t j = p & (2 * cap - 1);
                if (!in_place || j != i)
                        memcpy(nr + j * unit, src + i * unit, n * unit);
                p += n;
        }
        if (!in_place)
                pg_big_free(ring, size);
        return nr;
}

void pg_big_free(void *p, size_t n)
{
        if (!p)
                return;
        if (n < PG_BIG_MIN)
                free(p);
        else
                munmap(p, n);
}
