/*
 * codec_json.c - JSON lines <-> records, alerts, refunds and dead-letter
 * entries (see codec_json.h).
 *
 * Parsing a record, in four passes over one line, none of which allocates:
 *
 *   1. UTF-8: the whole line must be valid UTF-8 (8 bytes at a time while
 *      it is ASCII). A line that is not is not JSON text at all.
 *   2. Tokens: jsmn (strict mode, parent links) splits the line into at most
 *      PG_JSON_MAX_TOKENS tokens held on the stack. jsmn is a tokenizer, not
 *      a validator: it accepts `{"a" "b"}`, `[1,,2]`, `tru`, `01`, raw
 *      control characters in strings and lone surrogates.
 *   3. Grammar: a walk over the token tree checks every byte jsmn did not
 *      judge: the bytes between consecutive tokens must be exactly the JSON
 *      punctuation the tree implies (whitespace, one ':' or ','), every
 *      primitive is a JSON number or true/false/null, every string has no
 *      raw control character and no lone surrogate. Tokens plus checked gaps
 *      cover the object from '{' to '}', so a line that passes is exactly one
 *      valid JSON object. The same walk maps top-level keys to record fields
 *      and notes the first key that repeats an earlier one.
 *   4. Fields: each known field is decoded and checked, in pg_field_t order.
 *
 * Reject order (the first problem found is reported, so the reason of a line
 * with several problems is deterministic):
 *
 *   a. line over PG_JSON_MAX_LINE bytes               line_too_long
 *   b. invalid UTF-8 anywhere in the line             bad_chars
 *   c. not one JSON object: empty, not starting with '{', jsmn error, too
 *      many tokens, nesting deeper than MAX_DEPTH, bad punctuation, bad
 *      literal or number, bad escape, data after the object   malformed
 *      (raw control character or lone surrogate in a string: bad_chars);
 *      c. is checked in document order.
 *   d. a top-level key that repeats an earlier one (known or not, compared
 *      after unescaping; nested objects are not checked)  duplicate_field
 *   e. fields in pg_field_t order: txn_id, kind, status, merchant_id,
 *      terminal_id, stan, rrn, card_token, pan_masked, amount, currency,
 *      expected_amount, order_id, original_rrn (refund/reversal/void only),
 *      event_time, entry_mode, retransmission. For one field:
 *        absent or null (required)       missing
 *        wrong JSON type                 type
 *        "" (required)                   empty    ("" optional: absent)
 *        over PG_STR_MAX bytes unescaped oversize
 *        control character (\u0000-\u001f, \u007f) after unescaping
 *                                        bad_chars
 *        then the field's own rule: enum, clear_pan, amount, currency, time.
 *
 * Card data rule: an error message never quotes card_token or pan_masked;
 * the few values it does quote (enums, currency, event_time) go through
 * show(), which masks digit runs that look like card numbers. The reject
 * encoder masks those runs in the raw line and in the detail.
 *
 * Every function here works on its arguments only: safe from any thread.
 */
#include "codec_json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "codec_common.h"

/* Unknown nested values deeper than this are not records' business; the cap
 * bounds the walk's recursion (and its stack) independently of the token
 * count. */
#define MAX_DEPTH 64
/* Top-level keys: each needs a key and a value token. */
#define MAX_KEYS (PG_JSON_MAX_TOKENS / 2)

/* ---------------------------------------------------------------------
 * Small pure helpers: escapes, numbers (UTF-8, Luhn and the card-data
 * rules are in codec_common.c, shared with the protobuf codec)
 * ------------------------------------------------------------------- */

static inline bool is_ws(unsigned char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline bool is_digit(unsigned char c)
{
        return c >= '0' && c <= '9';
}

static size_t utf8_put(uint32_t cp, char *out)
{
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xC0 | (cp >> 6));
                out[1] = (char)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xE0 | (cp >> 12));
                out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[2] = (char)(0x80 | (cp & 0x3F));
                return 3;
        }
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
}

