/*
 * util_hash.c - 128-bit keys and identifiers (see util_hash.h).
 */
#include "util_hash.h"

#include <stdio.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

void pg_keyb_init(pg_keyb_t *kb, uint8_t tag)
{
        kb->buf[0] = tag;
        kb->len = 1;
}

void pg_keyb_bytes(pg_keyb_t *kb, const void *p, size_t n)
{
        /* Callers feed at most a few bounded fields; overflow is a bug. */
        if (n > sizeof(kb->buf) - kb->len)
                n = sizeof(kb->buf) - kb->len;
        memcpy(kb->buf + kb->len, p, n);
        kb->len += n;
}

void pg_keyb_str(pg_keyb_t *kb, const pg_str_t *s)
{
        uint8_t n = s->len;
        pg_keyb_bytes(kb, &n, 1);
        pg_keyb_bytes(kb, s->s, s->len);
}

void pg_keyb_i64(pg_keyb_t *kb, int64_t v)
{
        pg_keyb_bytes(kb, &v, sizeof(v));
}

/* A hash as a key: (0,0) marks an empty slot in state tables. */
static pg_key_t key_of(XXH128_hash_t h)
{
        pg_key_t k = {h.low64, h.high64};
        if (!k.lo && !k.hi)
                k.lo = 1;
        return k;
}

pg_key_t pg_keyb_done(const pg_keyb_t *kb)
{
        return key_of(XXH3_128bits(kb->buf, kb->len));
}

pg_key_t pg_key_str(uint8_t tag, const pg_str_t *s)
{
        /* one field: its bytes hashed in place, the tag as the seed (no
         * copy into a key buffer; the length is part of XXH3's input) */
        return key_of(XXH3_128bits_withSeed(s->s, s->len, tag));
}

pg_key_t pg_key_words(uint8_t tag, const uint64_t *w, size_t n)
{
        return key_of(XXH3_128bits_withSeed(w, n * sizeof(*w), tag));
}

void pg_id_make(char *out, const char *prefix, const char *text, size_t len)
{
        static const char hex[] = "0123456789abcdef";
        XXH128_hash_t h = XXH3_128bits(text, len);
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, h);
        size_t p = strlen(prefix);
        memcpy(out, prefix, p);
        for (size_t i = 0; i < sizeof(c.digest); i++) {
                out[p + 2 * i] = hex[c.digest[i] >> 4];
                out[p + 2 * i + 1] = hex[c.digest[i] & 15];
        }
        out[p + 2 * sizeof(c.digest)] = '\0';
}

void pg_hash_hex64(const void *buf, size_t len, char out[17])
{
        XXH64_hash_t h = XXH3_64bits(buf, len);
        snprintf(out, 17, "%016llx", (unsigned long long)h);
}

uint64_t pg_hash64(const void *buf, size_t len, uint64_t seed)
{
        return XXH3_64bits_withSeed(buf, len, seed);
}
