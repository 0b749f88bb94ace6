/*
 * state_strlog.c - a byte ring of {expire_at, string, NUL} records.
 *
 * A record is an 8-byte header (the expiry) and the string with its NUL,
 * padded to 8 bytes; a 17-byte txn_id takes 32. Positions are byte offsets
 * counted from the ring's start of life, plus one (so 0 means none); the
 * ring holds [tail, head). A record never wraps: when it does not fit
 * before the end of the array, a pad header (PAD + the bytes to skip) fills
 * the rest. The array doubles when full; records keep their positions, and
 * one that was contiguous stays so (p mod 2c + n <= 2c when p mod c + n <=
 * c).
 */
#include "state_strlog.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CAP 4096
#define PAD INT64_MIN /* a pad header is PAD + bytes to skip */

struct pg_strlog {
        unsigned char *ring;
        uint64_t cap; /* bytes, power of two */
        uint64_t tail, head;
        size_t count;
        pg_budget_t *budget;
};

size_t pg_strlog_bytes_for(size_t bytes)
{
        size_t cap = MIN_CAP;
        while (cap < bytes)
                cap *= 2;
        return cap;
}

pg_strlog_t *pg_strlog_new_sized(pg_budget_t *b, size_t bytes)
{
        pg_strlog_t *l = pg_xcalloc(1, sizeof(*l));
        l->cap = pg_strlog_bytes_for(bytes);
        l->ring = pg_big_calloc(l->cap);
        l->budget = b;
        pg_budget_charge(b, l->cap);
        return l;
}

pg_strlog_t *pg_strlog_new(pg_budget_t *b)
{
        return pg_strlog_new_sized(b, 0);
}

void pg_strlog_free(pg_strlog_t *l)
{
        if (!l)
                return;
        pg_budget_give(l->budget, l->cap);
        pg_big_free(l->ring, l->cap);
        free(l);
}

static inline unsigned char *at(const pg_strlog_t *l, uint64_t p)
{
        return l->ring + (p & (l->cap - 1));
}

static inline int64_t hdr(const pg_strlog_t *l, uint64_t p)
{
        int64_t h;
        memcpy(&h, at(l, p), sizeof(h));
        return h;
}

static inline void set_hdr(pg_strlog_t *l, uint64_t p, int64_t h)
{
        memcpy(at(l, p), &h, sizeof(h));
}

static inline uint64_t rec_size(size_t len)
{
        return (8 + len + 1 + 7) & ~(uint64_t)7;
}

static bool grow(pg_strlog_t *l)
{
        if (!pg_budget_take(l->budget, l->cap))
                return false;
        l->ring = pg_ring_double(l->ring, l->cap, 1, l->tail, l->head);
        l->cap *= 2;
        return true;
}

uint64_t pg_strlog_add(pg_strlog_t *l, const char *s, size_t len,
                       int64_t expire_at)
{
        if (len > 255)
                len = 255;
        uint64_t n = rec_size(len);
        for (;;) {
                uint64_t room_to_end = l->cap - (l->head & (l->cap - 1));
                uint64_t need = n <= room_to_end ? n : room_to_end + n;
                if (l->head + need - l->tail <= l->cap)
                        break;
                if (!grow(l))
                        return 0;
        }
        uint64_t room_to_end = l->cap - (l->head & (l->cap - 1));
        if (n > room_to_end) {
                set_hdr(l, l->head, PAD + (int64_t)room_to_end);
                l->head += room_to_end;
        }
        uint64_t p = l->head;
        set_hdr(l, p, expire_at);
        unsigned char *d = at(l, p) + 8;
        memcpy(d, s, len);
        memset(d + len, 0, n - 8 - len); /* NUL and padding */
        l->head += n;
        l->count++;
        return p + 1;
}

const char *pg_strlog_get(const pg_strlog_t *l, uint64_t pos)
{
        if (!pos || pos - 1 < l->tail || pos - 1 >= l->head)
                return NULL;
        return (const char *)at(l, pos - 1) + 8;
}

uint64_t pg_strlog_renew(pg_strlog_t *l, uint64_t pos, int64_t expire_at)
{
        const char *s = pg_strlog_get(l, pos);
        if (!s)
                return 0;
        if (hdr(l, pos - 1) >= expire_at)
                return pos;
        /* copied out first: the append may move the ring */
        char buf[256];
        size_t len = strlen(s);
        memcpy(buf, s, len);
        return pg_strlog_add(l, buf, len, expire_at);
}

static inline bool is_pad(const pg_strlog_t *l, int64_t h)
{
        return h < PAD + (int64_t)l->cap + 1;
}

/* Drop the record (or pad) at the tail. */
static void pop(pg_strlog_t *l)
{
        int64_t h = hdr(l, l->tail);
        if (is_pad(l, h)) {
                l->tail += (uint64_t)(h - PAD);
                return;
        }
        l->tail += rec_size(strlen((const char *)at(l, l->tail) + 8));
        l->count--;
}

void pg_strlog_expire(pg_strlog_t *l, int64_t now, size_t max_work)
{
        while (l->tail < l->head && max_work--) {
                int64_t h = hdr(l, l->tail);
                if (!is_pad(l, h) && now < h)
                        break;
                pop(l);
        }
}

void pg_strlog_drop_through(pg_strlog_t *l, uint64_t pos)
{
        while (l->tail < l->head && l->tail < pos)
                pop(l);
}

size_t pg_strlog_count(const pg_strlog_t *l)
{
        return l->count;
}

size_t pg_strlog_bytes(const pg_strlog_t *l)
{
        return l->cap;
}