static int hexval(unsigned char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

static long hex4(const char *p)
{
        long v = 0;
        for (int i = 0; i < 4; i++) {
                int h = hexval((unsigned char)p[i]);
                if (h < 0)
                        return -1;
                v = v * 16 + h;
        }
        return v;
}

#define ESC_BAD 0        /* not a JSON escape */
#define ESC_SURROGATE -1 /* \uD800-\uDFFF not in a proper pair */

/*
 * Decode the escape whose backslash is just before p (end bounds the
 * string). Returns the bytes consumed after the backslash (1, 5 or 11 for a
 * surrogate pair) with the code point in *cp, or ESC_BAD / ESC_SURROGATE.
 */
static int unescape_one(const char *p, const char *end, uint32_t *cp)
{
        if (p >= end)
                return ESC_BAD;
        switch (*p) {
        case '"':
        case '\\':
        case '/':
                *cp = (unsigned char)*p;
                return 1;
        case 'b':
                *cp = '\b';
                return 1;
        case 'f':
                *cp = '\f';
                return 1;
        case 'n':
                *cp = '\n';
                return 1;
        case 'r':
                *cp = '\r';
                return 1;
        case 't':
                *cp = '\t';
                return 1;
        case 'u':
                break;
        default:
                return ESC_BAD;
        }
        if (end - p < 5)
                return ESC_BAD;
        long u = hex4(p + 1);
        if (u < 0)
                return ESC_BAD;
        if (u < 0xD800 || u > 0xDFFF) {
                *cp = (uint32_t)u;
                return 5;
        }
        if (u > 0xDBFF || end - p < 11 || p[5] != '\\' || p[6] != 'u')
                return ESC_SURROGATE;
        long lo = hex4(p + 7);
        if (lo < 0xDC00 || lo > 0xDFFF)
                return ESC_SURROGATE;
        *cp =
            0x10000 + (((uint32_t)u - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
        return 11;
}

/* JSON number grammar; *integer is false when there is a fraction or an
 * exponent. */
static bool json_number(const char *s, size_t n, bool *integer)
{
        size_t i = 0;
        if (i < n && s[i] == '-')
                i++;
        if (i >= n)
                return false;
        if (s[i] == '0') {
                i++;
        } else if (s[i] >= '1' && s[i] <= '9') {
                while (i < n && is_digit((unsigned char)s[i]))
                        i++;
        } else {
                return false;
        }
        *integer = true;
        if (i < n && s[i] == '.') {
                i++;
                if (i >= n || !is_digit((unsigned char)s[i]))
                        return false;
                while (i < n && is_digit((unsigned char)s[i]))
                        i++;
                *integer = false;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                if (i < n && (s[i] == '+' || s[i] == '-'))
                        i++;
                if (i >= n || !is_digit((unsigned char)s[i]))
                        return false;
                while (i < n && is_digit((unsigned char)s[i]))
                        i++;
                *integer = false;
        }
        return i == n;
}

/* A JSON integer (grammar already checked) into int64; false on overflow. */
static bool parse_i64(const char *s, size_t n, int64_t *v)
{
        size_t i = 0;
        bool neg = s[0] == '-';
        if (neg)
                i++;
        uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        uint64_t acc = 0;
        for (; i < n; i++) {
                unsigned d = (unsigned)(s[i] - '0');
                if (acc > (lim - d) / 10)
                        return false;
                acc = acc * 10 + d;
        }
        if (!neg)
                *v = (int64_t)acc;
        else if (acc == (uint64_t)INT64_MAX + 1)
                *v = INT64_MIN;
        else
                *v = -(int64_t)acc;
        return true;
}

/* ---------------------------------------------------------------------
 * Time: RFC 3339 <-> ms since the epoch, proleptic Gregorian calendar
 * ------------------------------------------------------------------- */

/* Days since 1970-01-01 (H. Hinnant's days_from_civil): exact for every
 * year an int64 can hold here, with floor division for negative eras. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        unsigned yoe = (unsigned)(y - era * 400);
        unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
        z += 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        unsigned doe = (unsigned)(z - era * 146097);
        unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        unsigned mp = (5 * doy + 2) / 153;
        *d = doy - (153 * mp + 2) / 5 + 1;
        *m = mp < 10 ? mp + 3 : mp - 9;
        *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(unsigned y, unsigned m)
{
        static const unsigned char dim[13] = {0,  31, 28, 31, 30, 31, 30,
                                              31, 31, 30, 31, 30, 31};
        if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
                return 29;
        return dim[m];
}

/* n decimal digits at s as a number, or -1. */
static int digits(const char *s, int n)
{
        int v = 0;
        for (int i = 0; i < n; i++) {
                if (!is_digit((unsigned char)s[i]))
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        return v;
}

/*
 * YYYY-MM-DDTHH:MM:SS[.f+](Z|+HH:MM|-HH:MM), exactly: upper-case T and Z, at
 * least one digit after '.', no leap second (SEMANTICS.md 1 and the
 * oracle's RFC3339_RE). The fraction is truncated to milliseconds. The
 * result may lie before 1970 or after 9999 once the offset is applied; the
 * caller decides what range it accepts.
 */
int pg_time_parse(const char *s, size_t len, int64_t *ms)
{
        if (!s || len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
            s[13] != ':' || s[16] != ':')
                return -1;
        int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
        int h = digits(s + 11, 2), mi = digits(s + 14, 2),
            sec = digits(s + 17, 2);
        if (y < 0 || mo < 1 || mo > 12 || d < 1 ||
            d > (int)days_in_month((unsigned)y, (unsigned)mo) || h < 0 ||
            h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59)
                return -1;
        size_t i = 19;
        int frac = 0;
        if (s[i] == '.') {
                i++;
                size_t f0 = i;
                while (i < len && is_digit((unsigned char)s[i])) {
                        if (i - f0 < 3)
                                frac = frac * 10 + (s[i] - '0');
                        i++;
                }
                if (i == f0)
                        return -1;
                for (size_t k = i - f0; k < 3; k++)
                        frac *= 10;
        }
        if (i >= len)
                return -1;
        int64_t off = 0;
        if (s[i] == 'Z') {
                i++;
        } else if (s[i] == '+' || s[i] == '-') {
                if (len - i < 6 || s[i + 3] != ':')
                        return -1;
                int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
                if (oh < 0 || oh > 23 || om < 0 || om > 59)
                        return -1;
                off = ((int64_t)oh * 60 + om) * 60000;
                if (s[i] == '-')
                        off = -off;
                i += 6;
        } else {
                return -1;
        }
        if (i != len)
                return -1;
        int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
        int64_t t =
            ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + frac;
        /* local time = UTC + offset */
        *ms = t - off;
        return 0;
}

static char *put2(char *p, unsigned v)
{
        p[0] = (char)('0' + v / 10);
        p[1] = (char)('0' + v % 10);
        return p + 2;
}

/* YYYY-MM-DDTHH:MM:SS.mmmZ: 24 bytes and a NUL. A year outside 0000..9999
 * (never a valid event time) is written with as many digits as it needs, so
 * the output stays unambiguous. */
char *pg_time_format(int64_t ms, char *buf, size_t size)
{
        if (!buf || size == 0)
                return buf;
        int64_t days = ms / 86400000, rem = ms % 86400000;
        if (rem < 0) {
                rem += 86400000;
                days--;
        }
        int64_t y;
        unsigned mo, d;
        civil_from_days(days, &y, &mo, &d);
        unsigned msd = (unsigned)rem;
        unsigned h = msd / 3600000, mi = msd / 60000 % 60,
                 sec = msd / 1000 % 60, milli = msd % 1000;
        if (y < 0 || y > 9999 || size < 25) {
                snprintf(buf, size, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ",
                         (long long)y, mo, d, h, mi, sec, milli);
                return buf;
        }
        char *p = buf;
        p = put2(p, (unsigned)y / 100);
        p = put2(p, (unsigned)y % 100);
        *p++ = '-';
        p = put2(p, mo);
        *p++ = '-';
        p = put2(p, d);
        *p++ = 'T';
        p = put2(p, h);
        *p++ = ':';
        p = put2(p, mi);
        *p++ = ':';
        p = put2(p, sec);
        *p++ = '.';
        *p++ = (char)('0' + milli / 100);
        p = put2(p, milli % 100);
        *p++ = 'Z';
        *p = '\0';
        return buf;
}

/* ---------------------------------------------------------------------
 * Output writer: bounded, never overflows, remembers that it ran out
 * ------------------------------------------------------------------- */

typedef struct wbuf {
        char *p;
        size_t size;
        size_t n;
        bool full;
} wbuf_t;

static inline void w_mem(wbuf_t *w, const char *s, size_t n)
{
        /* keep one byte for the NUL */
        if (w->full || n >= w->size - w->n) {
                w->full = true;
                return;
        }
        memcpy(w->p + w->n, s, n);
        w->n += n;
}

static inline void w_ch(wbuf_t *w, char c)
{
        if (w->full || w->n + 1 >= w->size) {
                w->full = true;
                return;
        }
        w->p[w->n++] = c;
}

#define W_LIT(w, lit) w_mem((w), (lit), sizeof(lit) - 1)

static void w_i64(wbuf_t *w, int64_t v)
{
        char tmp[24];
        size_t i = sizeof(tmp);
        uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        do {
                tmp[--i] = (char)('0' + u % 10);
                u /= 10;
        } while (u);
        if (v < 0)
                tmp[--i] = '-';
        w_mem(w, tmp + i, sizeof(tmp) - i);
}

/*
 * Copy s[0..n) as the body of a JSON string (plain == false) or as
 * printable text for an error message (plain == true), masking every run of
 * 13-19 digits that passes the Luhn check to first 6 + '*' + last 4. At most
 * limit input bytes are copied; a digit run is judged over its whole length
 * in s even when the limit cuts it, so truncation never unmasks a PAN.
 * Invalid UTF-8 and control characters become '?' (JSON mode keeps \t, \n,
 * \r as short escapes): the output is at most twice the input.
 */
static void w_masked(wbuf_t *w, const char *s, size_t n, size_t limit,
                     bool plain)
{
        size_t stop = n < limit ? n : limit;
        size_t i = 0;
        while (i < stop && !w->full) {
                unsigned char c = (unsigned char)s[i];
                if (is_digit(c)) {
                        size_t e = pg_digit_run_end(s, n, i);
                        size_t run = e - i;
                        bool mask = pg_looks_like_pan(s + i, run);
                        size_t end = e < stop ? e : stop;
                        for (size_t k = i; k < end; k++) {
                                bool shown =
                                    !mask || pg_pan_digit_shown(k - i, run);
                                w_ch(w, shown ? s[k] : '*');
                        }
                        i = end;
                        continue;
                }
                if (c >= 0x80) {
                        size_t k =
                            pg_utf8_len((const unsigned char *)s + i, n - i);
                        if (k && !plain && i + k <= stop) {
                                w_mem(w, s + i, k);
                                i += k;
                        } else {
                                w_ch(w, '?');
                                i += k ? k : 1;
                        }
                        continue;
                }
                if (c == '"' || c == '\\') {
                        if (!plain)
                                w_ch(w, '\\');
                        w_ch(w, (char)c);
                } else if (c >= 0x20 && c != 0x7f) {
                        w_ch(w, (char)c);
                } else if (!plain && c == '\t') {
                        W_LIT(w, "\\t");
                } else if (!plain && c == '\n') {
                        W_LIT(w, "\\n");
                } else if (!plain && c == '\r') {
                        W_LIT(w, "\\r");
                } else {
                        w_ch(w, '?');
                }
                i++;
        }
}

/* A JSON string value. Alerts and refunds carry identifiers from validated
 * records and rule files; every control character is escaped and invalid
 * UTF-8 becomes U+FFFD, so the line is valid JSON whatever the input. */
static void w_str(wbuf_t *w, const char *s, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        w_ch(w, '"');
        size_t i = 0;
        while (i < n && !w->full) {
                /* copy the longest run that needs no escaping at once */
                size_t j = i;
                while (j < n) {
                        unsigned char c = (unsigned char)s[j];
                        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f)
                                break;
                        j++;
                }
                w_mem(w, s + i, j - i);
                i = j;
                if (i >= n)
                        break;
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x80) {
                        size_t k =
                            pg_utf8_len((const unsigned char *)s + i, n - i);
                        if (k) {
                                w_mem(w, s + i, k);
                                i += k;
                        } else {
                                W_LIT(w, "\xEF\xBF\xBD");
                                i++;
                        }
                        continue;
                }
                switch (c) {
                case '"':
                        W_LIT(w, "\\\"");
                        break;
                case '\\':
                        W_LIT(w, "\\\\");
                        break;
                case '\n':
                        W_LIT(w, "\\n");
                        break;
                case '\r':
                        W_LIT(w, "\\r");
                        break;
                case '\t':
                        W_LIT(w, "\\t");
                        break;
                case '\b':
                        W_LIT(w, "\\b");
                        break;
                case '\f':
                        W_LIT(w, "\\f");
                        break;
                default: {
                        char e[6] = {'\\', 'u',         '0',
                                     '0',  hex[c >> 4], hex[c & 15]};
                        w_mem(w, e, 6);
                }
                }
                i++;
        }
        w_ch(w, '"');
}

/* A C string or JSON null. */
static void w_cstr(wbuf_t *w, const char *s)
{
        if (s)
                w_str(w, s, strlen(s));
        else
                W_LIT(w, "null");
}

/* A fixed-size char array that should hold a NUL: never read past it. */
static void w_arr(wbuf_t *w, const char *s, size_t cap)
{
        w_str(w, s, strnlen(s, cap));
}

static void w_time(wbuf_t *w, int64_t ms)
{
        char t[32];
        pg_time_format(ms, t, sizeof(t));
        w_str(w, t, strlen(t));
}

/* Key and value separator: `,"key":` (no comma for the first key). */
#define W_KEY(w, k) W_LIT((w), ",\"" k "\":")

static int w_done(wbuf_t *w)
{
        w_ch(w, '\n');
        if (w->full) {
                if (w->size)
                        w->p[0] = '\0';
                return -1;
        }
        w->p[w->n] = '\0';
        return (int)w->n;
}

/* ---------------------------------------------------------------------
 * Encoders
 * ------------------------------------------------------------------- */

int pg_codec_json_alert(char *buf, size_t size, const pg_alert_t *a)
{
        if (!buf || size == 0 || !a)
                return -1;
        wbuf_t w = {buf, size, 0, false};
        W_LIT(&w, "{\"type\":\"alert\"");
        W_KEY(&w, "alert_id");
        w_arr(&w, a->alert_id, sizeof(a->alert_id));
        W_KEY(&w, "rule_id");
        w_cstr(&w, a->rule_id);
        W_KEY(&w, "rule_version");
        w_cstr(&w, a->rule_version);
        W_KEY(&w, "rule_hash");
        w_cstr(&w, a->rule_hash);
        W_KEY(&w, "detector");
        w_cstr(&w, a->detector);
        W_KEY(&w, "finding");
        w_cstr(&w, a->finding);
        W_KEY(&w, "severity");
        w_cstr(&w, a->severity);
        W_KEY(&w, "mode");
        w_cstr(&w, a->mode);
        W_KEY(&w, "merchant_id");
        w_cstr(&w, a->merchant_id);
        W_KEY(&w, "terminal_id");
        w_cstr(&w, a->terminal_id);
        W_KEY(&w, "txn_ids");
        w_ch(&w, '[');
        int nt = a->n_txn_ids;
        if (nt > PG_MAX_RELATED + 1)
                nt = PG_MAX_RELATED + 1;
        for (int i = 0; i < nt; i++) {
                if (i)
                        w_ch(&w, ',');
                w_cstr(&w, a->txn_ids[i]);
        }
        w_ch(&w, ']');
        W_KEY(&w, "amount");
        w_i64(&w, a->amount);
        W_KEY(&w, "currency");
        w_cstr(&w, a->currency);
        /* an empty pan_masked is how a record says "none" (SEMANTICS 1) */
        if (a->pan_masked && a->pan_masked[0]) {
                W_KEY(&w, "pan_masked");
                w_cstr(&w, a->pan_masked);
        }
        W_KEY(&w, "reason");
        w_arr(&w, a->reason, sizeof(a->reason));
        /* only when a cooldown held alerts back (rules with cooldown) */
        if (a->suppressed > 0) {
                W_KEY(&w, "suppressed");
                w_i64(&w, a->suppressed);
        }
        W_KEY(&w, "event_time");
        w_time(&w, a->event_time);
        W_KEY(&w, "detected_at");
        w_time(&w, a->detected_at);
        w_ch(&w, '}');
        return w_done(&w);
}

int pg_codec_json_refund(char *buf, size_t size, const pg_refund_t *r)
{
        if (!buf || size == 0 || !r)
                return -1;
        wbuf_t w = {buf, size, 0, false};
        W_LIT(&w, "{\"type\":\"refund\"");
        W_KEY(&w, "refund_id");
        w_arr(&w, r->refund_id, sizeof(r->refund_id));
        W_KEY(&w, "alert_id");
        w_arr(&w, r->alert_id, sizeof(r->alert_id));
        W_KEY(&w, "rule_id");
        w_cstr(&w, r->rule_id);
        W_KEY(&w, "txn_id");
        w_cstr(&w, r->txn_id);
        W_KEY(&w, "rrn");
        w_cstr(&w, r->rrn);
        W_KEY(&w, "merchant_id");
        w_cstr(&w, r->merchant_id);
        W_KEY(&w, "terminal_id");
        w_cstr(&w, r->terminal_id);
        W_KEY(&w, "card_token");
        w_cstr(&w, r->card_token);
        W_KEY(&w, "amount");
        w_i64(&w, r->amount);
        W_KEY(&w, "currency");
        w_cstr(&w, r->currency);
        W_KEY(&w, "reason");
        w_cstr(&w, r->reason);
        W_KEY(&w, "decided_at");
        w_time(&w, r->decided_at);
        w_ch(&w, '}');
        return w_done(&w);
}

/* Bounds that keep a dead-letter entry within PG_JSON_OUT_MAX: every input
 * byte becomes at most two output bytes (w_masked). */
#define DETAIL_MAX 512
#define FIELD_MAX 64

int pg_codec_json_reject(char *buf, size_t size, pg_reject_t code,
                         const char *field, const char *detail,
                         uint64_t line_no, const char *raw, size_t raw_len)
{
        if (!buf || size == 0)
                return -1;
        wbuf_t w = {buf, size, 0, false};
        W_LIT(&w, "{\"type\":\"reject\",\"reason\":");
        w_cstr(&w, pg_reject_name(code));
        W_KEY(&w, "field");
        if (field) {
                w_ch(&w, '"');
                w_masked(&w, field, strnlen(field, FIELD_MAX), FIELD_MAX,
                         false);
                w_ch(&w, '"');
        } else {
                W_LIT(&w, "null");
        }
        W_KEY(&w, "detail");
        w_ch(&w, '"');
        if (detail)
                w_masked(&w, detail, strnlen(detail, DETAIL_MAX + 1),
                         DETAIL_MAX, false);
        w_ch(&w, '"');
        W_KEY(&w, "line_no");
        w_i64(&w, line_no > INT64_MAX ? INT64_MAX : (int64_t)line_no);
        W_KEY(&w, "raw");
        w_ch(&w, '"');
        if (raw)
                w_masked(&w, raw, raw_len, PG_JSON_RAW_MAX, false);
        w_ch(&w, '"');
        w_ch(&w, '}');
        return w_done(&w);
}

const char *pg_reject_name(pg_reject_t r)
{
        /* Stable: counters and dashboards key on these, and the oracle uses
         * the same names. */
        static const char *const names[PG_REJ__COUNT] = {
            [PG_REJ_NONE] = "none",
            [PG_REJ_MALFORMED] = "malformed",
            [PG_REJ_LINE_TOO_LONG] = "line_too_long",
            [PG_REJ_MISSING] = "missing",
            [PG_REJ_TYPE] = "type",
            [PG_REJ_EMPTY] = "empty",
            [PG_REJ_OVERSIZE] = "oversize",
            [PG_REJ_BAD_CHARS] = "bad_chars",
            [PG_REJ_ENUM] = "enum",
            [PG_REJ_AMOUNT] = "amount",
            [PG_REJ_CURRENCY] = "currency",
            [PG_REJ_TIME] = "time",
            [PG_REJ_DUPLICATE_FIELD] = "duplicate_field",
            [PG_REJ_CLEAR_PAN] = "clear_pan",
        };
        if ((unsigned)r >= PG_REJ__COUNT)
                return "unknown";
        return names[r];
}

/* ---------------------------------------------------------------------
 * Parser state and error reporting
 * ------------------------------------------------------------------- */

typedef struct pctx {
        const char *js;
        size_t len;
        const jsmntok_t *tok;
        int ntok;
        const char **field;
        char *err;
        size_t errsz;
        /* the first top-level key that repeats an earlier one: reported
         * only once the whole line is known to be valid JSON (order d.) */
        int dup_tok;
        int dup_field; /* pg_field_t, or -1 for an unknown key */
} pctx_t;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static pg_reject_t
fail(pctx_t *c, pg_reject_t code, int f, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        pg_reject_t r =
            pg_reject_vfail(c->field, c->err, c->errsz, code, f, fmt, ap);
        va_end(ap);
        return r;
}

/* A value quoted in an error message: printable ASCII, at most 32 bytes,
 * card-number-like digit runs masked. Only used for enum, currency and time
 * values, never for card_token or pan_masked. */
static const char *show(const char *s, size_t n, char *buf, size_t size)
{
        wbuf_t w = {buf, size, 0, false};
        w_masked(&w, s, n, 32, true);
        if (n > 32 && !w.full)
                W_LIT(&w, "...");
        buf[w.full ? 0 : w.n] = '\0';
        return buf;
}

/* ---------------------------------------------------------------------
 * Pass 3: grammar walk over the jsmn tokens
 * ------------------------------------------------------------------- */

/* Where a token's text begins and ends in the line: jsmn's string tokens
 * exclude the quotes. */
static inline int tok_begin(const jsmntok_t *t)
{
        return t->type == JSMN_STRING ? t->start - 1 : t->start;
}

static inline int tok_end(const jsmntok_t *t)
{
        return t->type == JSMN_STRING ? t->end + 1 : t->end;
}

/* The bytes [from, to) are whitespace around at most one sep (0: none). */
static bool gap_ok(const pctx_t *c, int from, int to, char sep)
{
        if (from > to)
                return false;
        const char *p = c->js + from, *e = c->js + to;
        while (p < e && is_ws((unsigned char)*p))
                p++;
        if (sep) {
                if (p >= e || *p != sep)
                        return false;
                p++;
                while (p < e && is_ws((unsigned char)*p))
                        p++;
        }
        return p == e;
}

/* Check a string token: no raw control character, valid escapes, no lone
 * surrogate. *escaped tells whether the text differs from its value. f is
 * the record field the string belongs to, for the message (-1: none). */
static pg_reject_t check_string(pctx_t *c, const jsmntok_t *t, int f,
                                bool *escaped)
{
        const char *p = c->js + t->start, *e = c->js + t->end;
        bool esc = false;
        while (p < e) {
                unsigned char ch = (unsigned char)*p;
                if (ch >= 0x20 && ch != '\\') {
                        p++;
                        continue;
                }
                if (ch < 0x20)
                        return fail(c, PG_REJ_BAD_CHARS, f,
                                    "raw control character in a string at "
                                    "column %d",
                                    (int)(p - c->js) + 1);
                uint32_t cp;
                int k = unescape_one(p + 1, e, &cp);
                if (k == ESC_SURROGATE)
                        return fail(c, PG_REJ_BAD_CHARS, f,
                                    "lone UTF-16 surrogate escape at column "
                                    "%d",
                                    (int)(p - c->js) + 1);
                if (k == ESC_BAD)
                        return fail(c, PG_REJ_MALFORMED, -1,
                                    "invalid escape in a string at column %d",
                                    (int)(p - c->js) + 1);
                esc = true;
                p += 1 + k;
        }
        if (escaped)
                *escaped = esc;
        return PG_REJ_NONE;
}

static pg_reject_t check_primitive(pctx_t *c, const jsmntok_t *t)
{
        const char *s = c->js + t->start;
        size_t n = (size_t)(t->end - t->start);
        bool integer;
        if ((n == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "null", 4))) ||
            (n == 5 && !memcmp(s, "false", 5)) || json_number(s, n, &integer))
                return PG_REJ_NONE;
        return fail(c, PG_REJ_MALFORMED, -1,
                    "invalid literal or number at column %d", t->start + 1);
}

