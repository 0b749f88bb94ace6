/*
 * util_hash.h - 128-bit keys and deterministic identifiers.
 *
 * State tables are keyed by the 128-bit XXH3 hash of the key fields: fixed
 * size, no string stored or compared on lookup, and a collision between two
 * distinct keys is out of reach in practice (2^-64 at a billion keys).
 * Fields are hashed with their lengths, so ("ab","c") and ("a","bc") differ.
 */
#ifndef PG_UTIL_HASH_H
#define PG_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"

static inline int pg_key_eq(pg_key_t a, pg_key_t b)
{
        return a.lo == b.lo && a.hi == b.hi;
}

/* Incremental key builder: feed fields, then finish. */
typedef struct pg_keyb {
        unsigned char buf[8 * (PG_STR_MAX + 2)];
        size_t len;
} pg_keyb_t;

void pg_keyb_init(pg_keyb_t *kb, uint8_t tag);
void pg_keyb_str(pg_keyb_t *kb, const pg_str_t *s);
void pg_keyb_bytes(pg_keyb_t *kb, const void *p, size_t n);
void pg_keyb_i64(pg_keyb_t *kb, int64_t v);
pg_key_t pg_keyb_done(const pg_keyb_t *kb);

pg_key_t pg_key_str(uint8_t tag, const pg_str_t *s);

/* A key of several fields from their own keys and numbers, packed by the
 * caller into n 64-bit words (fixed layout, no padding to leave unset). */
pg_key_t pg_key_words(uint8_t tag, const uint64_t *w, size_t n);

/* A currency code packed into a word (for pg_key_words). */
static inline uint64_t pg_key_cur(const pg_str_t *s)
{
        uint64_t c = 0;
        for (int i = 0; i < s->len && i < 8; i++)
                c |= (uint64_t)(unsigned char)s->s[i] << (8 * i);
        return c;
}

/* "al-"/"rf-" + hex(XXH3_128(text)), high 64 bits first (SEMANTICS.md 5).
 * out must hold PG_ID_LEN (36) bytes. */
void pg_id_make(char *out, const char *prefix, const char *text, size_t len);

/* XXH3-64 of len bytes as 16 lower-case hex digits and a NUL (the
 * canonical, big-endian form: the same as xxhash's xxh3_64_hexdigest). */
void pg_hash_hex64(const void *buf, size_t len, char out[17]);
/* XXH3-64 with a seed (seed 0: the same as pg_hash_hex64's value), to
 * chain several buffers into one hash. */
uint64_t pg_hash64(const void *buf, size_t len, uint64_t seed);

#endif
