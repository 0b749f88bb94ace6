/*
 * codec_common.h - the record rules and card-data masking shared by the JSON
 * and the protobuf codecs (codec_json.c, codec_pb.c), so that both apply
 * exactly the same checks (docs/SEMANTICS.md section 1).
 *
 * Pure functions of their arguments: safe from any thread.
 */
#ifndef PG_CODEC_COMMON_H
#define PG_CODEC_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "codec_json.h" /* pg_reject_t */

static inline bool pg_is_digit(unsigned char c)
{
        return c >= '0' && c <= '9';
}

/* A control character as SEMANTICS.md 1 counts them: < 0x20 or 0x7f. */
static inline bool pg_is_ctrl(unsigned char c)
{
        return c < 0x20 || c == 0x7f;
}

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), or 0 when it
 * is not one: overlong forms, surrogates and code points past U+10FFFF are
 * invalid (Unicode table 3-7). */
static inline size_t pg_utf8_len(const unsigned char *s, size_t n)
{
        unsigned c = s[0];
        if (c < 0x80)
                return 1;
        if (c < 0xC2)
                return 0;
        if (c < 0xE0)
                return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
        if (c < 0xF0) {
                if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
                        return 0;
                if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))
                        return 0;
                return 3;
        }
        if (c < 0xF5) {
                if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
                    (s[3] & 0xC0) != 0x80)
                        return 0;
                if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
                        return 0;
                return 4;
        }
        return 0;
}

/* Offset of the first byte of s[0..n) that is not valid UTF-8, or n. */
size_t pg_utf8_check(const unsigned char *s, size_t n);

/* Luhn check over n ASCII digits. */
bool pg_luhn_ok(const char *s, size_t n);

/* A run of 13-19 digits that passes Luhn: what a clear PAN looks like.
 * s[0..n) must be digits. */
static inline bool pg_looks_like_pan(const char *s, size_t n)
{
        return n >= 13 && n <= 19 && pg_luhn_ok(s, n);
}

/* Whether s[0..n) is all ASCII digits (true for n == 0). */
bool pg_all_digits(const char *s, size_t n);

/* card_token rule (SEMANTICS.md 1): a token that is 13-19 digits passing
 * the Luhn check is a clear card number. */
static inline bool pg_is_clear_pan(const char *s, size_t n)
{
        return pg_all_digits(s, n) && pg_looks_like_pan(s, n);
}

/* pan_masked rule (SEMANTICS.md 1): ^[0-9]{0,6}[*xX]+[0-9]{0,4}$ */
bool pg_pan_masked_ok(const char *s, size_t n);

/* End of the run of ASCII digits that starts at s[i] (i < n). */
static inline size_t pg_digit_run_end(const char *s, size_t n, size_t i)
{
        while (i < n && pg_is_digit((unsigned char)s[i]))
                i++;
        return i;
}

/* In a run of run digits that looks like a PAN, whether digit number at
 * (from 0) stays visible: the first 6 and the last 4 do. */
static inline bool pg_pan_digit_shown(size_t at, size_t run)
{
        return at < 6 || at >= run - 4;
}

/*
 * Mask card numbers in a copy: out holds (at least) the first
 * min(to, limit) bytes of s. Every maximal run of ASCII digits inside
 * s[from..to) that looks like a PAN gets its digits other than the first 6
 * and last 4 replaced by '*' in out, where they lie below limit. A run is
 * judged over its whole length in s[from..to), so a limit that cuts it
 * never unmasks a card number.
 */
void pg_mask_pan_runs(const char *s, size_t from, size_t to, char *out,
                      size_t limit);

/* Fill a reject: *field (when field is not NULL) gets the field's name (f
 * a pg_field_t, or -1 for none) and err the message, prefixed with
 * "field 'NAME': ". Returns code. Shared by the JSON and protobuf parsers. */
pg_reject_t pg_reject_vfail(const char **field, char *err, size_t errsz,
                            pg_reject_t code, int f, const char *fmt,
                            va_list ap);

#endif