/*
 * Validate the value at token i and everything nested in it; returns the
 * index of the token after it, or -1 with the reject in *rej. f is the
 * record field the value belongs to (-1 for nested or unknown values).
 */
static int walk(pctx_t *c, int i, int depth, int f, pg_reject_t *rej)
{
        if (i >= c->ntok) {
                *rej = fail(c, PG_REJ_MALFORMED, -1, "truncated JSON");
                return -1;
        }
        const jsmntok_t *t = &c->tok[i];
        switch (t->type) {
        case JSMN_STRING:
                *rej = check_string(c, t, f, NULL);
                return *rej ? -1 : i + 1;
        case JSMN_PRIMITIVE:
                *rej = check_primitive(c, t);
                return *rej ? -1 : i + 1;
        case JSMN_OBJECT:
        case JSMN_ARRAY:
                break;
        default:
                *rej = fail(c, PG_REJ_MALFORMED, -1, "invalid JSON");
                return -1;
        }
        if (depth >= MAX_DEPTH) {
                *rej = fail(c, PG_REJ_MALFORMED, -1,
                            "nested deeper than %d levels", MAX_DEPTH);
                return -1;
        }
        bool obj = t->type == JSMN_OBJECT;
        int pos = t->start + 1, j = i + 1;
        for (int k = 0; k < t->size; k++) {
                if (j >= c->ntok)
                        goto bad;
                const jsmntok_t *m = &c->tok[j];
                if (!gap_ok(c, pos, tok_begin(m), k ? ',' : 0))
                        goto bad;
                if (obj) {
                        /* a key: a string with exactly one value */
                        if (m->type != JSMN_STRING || m->size != 1)
                                goto bad;
                        *rej = check_string(c, m, -1, NULL);
                        if (*rej)
                                return -1;
                        pos = tok_end(m);
                        if (++j >= c->ntok)
                                goto bad;
                        m = &c->tok[j];
                        if (!gap_ok(c, pos, tok_begin(m), ':'))
                                goto bad;
                }
                j = walk(c, j, depth + 1, f, rej);
                if (j < 0)
                        return -1;
                pos = tok_end(m);
        }
        if (!gap_ok(c, pos, t->end - 1, 0))
                goto bad;
        return j;
bad:
        *rej = fail(c, PG_REJ_MALFORMED, -1, "invalid JSON %s near column %d",
                    obj ? "object" : "array", pos + 1);
        return -1;
}

