/*
 * codec_common.c - see codec_common.h.
 */
#include "codec_common.h"

#include <stdio.h>

#include <stdint.h>
#include <string.h>

/* Records are almost always ASCII, so eight bytes are tested at once until
 * a high bit shows up. */
size_t pg_utf8_check(const unsigned char *s, size_t n)
{
        const uint64_t high = 0x8080808080808080ULL;
        size_t i = 0;
        while (i < n) {
                if (n - i >= 8) {
                        uint64_t w;
                        memcpy(&w, s + i, 8);
                        if (!(w & high)) {
                                i += 8;
                                continue;
                        }
                }
                if (s[i] < 0x80) {
                        i++;
                        continue;
                }
                size_t k = pg_utf8_len(s + i, n - i);
                if (!k)
                        return i;
                i += k;
        }
        return n;
}

bool pg_luhn_ok(const char *s, size_t n)
{
        unsigned sum = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned d = (unsigned)(s[n - 1 - i] - '0');
                if (i & 1) {
                        d *= 2;
                        if (d > 9)
                                d -= 9;
                }
                sum += d;
        }
        return sum % 10 == 0;
}

bool pg_all_digits(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!pg_is_digit((unsigned char)s[i]))
                        return false;
        return true;
}

bool pg_pan_masked_ok(const char *s, size_t n)
{
        size_t i = 0;
        while (i < n && pg_is_digit((unsigned char)s[i]))
                i++;
        if (i > 6)
                return false;
        size_t m = i;
        while (i < n && (s[i] == '*' || s[i] == 'x' || s[i] == 'X'))
                i++;
        if (i == m)
                return false;
        size_t d = i;
        while (i < n && pg_is_digit((unsigned char)s[i]))
                i++;
        return i == n && i - d <= 4;
}

void pg_mask_pan_runs(const char *s, size_t from, size_t to, char *out,
                      size_t limit)
{
        size_t i = from;
        while (i < to && i < limit) {
                if (!pg_is_digit((unsigned char)s[i])) {
                        i++;
                        continue;
                }
                size_t e = pg_digit_run_end(s, to, i);
                size_t run = e - i;
                if (pg_looks_like_pan(s + i, run))
                        for (size_t k = i; k < e && k < limit; k++)
                                if (!pg_pan_digit_shown(k - i, run))
                                        out[k] = '*';
                i = e;
        }
}

pg_reject_t pg_reject_vfail(const char **field, char *err, size_t errsz,
                            pg_reject_t code, int f, const char *fmt,
                            va_list ap)
{
        const char *name = f >= 0 ? pg_record_field_name((pg_field_t)f) : NULL;
        if (field)
                *field = name;
        if (!err || errsz == 0)
                return code;
        size_t o = 0;
        if (name) {
                int k = snprintf(err, errsz, "field '%s': ", name);
                o = k < 0 ? 0 : (size_t)k;
                if (o >= errsz)
                        return code;
        }
        vsnprintf(err + o, errsz - o, fmt, ap);
        return code;
}