/* 64-bit FNV-1a of a key's value (after unescaping), to find repeated
 * unknown keys without comparing every pair byte by byte. */
typedef struct ukey {
        uint64_t hash;
        int tok;
} ukey_t;

/* Bytes of a string token's value, one at a time, unescaping on the way
 * (the token is already checked). */
typedef struct ubytes {
        const char *p, *end;
        char buf[4];
        int bi, bn;
} ubytes_t;

static void ub_init(ubytes_t *u, const pctx_t *c, const jsmntok_t *t)
{
        u->p = c->js + t->start;
        u->end = c->js + t->end;
        u->bi = u->bn = 0;
}

static int ub_next(ubytes_t *u)
{
        if (u->bi < u->bn)
                return (unsigned char)u->buf[u->bi++];
        if (u->p >= u->end)
                return -1;
        char ch = *u->p++;
        if (ch != '\\')
                return (unsigned char)ch;
        uint32_t cp;
        int k = unescape_one(u->p, u->end, &cp);
        if (k <= 0) /* cannot happen after check_string; stay in bounds */
                return -1;
        u->p += k;
        u->bn = (int)utf8_put(cp, u->buf);
        u->bi = 1;
        return (unsigned char)u->buf[0];
}

static uint64_t key_hash(const pctx_t *c, const jsmntok_t *t)
{
        uint64_t h = 0xcbf29ce484222325ULL;
        ubytes_t u;
        ub_init(&u, c, t);
        for (int b; (b = ub_next(&u)) >= 0;)
                h = (h ^ (uint64_t)b) * 0x100000001b3ULL;
        return h;
}

static bool key_equal(const pctx_t *c, const jsmntok_t *a, const jsmntok_t *b)
{
        ubytes_t ua, ub;
        ub_init(&ua, c, a);
        ub_init(&ub, c, b);
        for (;;) {
                int x = ub_next(&ua), y = ub_next(&ub);
                if (x != y)
                        return false;
                if (x < 0)
                        return true;
        }
}

/* Field number of a key, -1 when unknown. Keys are compared by value, so
 * "txn\u005fid" is txn_id, as any JSON reader sees it. */
static int key_field(const pctx_t *c, const jsmntok_t *t, bool escaped)
{
        const char *s = c->js + t->start;
        size_t n = (size_t)(t->end - t->start);
        if (!escaped)
                return pg_record_field_lookup(s, n);
        char buf[16]; /* longer than any field name: unknown */
        size_t o = 0;
        ubytes_t u;
        ub_init(&u, c, t);
        for (int b; (b = ub_next(&u)) >= 0;) {
                if (o == sizeof(buf))
                        return -1;
                buf[o++] = (char)b;
        }
        return pg_record_field_lookup(buf, o);
}

/*
 * Walk the top-level object (token 0): check the grammar of everything in
 * it, note which token holds each known field's value (vt), and find the
 * first repeated key.
 */
static pg_reject_t walk_top(pctx_t *c, int vt[PG_F__COUNT])
{
        const jsmntok_t *t = &c->tok[0];
        ukey_t unknown[MAX_KEYS];
        int n_unknown = 0;
        pg_reject_t rej = PG_REJ_NONE;
        int pos = t->start + 1, j = 1;
        for (int k = 0; k < t->size; k++) {
                if (j >= c->ntok)
                        goto bad;
                const jsmntok_t *key = &c->tok[j];
                if (!gap_ok(c, pos, tok_begin(key), k ? ',' : 0) ||
                    key->type != JSMN_STRING || key->size != 1)
                        goto bad;
                bool escaped;
                rej = check_string(c, key, -1, &escaped);
                if (rej)
                        return rej;
                int f = key_field(c, key, escaped);
                if (f >= 0) {
                        if (vt[f] >= 0 && c->dup_tok < 0) {
                                c->dup_tok = j;
                                c->dup_field = f;
                        }
                        vt[f] = j + 1;
                } else if (c->dup_tok < 0 && n_unknown < MAX_KEYS) {
                        uint64_t h = key_hash(c, key);
                        for (int u = 0; u < n_unknown; u++) {
                                if (unknown[u].hash == h &&
                                    key_equal(c, &c->tok[unknown[u].tok],
                                              key)) {
                                        c->dup_tok = j;
                                        c->dup_field = -1;
                                        break;
                                }
                        }
                        unknown[n_unknown].hash = h;
                        unknown[n_unknown].tok = j;
                        n_unknown++;
                }
                pos = tok_end(key);
                if (++j >= c->ntok)
                        goto bad;
                const jsmntok_t *v = &c->tok[j];
                if (!gap_ok(c, pos, tok_begin(v), ':'))
                        goto bad;
                j = walk(c, j, 1, f, &rej);
                if (j < 0)
                        return rej;
                pos = tok_end(v);
        }
        if (!gap_ok(c, pos, t->end - 1, 0))
                goto bad;
        if (j != c->ntok)
                goto bad;
        return PG_REJ_NONE;
bad:
        return fail(c, PG_REJ_MALFORMED, -1,
                    "invalid JSON object near column %d", pos + 1);
}

/* ---------------------------------------------------------------------
 * Pass 4: fields
 * ------------------------------------------------------------------- */

static const char *json_type(const pctx_t *c, const jsmntok_t *t)
{
        switch (t->type) {
        case JSMN_STRING:
                return "a string";
        case JSMN_OBJECT:
                return "an object";
        case JSMN_ARRAY:
                return "an array";
        default:
                break;
        }
        char ch = c->js[t->start];
        if (ch == 't' || ch == 'f')
                return "a boolean";
        if (ch == 'n')
                return "null";
        return "a number";
}

static inline bool is_null(const pctx_t *c, const jsmntok_t *t)
{
        return t->type == JSMN_PRIMITIVE && c->js[t->start] == 'n';
}

static inline bool is_number(const pctx_t *c, const jsmntok_t *t)
{
        char ch = c->js[t->start];
        return t->type == JSMN_PRIMITIVE && (ch == '-' || is_digit(ch));
}

/* The value token of field f, or NULL when absent or null. Sets *missing
 * for the message of a required field. */
static const jsmntok_t *value_of(const pctx_t *c, const int *vt, int f,
                                 const char **missing)
{
        if (vt[f] < 0) {
                *missing = "missing";
                return NULL;
        }
        const jsmntok_t *t = &c->tok[vt[f]];
        if (is_null(c, t)) {
                *missing = "null, but the field is required";
                return NULL;
        }
        return t;
}

/*
 * Unescape a string token into dst (room for PG_STR_MAX bytes and a NUL).
 * Returns false when the value is over PG_STR_MAX bytes. *ctrl is set when
 * the value holds a control character (< 0x20 or 0x7f), which only an
 * escape can produce (raw ones were rejected in the walk) except for 0x7f.
 */
static bool unescape_str(const pctx_t *c, const jsmntok_t *t, pg_str_t *dst,
                         bool *ctrl)
{
        const char *p = c->js + t->start, *e = c->js + t->end;
        char *o = dst->s, *oe = dst->s + PG_STR_MAX;
        bool bad = false;
        while (p < e) {
                unsigned char ch = (unsigned char)*p;
                if (ch != '\\') {
                        if (o == oe)
                                return false;
                        bad |= ch == 0x7f;
                        *o++ = (char)ch;
                        p++;
                        continue;
                }
                uint32_t cp;
                int k = unescape_one(p + 1, e, &cp);
                if (k <= 0) /* cannot happen after check_string */
                        return false;
                p += 1 + k;
                char u[4];
                size_t un = utf8_put(cp, u);
                if ((size_t)(oe - o) < un)
                        return false;
                bad |= cp < 0x20 || cp == 0x7f;
                memcpy(o, u, un);
                o += un;
        }
        dst->len = (uint8_t)(o - dst->s);
        *o = '\0';
        *ctrl = bad;
        return true;
}

/*
 * A string-typed field (strings, enums, a string event_time) into dst,
 * checking in order: missing/null, type, empty, oversize, control
 * characters (skipped when check_ctrl is false). For an optional field
 * null and "" leave dst empty.
 */
static pg_reject_t get_str(pctx_t *c, const int *vt, int f, bool required,
                           bool check_ctrl, pg_str_t *dst)
{
        const char *missing;
        const jsmntok_t *t = value_of(c, vt, f, &missing);
        dst->len = 0;
        dst->s[0] = '\0';
        if (!t)
                return required ? fail(c, PG_REJ_MISSING, f, "%s", missing)
                                : PG_REJ_NONE;
        if (t->type != JSMN_STRING)
                return fail(c, PG_REJ_TYPE, f, "must be a string, found %s",
                            json_type(c, t));
        bool ctrl = false;
        if (!unescape_str(c, t, dst, &ctrl)) {
                dst->len = 0;
                dst->s[0] = '\0';
                return fail(c, PG_REJ_OVERSIZE, f, "longer than %d bytes",
                            PG_STR_MAX);
        }
        if (dst->len == 0)
                return required ? fail(c, PG_REJ_EMPTY, f, "empty string")
                                : PG_REJ_NONE;
        if (check_ctrl && ctrl)
                return fail(c, PG_REJ_BAD_CHARS, f,
                            "contains a control character");
        return PG_REJ_NONE;
}

static pg_reject_t get_enum(pctx_t *c, const int *vt, int f, bool required,
                            uint8_t *dst)
{
        pg_str_t s;
        pg_reject_t r = get_str(c, vt, f, required, true, &s);
        if (r)
                return r;
        if (s.len == 0) /* optional and absent */
                return PG_REJ_NONE;
        int v = pg_record_enum_lookup((pg_field_t)f, s.s, s.len);
        if (v < 0) {
                char b[48];
                const char *list = f == PG_F_KIND ? "purchase, refund, "
                                                    "reversal, void"
                                   : f == PG_F_STATUS
                                       ? "approved, declined, error"
                                       : "chip, swipe, contactless, keyed, "
                                         "ecom";
                return fail(c, PG_REJ_ENUM, f, "'%s' is not one of %s",
                            show(s.s, s.len, b, sizeof(b)), list);
        }
        *dst = (uint8_t)v;
        return PG_REJ_NONE;
}

/* amount / expected_amount: a JSON integer that fits int64. */
static pg_reject_t get_amount(pctx_t *c, const int *vt, int f, bool required,
                              int64_t *dst, bool *present)
{
        const char *missing;
        const jsmntok_t *t = value_of(c, vt, f, &missing);
        *present = false;
        if (!t)
                return required ? fail(c, PG_REJ_MISSING, f, "%s", missing)
                                : PG_REJ_NONE;
        const char *what = f == PG_F_AMOUNT ? "must be a positive integer"
                                            : "must be a non-negative integer";
        if (!is_number(c, t))
                return fail(c, PG_REJ_TYPE, f, "%s, found %s", what,
                            json_type(c, t));
        const char *s = c->js + t->start;
        size_t n = (size_t)(t->end - t->start);
        bool integer = false;
        (void)json_number(s, n, &integer); /* grammar checked in the walk */
        if (!integer)
                return fail(c, PG_REJ_AMOUNT, f,
                            "%s in minor units, without fraction or "
                            "exponent",
                            what);
        if (!parse_i64(s, n, dst))
                return fail(c, PG_REJ_AMOUNT, f,
                            "%s, found one outside the int64 range", what);
        *present = true;
        return PG_REJ_NONE;
}

static pg_reject_t get_time(pctx_t *c, const int *vt, int64_t *dst)
{
        const int f = PG_F_EVENT_TIME;
        const char *missing;
        const jsmntok_t *t = value_of(c, vt, f, &missing);
        if (!t)
                return fail(c, PG_REJ_MISSING, f, "%s", missing);
        int64_t v;
        if (is_number(c, t)) {
                const char *s = c->js + t->start;
                size_t n = (size_t)(t->end - t->start);
                bool integer = false;
                (void)json_number(s, n, &integer);
                if (!integer || !parse_i64(s, n, &v))
                        return fail(c, PG_REJ_TIME, f,
                                    "must be integer ms since the epoch or "
                                    "an RFC 3339 string");
        } else if (t->type == JSMN_STRING) {
                /* Control characters cannot parse as a time: they are
                 * reported as a bad time, not checked apart. */
                pg_str_t s;
                pg_reject_t r = get_str(c, vt, f, true, false, &s);
                if (r)
                        return r;
                if (pg_time_parse(s.s, s.len, &v) != 0) {
                        char b[48];
                        return fail(c, PG_REJ_TIME, f,
                                    "'%s' is not an RFC 3339 time "
                                    "(YYYY-MM-DDTHH:MM:SS[.fff] and Z or "
                                    "+HH:MM)",
                                    show(s.s, s.len, b, sizeof(b)));
                }
        } else {
                return fail(c, PG_REJ_TYPE, f,
                            "must be integer ms since the epoch or an RFC "
                            "3339 string, found %s",
                            json_type(c, t));
        }
        if (v < 0 || v > PG_TIME_MAX_MS)
                return fail(c, PG_REJ_TIME, f,
                            "outside 1970-01-01T00:00:00Z .. "
                            "9999-12-31T23:59:59.999Z");
        *dst = v;
        return PG_REJ_NONE;
}

#define CHECK(expr)                                                            \
        do {                                                                   \
                pg_reject_t r_ = (expr);                                       \
                if (r_)                                                        \
                        return r_;                                             \
        } while (0)

/* Pass 4, in pg_field_t order (reject order e. at the top of the file). */
static pg_reject_t decode_fields(pctx_t *c, const int *vt, pg_record_t *out)
{
        CHECK(get_str(c, vt, PG_F_TXN_ID, true, true, &out->txn_id));
        CHECK(get_enum(c, vt, PG_F_KIND, true, &out->kind));
        CHECK(get_enum(c, vt, PG_F_STATUS, true, &out->status));
        CHECK(get_str(c, vt, PG_F_MERCHANT_ID, true, true, &out->merchant_id));
        CHECK(get_str(c, vt, PG_F_TERMINAL_ID, true, true, &out->terminal_id));
        CHECK(get_str(c, vt, PG_F_STAN, true, true, &out->stan));
        CHECK(get_str(c, vt, PG_F_RRN, true, true, &out->rrn));

        CHECK(get_str(c, vt, PG_F_CARD_TOKEN, true, true, &out->card_token));
        const pg_str_t *ct = &out->card_token;
        if (pg_is_clear_pan(ct->s, ct->len))
                return fail(c, PG_REJ_CLEAR_PAN, PG_F_CARD_TOKEN,
                            "looks like a clear card number (13-19 digits "
                            "passing the Luhn check), expected a token");

        CHECK(get_str(c, vt, PG_F_PAN_MASKED, false, true, &out->pan_masked));
        if (out->pan_masked.len &&
            !pg_pan_masked_ok(out->pan_masked.s, out->pan_masked.len))
                return fail(c, PG_REJ_CLEAR_PAN, PG_F_PAN_MASKED,
                            "must be masked: at most the first 6 and last 4 "
                            "digits around '*', 'x' or 'X'");

        bool present;
        CHECK(get_amount(c, vt, PG_F_AMOUNT, true, &out->amount, &present));
        if (out->amount <= 0)
                return fail(c, PG_REJ_AMOUNT, PG_F_AMOUNT,
                            "must be a positive integer, found %lld",
                            (long long)out->amount);

        CHECK(get_str(c, vt, PG_F_CURRENCY, true, true, &out->currency));
        const pg_str_t *cu = &out->currency;
        if (cu->len != 3 || cu->s[0] < 'A' || cu->s[0] > 'Z' ||
            cu->s[1] < 'A' || cu->s[1] > 'Z' || cu->s[2] < 'A' ||
            cu->s[2] > 'Z') {
                char b[48];
                return fail(c, PG_REJ_CURRENCY, PG_F_CURRENCY,
                            "'%s' is not three upper-case letters (ISO 4217)",
                            show(cu->s, cu->len, b, sizeof(b)));
        }

        CHECK(get_amount(c, vt, PG_F_EXPECTED_AMOUNT, false,
                         &out->expected_amount, &out->has_expected));
        if (out->has_expected && out->expected_amount < 0)
                return fail(c, PG_REJ_AMOUNT, PG_F_EXPECTED_AMOUNT,
                            "must be a non-negative integer, found %lld",
                            (long long)out->expected_amount);
        if (!out->has_expected)
                out->expected_amount = 0;

        CHECK(get_str(c, vt, PG_F_ORDER_ID, false, true, &out->order_id));

        /* original_rrn: required on what refers to a purchase, ignored (not
         * even type-checked, not kept) on a purchase. */
        if (out->kind != PG_KIND_PURCHASE) {
                pg_reject_t r = get_str(c, vt, PG_F_ORIGINAL_RRN, true, true,
                                        &out->original_rrn);
                if (r == PG_REJ_MISSING || r == PG_REJ_EMPTY)
                        return fail(c, r, PG_F_ORIGINAL_RRN,
                                    "required (non-empty) on a %s",
                                    pg_kind_name(out->kind));
                if (r)
                        return r;
        }

        CHECK(get_time(c, vt, &out->event_time));
        CHECK(get_enum(c, vt, PG_F_ENTRY_MODE, false, &out->entry_mode));

        const char *missing;
        const jsmntok_t *t = value_of(c, vt, PG_F_RETRANSMISSION, &missing);
        if (t) {
                char ch = c->js[t->start];
                if (t->type != JSMN_PRIMITIVE || (ch != 't' && ch != 'f'))
                        return fail(c, PG_REJ_TYPE, PG_F_RETRANSMISSION,
                                    "must be true or false, found %s",
                                    json_type(c, t));
                out->retransmission = ch == 't';
        }
        return PG_REJ_NONE;
}

/* ---------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------- */

/* Whether byte pos of line lies inside a JSON string (quotes counted from
 * the start, escapes skipped). */
static bool nul_in_string(const char *line, size_t pos)
{
        bool in = false;
        for (size_t i = 0; i < pos; i++) {
                if (in && line[i] == '\\')
                        i++;
                else if (line[i] == '"')
                        in = !in;
        }
        return in;
}

pg_reject_t pg_codec_json_parse(const char *line, size_t len, pg_record_t *out,
                                const char **field, char *errstr,
                                size_t errstr_size)
{
        pctx_t c;
        c.js = line;
        c.len = len;
        c.tok = NULL;
        c.ntok = 0;
        c.field = field;
        c.err = errstr;
        c.errsz = errstr_size;
        c.dup_tok = -1;
        c.dup_field = -1;
        if (field)
                *field = NULL;
        if (errstr && errstr_size)
                errstr[0] = '\0';
        if (!line && len)
                return fail(&c, PG_REJ_MALFORMED, -1, "no input");

        /* a. */
        if (len > PG_JSON_MAX_LINE)
                return fail(&c, PG_REJ_LINE_TOO_LONG, -1,
                            "line longer than %d bytes", PG_JSON_MAX_LINE);
        /* b. */
        size_t bad = pg_utf8_check((const unsigned char *)line, len);
        if (bad < len)
                return fail(&c, PG_REJ_BAD_CHARS, -1,
                            "invalid UTF-8 at column %zu", bad + 1);
        /* c. A cheap look at the first byte gives a clear message for the
         * common non-objects and spares jsmn a large array. */
        size_t lead = 0;
        while (lead < len && is_ws((unsigned char)line[lead]))
                lead++;
        if (lead == len)
                return fail(&c, PG_REJ_MALFORMED, -1, "empty line");
        if (line[lead] != '{')
                return fail(&c, PG_REJ_MALFORMED, -1,
                            "not a JSON object (starts at column %zu with "
                            "something else)",
                            lead + 1);

        jsmntok_t tok[PG_JSON_MAX_TOKENS];
        jsmn_parser p;
        jsmn_init(&p);
        int n = jsmn_parse(&p, line, len, tok, PG_JSON_MAX_TOKENS);
        if (n == JSMN_ERROR_NOMEM)
                return fail(&c, PG_REJ_MALFORMED, -1,
                            "too many tokens (more than %d)",
                            PG_JSON_MAX_TOKENS);
        if (n == JSMN_ERROR_PART) {
                /* jsmn stops at a NUL byte: one inside a string is a raw
                 * control character, like any other (SEMANTICS.md 1). */
                const char *z = memchr(line, '\0', len);
                if (z && nul_in_string(line, (size_t)(z - line)))
                        return fail(&c, PG_REJ_BAD_CHARS, -1,
                                    "raw NUL character in a string at "
                                    "column %zu",
                                    (size_t)(z - line) + 1);
                return fail(&c, PG_REJ_MALFORMED, -1,
                            "truncated JSON (an object, array or string is "
                            "not closed)");
        }
        if (n < 1)
                return fail(&c, PG_REJ_MALFORMED, -1,
                            "invalid JSON at column %u", p.pos + 1);
        c.tok = tok;
        c.ntok = n;
        /* jsmn stops at a NUL byte; anything after the object, NUL
         * included, must be whitespace. */
        if (tok[0].type != JSMN_OBJECT || tok[0].end < 1)
                return fail(&c, PG_REJ_MALFORMED, -1, "not a JSON object");
        for (size_t i = (size_t)tok[0].end; i < len; i++)
                if (!is_ws((unsigned char)line[i]))
                        return fail(&c, PG_REJ_MALFORMED, -1,
                                    "data after the JSON object at column "
                                    "%zu",
                                    i + 1);

        int vt[PG_F__COUNT];
        for (int f = 0; f < PG_F__COUNT; f++)
                vt[f] = -1;
        pg_reject_t r = walk_top(&c, vt);
        if (r)
                return r;
        /* d. */
        if (c.dup_tok >= 0)
                return c.dup_field >= 0
                           ? fail(&c, PG_REJ_DUPLICATE_FIELD, c.dup_field,
                                  "appears more than once")
                           : fail(&c, PG_REJ_DUPLICATE_FIELD, -1,
                                  "a key appears more than once (at column "
                                  "%d)",
                                  tok[c.dup_tok].start);
        /* e. The record starts from zero so that unused bytes of the
         * fixed-size strings (and padding) are the same for every parse:
         * records are copied and compared as memory elsewhere. */
        uint64_t seq = out->seq;
        memset(out, 0, sizeof(*out));
        out->seq = seq;
        return decode_fields(&c, vt, out);
}
