/*
 * codec_pb.c - protobuf (schemas/posguard.proto) <-> records, alerts,
 * refund commands and dead-letter envelopes (see codec_pb.h).
 *
 * Decoding a Record, in three steps, none of which calls malloc:
 *
 *   1. Wire scan: one walk over the top-level fields checks the framing
 *      (tags, varints, lengths), notes where each known field lies and with
 *      which wire type, checks the UTF-8 of every known string field
 *      (protobuf-c does not) and finds the first known field that repeats.
 *      The hot path first tries a scan that takes only a message as
 *      encoders write it (known fields once each, their own wire types,
 *      short tags, printable strings) and falls back to the general one at
 *      the first byte that is not; the reference decoder runs the general
 *      scan alone, so the tests and fuzzers comparing the two decoders
 *      check one scan against the other.
 *   2. protobuf-c unpacks the message with an allocator over the caller's
 *      arena. Unknown fields, fields of the wrong wire type and strings over
 *      PG_STR_MAX bytes are left out first (a compact copy in the arena): the
 *      scan already knows what to say about them, and so one record never
 *      needs more than PG_PB_ARENA_MIN bytes of arena whatever it holds.
 *   3. Fields, checked exactly as codec_json.c checks them, in pg_field_t
 *      order. String bytes are taken from the message at the scan's offsets
 *      (protobuf-c's copies are C strings: a NUL byte would cut them short).
 *
 * Reject order (the counterpart of codec_json.c's, so that a record sent
 * in either form gets the same reason and field):
 *
 *   a. message over PG_JSON_MAX_LINE bytes              line_too_long
 *   b. empty message; not protobuf wire format: a tag of field 0 or past
 *      32 bits, a tag or a length written in more than 5 bytes, a varint
 *      over 10 bytes or 64 bits, a length past the end, a group or an
 *      invalid wire type (3, 4, 6, 7)                   malformed
 *   c. invalid UTF-8 in a known string field, any occurrence, even one the
 *      record would ignore (original_rrn of a purchase)  bad_chars
 *   d. a known field that occurs more than once. Protobuf would keep the
 *      last one; like a repeated JSON key, an ambiguous record must not
 *      move money. Unknown fields may repeat.            duplicate_field
 *   e. protobuf-c refuses the message, or the arena is too small (counted
 *      in arena->overflow)                               malformed
 *   f. fields in pg_field_t order (= field numbers 1..17): txn_id, kind,
 *      status, merchant_id, terminal_id, stan, rrn, card_token, pan_masked,
 *      amount, currency, expected_amount, order_id, original_rrn
 *      (refund/reversal/void only), event_time, entry_mode, retransmission.
 *      For one field:
 *        wrong wire type (a string sent as a varint...)  type
 *        absent, or *_UNSPECIFIED (required)             missing
 *        "" (required)                    empty   ("" optional: absent)
 *        over PG_STR_MAX bytes            oversize
 *        control character (< 0x20, 0x7f, NUL included)  bad_chars
 *        then the field's own rule: enum (a number that is not a value of
 *        the enum), clear_pan, amount, currency, time (0..PG_TIME_MAX_MS).
 *
 * Wire type comes before missing here while JSON checks missing first: a
 * field of the wrong wire type is there (like a JSON value of the wrong
 * type), so both orders give the same answer.
 *
 * Numbers follow protobuf: an enum is an int32 on the wire (the low 32 bits
 * of a longer varint count, as in every protobuf runtime), a bool is true
 * for any non-zero varint.
 *
 * Card data rule: an error message never quotes card_token or pan_masked;
 * the currency it may quote goes through show(), which masks digit runs
 * that look like card numbers. The dead-letter encoder masks those runs in
 * the payload, the detail, the field and the topic.
 *
 * Every function here works on its arguments only: safe from any thread
 * (one arena per thread).
 */
#include "codec_pb.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <posguard.pb-c.h>

#include "codec_common.h"
#include "util_text.h"

/* ---------------------------------------------------------------------
 * Arena
 * ------------------------------------------------------------------- */

#define ARENA_ALIGN _Alignof(max_align_t)

void pg_pb_arena_init(pg_pb_arena_t *a, void *buf, size_t size)
{
        uintptr_t p = (uintptr_t)buf;
        uintptr_t q = (p + ARENA_ALIGN - 1) & ~(uintptr_t)(ARENA_ALIGN - 1);
        size_t skip = (size_t)(q - p);
        a->base =
            buf ? (unsigned char *)buf + (skip < size ? skip : size) : NULL;
        a->size = buf && skip < size ? size - skip : 0;
        a->used = 0;
        a->overflow = 0;
}

static void *arena_alloc(void *data, size_t size)
{
        pg_pb_arena_t *a = data;
        size_t at = (a->used + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
        if (size == 0)
                size = 1;
        if (at > a->size || size > a->size - at) {
                a->overflow++;
                return NULL;
        }
        a->used = at + size;
        return a->base + at;
}

static void arena_free(void *data, void *p)
{
        /* memory goes back when the arena is reset */
        (void)data;
        (void)p;
}

/* ---------------------------------------------------------------------
 * Wire format
 * ------------------------------------------------------------------- */

enum { W_VARINT = 0, W_I64 = 1, W_LEN = 2, W_I32 = 5 };

static const char *wire_name(unsigned wt)
{
        switch (wt) {
        case W_VARINT:
                return "a varint";
        case W_I64:
                return "a 64-bit value";
        case W_LEN:
                return "a length-delimited value";
        default:
                return "a 32-bit value";
        }
}

/* A varint at p[*i..n): at most 10 bytes, no bit past 64. */
static inline bool rd_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *v)
{
        if (*i < n && p[*i] < 0x80) { /* one byte: tags, lengths, enums */
                *v = p[(*i)++];
                return true;
        }
        uint64_t r = 0;
        for (unsigned k = 0; k < 10 && *i < n; k++) {
                uint8_t b = p[(*i)++];
                if (k == 9 && b > 1)
                        return false;
                r |= (uint64_t)(b & 0x7f) << (7 * k);
                if (!(b & 0x80)) {
                        *v = r;
                        return true;
                }
        }
        return false;
}

/* One top-level field of a message. */
typedef struct wfield {
        uint32_t num;
        unsigned wire;
        size_t tag_at; /* first byte of the tag */
        size_t at;     /* first byte of the value (W_LEN: of its bytes) */
        size_t end;    /* one past the value */
        uint64_t v;    /* W_VARINT: the value */
} wfield_t;

/* The field at p[*i..n) into *f: 1, or 0 at the end, or -1 with a reason
 * (static text) when the bytes are not protobuf. */
static int next_field(const uint8_t *p, size_t n, size_t *i, wfield_t *f,
                      const char **why)
{
        if (*i >= n)
                return 0;
        uint64_t tag, v;
        f->tag_at = *i;
        f->v = 0;
        if (!rd_varint(p, n, i, &tag) || tag > UINT32_MAX) {
                *why = "bad tag";
                return -1;
        }
        /* A tag and a length are 32-bit varints: at most 5 bytes, as
         * protobuf-c (and so the reference decoder) reads them; longer
         * (zero-padded) ones are refused, not read. */
        if (*i - f->tag_at > 5) {
                *why = "tag longer than 5 bytes";
                return -1;
        }
        f->num = (uint32_t)(tag >> 3);
        f->wire = (unsigned)(tag & 7);
        if (f->num == 0) {
                *why = "field number 0";
                return -1;
        }
        f->at = *i;
        switch (f->wire) {
        case W_VARINT:
                if (!rd_varint(p, n, i, &f->v)) {
                        *why = "truncated or overlong varint";
                        return -1;
                }
                break;
        case W_I64:
        case W_I32: {
                size_t k = f->wire == W_I64 ? 8 : 4;
                if (n - *i < k) {
                        *why = "truncated fixed-size value";
                        return -1;
                }
                *i += k;
                break;
        }
        case W_LEN:
                if (!rd_varint(p, n, i, &v) || v > n - *i) {
                        *why = "length past the end of the message";
                        return -1;
                }
                if (*i - f->at > 5) {
                        *why = "length longer than 5 bytes";
                        return -1;
                }
                f->at = *i;
                *i += (size_t)v;
                break;
        default:
                *why = "group or invalid wire type";
                return -1;
        }
        f->end = *i;
        return 1;
}

/* ---------------------------------------------------------------------
 * The Record's fields: number f + 1 is pg_field_t f (test_codec_pb checks
 * this table against the generated descriptor).
 * ------------------------------------------------------------------- */

/* Every known field: its pg_field_t name, its name in the generated
 * struct and its wire type. */
#define RECORD_FIELDS(X)                                                       \
        X(TXN_ID, txn_id, W_LEN)                                               \
        X(KIND, kind, W_VARINT)                                                \
        X(STATUS, status, W_VARINT)                                            \
        X(MERCHANT_ID, merchant_id, W_LEN)                                     \
        X(TERMINAL_ID, terminal_id, W_LEN)                                     \
        X(STAN, stan, W_LEN)                                                   \
        X(RRN, rrn, W_LEN)                                                     \
        X(CARD_TOKEN, card_token, W_LEN)                                       \
        X(PAN_MASKED, pan_masked, W_LEN)                                       \
        X(AMOUNT, amount, W_VARINT)                                            \
        X(CURRENCY, currency, W_LEN)                                           \
        X(EXPECTED_AMOUNT, expected_amount, W_VARINT)                          \
        X(ORDER_ID, order_id, W_LEN)                                           \
        X(ORIGINAL_RRN, original_rrn, W_LEN)                                   \
        X(EVENT_TIME, event_time, W_VARINT)                                    \
        X(ENTRY_MODE, entry_mode, W_VARINT)                                    \
        X(RETRANSMISSION, retransmission, W_VARINT)

#define RF(F, name, w) [PG_F_##F] = {w, offsetof(Posguard__V1__Record, name)},
static const struct rfield {
        uint8_t wire;
        uint16_t off;
} FIELDS[PG_F__COUNT] = {RECORD_FIELDS(RF)};

/* A field's tag with its own wire type -> field + 1 (0: any other tag),
 * for the fast scan. */
#define TAG_MAX ((PG_F__COUNT << 3) | 7)
#define FT(F, name, w) [((PG_F_##F + 1) << 3) | w] = PG_F_##F + 1,
static const uint8_t FAST_TAGS[TAG_MAX + 1] = {RECORD_FIELDS(FT)};

/* What the scan learnt about one known field (its last occurrence), in 24
 * bytes: the scan clears one per field of every record. Offsets fit 32
 * bits (a message is at most PG_JSON_MAX_LINE bytes, checked first). */
typedef struct kfield {
        uint8_t n; /* occurrences, saturating */
        bool wrong_type;
        bool printable; /* a string of printable ASCII only (0x20..0x7e) */
        uint8_t wire;
        uint32_t tag_at, at, end;
        uint64_t v; /* a varint's value */
} kfield_t;

typedef struct scan {
        kfield_t f[PG_F__COUNT];
        int dup;            /* the first field that repeats, or -1 */
        int bad_utf8;       /* the first string field with invalid UTF-8 */
        size_t bad_utf8_at; /* offset of the bad byte in the message */
        bool compact;       /* something to leave out before unpacking */
        size_t keep;        /* bytes of the fields kept */
        const char *why;    /* framing error */
        size_t why_at;
} scan_t;

/* Whether p[0..n) is printable ASCII (0x20..0x7e) only, 8 bytes at a
 * time: a byte b of a word fails when b >= 0x80, b < 0x20 or b == 0x7f.
 * The usual zero-byte tests say so without a false "all good": b - 0x20
 * borrows (sets bit 7) for b < 0x20, and (b ^ 0x7f) - 1 does for 0x7f;
 * and-ing with ~b masks what b's own bit 7 would set, which the first
 * test (w & 0x80...) catches anyway. */
static inline bool printable_word(uint64_t w)
{
        const uint64_t ones = 0x0101010101010101ULL;
        const uint64_t high = 0x8080808080808080ULL;
        uint64_t del = w ^ (0x7f * ones);
        return !((w | ((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & high);
}

/* inlined: a call per string costs a third of the check */
static inline __attribute__((always_inline)) bool
printable_ascii(const uint8_t *p, size_t n)
{
        uint64_t w;
        if (n >= 8) {
                size_t i = 0;
                for (; i + 8 < n; i += 8) {
                        memcpy(&w, p + i, 8);
                        if (!printable_word(w))
                                return false;
                }
                /* the last 8 bytes, overlapping what was checked: no loop
                 * over a tail of single bytes */
                memcpy(&w, p + n - 8, 8);
                return printable_word(w);
        }
        /* under 8 bytes: in a word of spaces (printable), from at most
         * two overlapping 4-byte reads or single bytes */
        w = 0x2020202020202020ULL;
        if (n >= 4) {
                uint32_t a, b;
                memcpy(&a, p, 4);
                memcpy(&b, p + n - 4, 4);
                w = (uint64_t)a | (uint64_t)b << 32;
        } else if (n >= 2) {
                uint16_t a, b;
                memcpy(&a, p, 2);
                memcpy(&b, p + n - 2, 2);
                w = (w & ~0xffffffffULL) | a | (uint32_t)b << 16;
        } else if (n == 1) {
                w = (w & ~0xffULL) | p[0];
        }
        return printable_word(w);
}

static bool scan_record(const uint8_t *p, size_t n, scan_t *s)
{
        memset(s, 0, sizeof(*s));
        s->dup = -1;
        s->bad_utf8 = -1;
        size_t i = 0;
        wfield_t w;
        int r;
        while ((r = next_field(p, n, &i, &w, &s->why)) > 0) {
                if (w.num > PG_F__COUNT) {
                        s->compact = true;
                        continue;
                }
                int f = (int)w.num - 1;
                kfield_t *k = &s->f[f];
                if (k->n && s->dup < 0)
                        s->dup = f;
                if (k->n < UINT8_MAX)
                        k->n++;
                k->wire = (uint8_t)w.wire;
                k->tag_at = (uint32_t)w.tag_at;
                k->at = (uint32_t)w.at;
                k->end = (uint32_t)w.end;
                k->v = w.v;
                k->wrong_type = w.wire != FIELDS[f].wire;
                if (k->wrong_type) {
                        s->compact = true;
                        continue;
                }
                if (w.wire == W_LEN) {
                        size_t len = w.end - w.at;
                        /* printable ASCII (nearly every string) is valid
                         * UTF-8 without control characters: one cheap pass
                         * answers both checks */
                        k->printable = printable_ascii(p + w.at, len);
                        size_t bad =
                            k->printable ? len : pg_utf8_check(p + w.at, len);
                        if (bad < len && s->bad_utf8 < 0) {
                                s->bad_utf8 = f;
                                s->bad_utf8_at = w.at + bad;
                        }
                        if (len > PG_STR_MAX) {
                                s->compact = true;
                                continue;
                        }
                }
                s->keep += w.end - w.tag_at;
        }
        if (r < 0)
                s->why_at = w.tag_at;
        return r == 0;
}

/* The scan of a message as our encoders, and most others, write it: known
 * fields only, each once, with its own wire type, tags of 1 or 2 bytes,
 * strings of printable ASCII no longer than PG_STR_MAX. For such a message
 * it fills *s exactly as scan_record does (s cleared by the caller); at the
 * first byte that is anything else it returns false, and the caller scans
 * the message again with scan_record, which knows what to say about it.
 * The reference decoder uses scan_record alone, so every comparison of the
 * two decoders (tests, fuzzers) holds this scan to the general one. */
static bool scan_fast(const uint8_t *p, size_t n, scan_t *s)
{
        size_t i = 0, tag_at;
        while (i < n) {
                tag_at = i;
                unsigned tag = p[i++];
                if (tag >= 0x80) { /* fields 16 and 17: two bytes */
                        if (i == n || p[i] >= 0x80)
                                return false;
                        tag = (tag & 0x7f) | (unsigned)p[i++] << 7;
                }
                if (tag > TAG_MAX || !FAST_TAGS[tag])
                        return false;
                kfield_t *k = &s->f[FAST_TAGS[tag] - 1];
                if (k->n)
                        return false; /* a repeat: the general scan says so */
                if ((tag & 7) == W_LEN) {
                        if (i == n)
                                return false;
                        size_t len = p[i++];
                        if (len > PG_STR_MAX || len > n - i ||
                            !printable_ascii(p + i, len))
                                return false;
                        k->printable = true;
                        k->at = (uint32_t)i;
                        i += len;
                } else {
                        k->at = (uint32_t)i;
                        if (!rd_varint(p, n, &i, &k->v))
                                return false;
                }
                k->n = 1;
                k->wire = (uint8_t)(tag & 7);
                k->tag_at = (uint32_t)tag_at;
                k->end = (uint32_t)i;
        }
        s->keep = n;
        return true;
}

/* Steps 1: the fast scan where it applies (fast), the general one
 * otherwise. */
static bool scan(const uint8_t *p, size_t n, scan_t *s, bool fast)
{
        if (fast) {
                memset(s, 0, sizeof(*s));
                s->dup = -1;
                s->bad_utf8 = -1;
                if (scan_fast(p, n, s))
                        return true;
        }
        return scan_record(p, n, s);
}

/* ---------------------------------------------------------------------
 * Decoding
 * ------------------------------------------------------------------- */

typedef struct dctx {
        const uint8_t *p; /* the message */
        const scan_t *sc;
        /* the message as protobuf-c unpacked it (the reference decoder), or
         * NULL: numbers are read from the wire at the scan's offsets */
        const Posguard__V1__Record *m;
        const char **field;
        char *err;
        size_t errsz;
} dctx_t;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static pg_reject_t
fail(dctx_t *c, pg_reject_t code, int f, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        pg_reject_t r =
            pg_reject_vfail(c->field, c->err, c->errsz, code, f, fmt, ap);
        va_end(ap);
        return r;
}

/* A value quoted in an error message: card-number-like digit runs masked,
 * then made printable, at most 32 bytes. Never used for card_token or
 * pan_masked. n <= PG_STR_MAX. */
static const char *show(const char *s, size_t n, char *buf, size_t size)
{
        char tmp[PG_STR_MAX];
        if (n > sizeof(tmp))
                n = sizeof(tmp);
        memcpy(tmp, s, n);
        pg_mask_pan_runs(s, 0, n, tmp, n);
        return pg_show(buf, size, tmp, n, 32);
}

/* A string field into dst, checking in order: wire type, missing, empty,
 * oversize, control characters. For an optional field "" leaves dst
 * empty. */
static pg_reject_t get_str(dctx_t *c, int f, bool required, pg_str_t *dst)
{
        const kfield_t *k = &c->sc->f[f]; /* dst is zeroed already */
        if (k->n && k->wrong_type)
                return fail(c, PG_REJ_TYPE, f,
                            "must be a string (length-delimited), found %s",
                            wire_name(k->wire));
        if (!k->n)
                return required ? fail(c, PG_REJ_MISSING, f, "missing")
                                : PG_REJ_NONE;
        size_t len = k->end - k->at;
        if (len == 0)
                return required ? fail(c, PG_REJ_EMPTY, f, "empty string")
                                : PG_REJ_NONE;
        if (len > PG_STR_MAX)
                return fail(c, PG_REJ_OVERSIZE, f, "longer than %d bytes",
                            PG_STR_MAX);
        const char *s = (const char *)c->p + k->at;
        for (size_t i = 0; !k->printable && i < len; i++)
                if (pg_is_ctrl((unsigned char)s[i]))
                        return fail(c, PG_REJ_BAD_CHARS, f,
                                    "contains a control character");
        memcpy(dst->s, s, len);
        dst->s[len] = '\0';
        dst->len = (uint8_t)len;
        return PG_REJ_NONE;
}

#define HAS(m, field, FIELD)                                                   \
        ((m)->_##field##_case == POSGUARD__V1__RECORD___##FIELD##_##FIELD)

/* A number field (varint) that is present with the right wire type: its
 * value is in the unpacked message. */
static pg_reject_t num_type(dctx_t *c, int f, const char *what)
{
        const kfield_t *k = &c->sc->f[f];
        if (k->n && k->wrong_type)
                return fail(c, PG_REJ_TYPE, f, "must be %s (varint), found %s",
                            what, wire_name(k->wire));
        return PG_REJ_NONE;
}

/* The value of varint field f (type already checked) as protobuf gives
 * it: false when absent (v is then 0, proto3's default). From the wire at
 * the scan's offsets, or (reference decoder) from protobuf-c's message;
 * both read the same bits, which test_codec_pb and fuzz_pb check. */
static bool get_num(const dctx_t *c, int f, uint64_t *v)
{
        const kfield_t *k = &c->sc->f[f];
        *v = 0;
        if (!c->m) {
                if (!k->n)
                        return false;
                *v = k->v; /* read by the scan */
                return true;
        }
        const char *base = (const char *)c->m + FIELDS[f].off;
        const Posguard__V1__Record *m = c->m;
        int32_t i32;
        int64_t i64;
        protobuf_c_boolean b;
        switch (f) {
        case PG_F_AMOUNT:
        case PG_F_EXPECTED_AMOUNT:
        case PG_F_EVENT_TIME:
                memcpy(&i64, base, sizeof(i64));
                *v = (uint64_t)i64;
                return f == PG_F_AMOUNT ? HAS(m, amount, AMOUNT)
                       : f == PG_F_EVENT_TIME
                           ? HAS(m, event_time, EVENT_TIME)
                           : HAS(m, expected_amount, EXPECTED_AMOUNT);
        case PG_F_RETRANSMISSION:
                memcpy(&b, base, sizeof(b));
                *v = b != 0;
                return k->n > 0;
        default: /* enums are int sized in protobuf-c */
                memcpy(&i32, base, sizeof(i32));
                *v = (uint64_t)(int64_t)i32;
                return k->n > 0;
        }
}

static pg_reject_t get_enum(dctx_t *c, int f, bool required, uint8_t *dst)
{
        pg_reject_t r = num_type(c, f, "an enum number");
        if (r)
                return r;
        uint64_t raw;
        get_num(c, f, &raw);
        /* an enum is an int32 on the wire: the low 32 bits count */
        int v = (int)(int32_t)(uint32_t)raw;
        if (v == 0) {
                if (!required)
                        return PG_REJ_NONE;
                return fail(c, PG_REJ_MISSING, f, "%s",
                            c->sc->f[f].n
                                ? "*_UNSPECIFIED (0), but the field is "
                                  "required"
                                : "missing");
        }
        int count, shift;
        const char *list;
        if (f == PG_F_KIND) {
                count = PG_KIND__COUNT, shift = 1;
                list = "1 purchase, 2 refund, 3 reversal, 4 void";
        } else if (f == PG_F_STATUS) {
                count = PG_STATUS__COUNT, shift = 1;
                list = "1 approved, 2 declined, 3 error";
        } else {
                count = PG_ENTRY__COUNT, shift = 0;
                list = "1 chip, 2 swipe, 3 contactless, 4 keyed, 5 ecom";
        }
        if (v < 0 || v - shift >= count)
                return fail(c, PG_REJ_ENUM, f, "%d is not one of %s", v, list);
        *dst = (uint8_t)(v - shift);
        return PG_REJ_NONE;
}

#define CHECK(expr)                                                            \
        do {                                                                   \
                pg_reject_t r_ = (expr);                                       \
                if (r_)                                                        \
                        return r_;                                             \
        } while (0)

/* Step 3, in pg_field_t order (reject order f. at the top of the file). */
static pg_reject_t decode_fields(dctx_t *c, pg_record_t *out)
{
        /* The record starts from zero so that unused bytes of the
         * fixed-size strings (and padding) are the same for every parse, as
         * in codec_json.c: records are compared as memory elsewhere. */
        uint64_t seq = out->seq;
        memset(out, 0, sizeof(*out));
        out->seq = seq;
        CHECK(get_str(c, PG_F_TXN_ID, true, &out->txn_id));
        CHECK(get_enum(c, PG_F_KIND, true, &out->kind));
        CHECK(get_enum(c, PG_F_STATUS, true, &out->status));
        CHECK(get_str(c, PG_F_MERCHANT_ID, true, &out->merchant_id));
        CHECK(get_str(c, PG_F_TERMINAL_ID, true, &out->terminal_id));
        CHECK(get_str(c, PG_F_STAN, true, &out->stan));
        CHECK(get_str(c, PG_F_RRN, true, &out->rrn));

        CHECK(get_str(c, PG_F_CARD_TOKEN, true, &out->card_token));
        if (pg_is_clear_pan(out->card_token.s, out->card_token.len))
                return fail(c, PG_REJ_CLEAR_PAN, PG_F_CARD_TOKEN,
                            "looks like a clear card number (13-19 digits "
                            "passing the Luhn check), expected a token");

        CHECK(get_str(c, PG_F_PAN_MASKED, false, &out->pan_masked));
        if (out->pan_masked.len &&
            !pg_pan_masked_ok(out->pan_masked.s, out->pan_masked.len))
                return fail(c, PG_REJ_CLEAR_PAN, PG_F_PAN_MASKED,
                            "must be masked: at most the first 6 and last 4 "
                            "digits around '*', 'x' or 'X'");

        uint64_t v;
        CHECK(num_type(c, PG_F_AMOUNT, "an integer"));
        if (!get_num(c, PG_F_AMOUNT, &v))
                return fail(c, PG_REJ_MISSING, PG_F_AMOUNT, "missing");
        out->amount = (int64_t)v;
        if (out->amount <= 0)
                return fail(c, PG_REJ_AMOUNT, PG_F_AMOUNT,
                            "must be a positive integer, found %lld",
                            (long long)out->amount);

        CHECK(get_str(c, PG_F_CURRENCY, true, &out->currency));
        const pg_str_t *cu = &out->currency;
        if (cu->len != 3 || cu->s[0] < 'A' || cu->s[0] > 'Z' ||
            cu->s[1] < 'A' || cu->s[1] > 'Z' || cu->s[2] < 'A' ||
            cu->s[2] > 'Z') {
                char b[160];
                return fail(c, PG_REJ_CURRENCY, PG_F_CURRENCY,
                            "'%s' is not three upper-case letters (ISO 4217)",
                            show(cu->s, cu->len, b, sizeof(b)));
        }

        CHECK(num_type(c, PG_F_EXPECTED_AMOUNT, "an integer"));
        out->has_expected = get_num(c, PG_F_EXPECTED_AMOUNT, &v);
        out->expected_amount = (int64_t)v;
        if (out->has_expected && out->expected_amount < 0)
                return fail(c, PG_REJ_AMOUNT, PG_F_EXPECTED_AMOUNT,
                            "must be a non-negative integer, found %lld",
                            (long long)out->expected_amount);

        CHECK(get_str(c, PG_F_ORDER_ID, false, &out->order_id));

        /* original_rrn: required on what refers to a purchase, ignored (not
         * even type-checked, not kept) on a purchase. */
        if (out->kind != PG_KIND_PURCHASE) {
                pg_reject_t r =
                    get_str(c, PG_F_ORIGINAL_RRN, true, &out->original_rrn);
                if (r == PG_REJ_MISSING || r == PG_REJ_EMPTY)
                        return fail(c, r, PG_F_ORIGINAL_RRN,
                                    "required (non-empty) on a %s",
                                    pg_kind_name(out->kind));
                if (r)
                        return r;
        }

        CHECK(num_type(c, PG_F_EVENT_TIME, "integer ms since the epoch"));
        if (!get_num(c, PG_F_EVENT_TIME, &v))
                return fail(c, PG_REJ_MISSING, PG_F_EVENT_TIME, "missing");
        int64_t t = (int64_t)v;
        if (t < 0 || t > PG_TIME_MAX_MS)
                return fail(c, PG_REJ_TIME, PG_F_EVENT_TIME,
                            "outside 1970-01-01T00:00:00Z .. "
                            "9999-12-31T23:59:59.999Z");
        out->event_time = t;

        CHECK(get_enum(c, PG_F_ENTRY_MODE, false, &out->entry_mode));

        CHECK(num_type(c, PG_F_RETRANSMISSION, "a bool"));
        get_num(c, PG_F_RETRANSMISSION, &v);
        out->retransmission = v != 0;
        return PG_REJ_NONE;
}

/* Steps 2 and 3 once the scan passed: the arena is rolled back by the
 * caller. */
static pg_reject_t unpack_and_decode(dctx_t *c, pg_pb_arena_t *arena,
                                     size_t len, pg_record_t *out)
{
        const scan_t *sc = c->sc;
        const uint8_t *data = c->p;
        size_t n = len;
        size_t over0 = arena->overflow;
        ProtobufCAllocator alloc = {arena_alloc, arena_free, arena};
        if (sc->compact) {
                uint8_t *buf = arena_alloc(arena, sc->keep);
                if (!buf)
                        goto too_small;
                size_t o = 0;
                for (int f = 0; f < PG_F__COUNT; f++) {
                        const kfield_t *k = &sc->f[f];
                        if (!k->n || k->wrong_type ||
                            (k->wire == W_LEN && k->end - k->at > PG_STR_MAX))
                                continue;
                        memcpy(buf + o, c->p + k->tag_at, k->end - k->tag_at);
                        o += k->end - k->tag_at;
                }
                data = buf;
                n = o;
        }
        Posguard__V1__Record *m = posguard__v1__record__unpack(&alloc, n, data);
        if (!m) {
                if (arena->overflow != over0)
                        goto too_small;
                return fail(c, PG_REJ_MALFORMED, -1,
                            "not a valid posguard.v1.Record");
        }
        c->m = m;
        return decode_fields(c, out);
too_small:
        return fail(c, PG_REJ_MALFORMED, -1,
                    "decode arena too small (%zu bytes; PG_PB_ARENA_MIN is "
                    "%d)",
                    arena->size, PG_PB_ARENA_MIN);
}

/* Checks a. to d.: PG_REJ_NONE when the record may be decoded. */
static pg_reject_t parse_begin(dctx_t *c, size_t len, scan_t *sc, bool fast)
{
        if (c->field)
                *c->field = NULL;
        if (c->err && c->errsz)
                c->err[0] = '\0';
        if (!c->p && len)
                return fail(c, PG_REJ_MALFORMED, -1, "no input");
        /* a. */
        if (len > PG_JSON_MAX_LINE)
                return fail(c, PG_REJ_LINE_TOO_LONG, -1,
                            "message longer than %d bytes", PG_JSON_MAX_LINE);
        /* b. */
        if (len == 0)
                return fail(c, PG_REJ_MALFORMED, -1, "empty message");
        if (!scan(c->p, len, sc, fast))
                return fail(c, PG_REJ_MALFORMED, -1,
                            "not protobuf: %s at byte %zu", sc->why,
                            sc->why_at);
        /* c. */
        if (sc->bad_utf8 >= 0)
                return fail(c, PG_REJ_BAD_CHARS, sc->bad_utf8,
                            "invalid UTF-8 at byte %zu", sc->bad_utf8_at);
        /* d. */
        if (sc->dup >= 0)
                return fail(c, PG_REJ_DUPLICATE_FIELD, sc->dup,
                            "appears more than once");
        return PG_REJ_NONE;
}

pg_reject_t pg_codec_pb_parse(const void *buf, size_t len, pg_record_t *out,
                              const char **field, char *errstr,
                              size_t errstr_size)
{
        scan_t sc;
        dctx_t c = {buf, &sc, NULL, field, errstr, errstr_size};
        CHECK(parse_begin(&c, len, &sc, true));
        /* f. from the wire: the scan has every field's place */
        return decode_fields(&c, out);
}

pg_reject_t pg_codec_pb_parse_reference(pg_pb_arena_t *arena, const void *buf,
                                        size_t len, pg_record_t *out,
                                        const char **field, char *errstr,
                                        size_t errstr_size)
{
        scan_t sc;
        dctx_t c = {buf, &sc, NULL, field, errstr, errstr_size};
        CHECK(parse_begin(&c, len, &sc, false));
        /* e. and f. Nothing allocated for this record outlives the call. */
        if (!arena) {
                _Alignas(max_align_t) unsigned char own[PG_PB_ARENA_MIN];
                pg_pb_arena_t a;
                pg_pb_arena_init(&a, own, sizeof(own));
                return unpack_and_decode(&c, &a, len, out);
        }
        size_t mark = arena->used;
        pg_reject_t r = unpack_and_decode(&c, arena, len, out);
        arena->used = mark;
        return r;
}

/* ---------------------------------------------------------------------
 * Encoders
 * ------------------------------------------------------------------- */

/* Pack msg into buf when it fits. */
static int pack(const ProtobufCMessage *msg, void *buf, size_t size)
{
        if (!buf)
                return -1;
        size_t need = protobuf_c_message_get_packed_size(msg);
        if (need > size || need > INT32_MAX)
                return -1;
        return (int)protobuf_c_message_pack(msg, buf);
}

static inline char *str_of(const pg_str_t *s)
{
        return (char *)s->s;
}

int pg_codec_pb_record(void *buf, size_t size, const pg_record_t *rec)
{
        if (!rec)
                return -1;
        Posguard__V1__Record m = POSGUARD__V1__RECORD__INIT;
#define SET_STR(field, FIELD)                                                  \
        do {                                                                   \
                m._##field##_case = POSGUARD__V1__RECORD___##FIELD##_##FIELD;  \
                m.field = str_of(&rec->field);                                 \
        } while (0)
        /* required strings always go out, "" included, so that the reader
         * says "empty" rather than "missing" */
        SET_STR(txn_id, TXN_ID);
        SET_STR(merchant_id, MERCHANT_ID);
        SET_STR(terminal_id, TERMINAL_ID);
        SET_STR(stan, STAN);
        SET_STR(rrn, RRN);
        SET_STR(card_token, CARD_TOKEN);
        SET_STR(currency, CURRENCY);
        if (rec->original_rrn.len)
                SET_STR(original_rrn, ORIGINAL_RRN);
#undef SET_STR
        m.pan_masked = str_of(&rec->pan_masked);
        m.order_id = str_of(&rec->order_id);
        /* pg enums count from 0, the proto ones from 1 (0 is UNSPECIFIED);
         * entry_mode's PG_ENTRY_NONE already is 0 */
        m.kind = (Posguard__V1__Kind)(rec->kind + 1);
        m.status = (Posguard__V1__Status)(rec->status + 1);
        m.entry_mode = (Posguard__V1__EntryMode)rec->entry_mode;
        m._amount_case = POSGUARD__V1__RECORD___AMOUNT_AMOUNT;
        m.amount = rec->amount;
        if (rec->has_expected) {
                m._expected_amount_case =
                    POSGUARD__V1__RECORD___EXPECTED_AMOUNT_EXPECTED_AMOUNT;
                m.expected_amount = rec->expected_amount;
        }
        m._event_time_case = POSGUARD__V1__RECORD___EVENT_TIME_EVENT_TIME;
        m.event_time = rec->event_time;
        m.retransmission = rec->retransmission;
        return pack(&m.base, buf, size);
}

/* Room for strings of an output that must be copied: not NUL-terminated
 * within their array, or not valid UTF-8 (a protobuf string must be; most
 * readers refuse the whole message otherwise). */
typedef struct scratch {
        char buf[PG_PB_OUT_MAX];
        size_t used;
        bool full;
} scratch_t;

/* s (at most cap bytes, NUL-terminated before that or not) as a valid UTF-8
 * C string: s itself when it is one, else a copy in the scratch with each
 * invalid byte replaced by U+FFFD. NULL becomes "". */
static char *safe_str(scratch_t *sc, const char *s, size_t cap)
{
        if (!s)
                return (char *)protobuf_c_empty_string;
        size_t n = strnlen(s, cap);
        if (n < cap && pg_utf8_check((const unsigned char *)s, n) == n)
                return (char *)s;
        char *o = sc->buf + sc->used, *start = o;
        char *e = sc->buf + sizeof(sc->buf) - 1; /* room for the NUL */
        size_t i = 0;
        while (i < n) {
                size_t k = pg_utf8_len((const unsigned char *)s + i, n - i);
                const char *src = k ? s + i : "\xEF\xBF\xBD";
                size_t w = k ? k : 3;
                if ((size_t)(e - o) < w) {
                        sc->full = true;
                        return (char *)protobuf_c_empty_string;
                }
                memcpy(o, src, w);
                o += w;
                i += k ? k : 1;
        }
        *o++ = '\0';
        sc->used = (size_t)(o - sc->buf);
        return start;
}

int pg_codec_pb_alert(void *buf, size_t size, const pg_alert_t *a)
{
        if (!a)
                return -1;
        scratch_t sc;
        sc.used = 0;
        sc.full = false;
        Posguard__V1__Alert m = POSGUARD__V1__ALERT__INIT;
        char *ids[PG_MAX_RELATED + 1];
        m.alert_id = safe_str(&sc, a->alert_id, sizeof(a->alert_id));
        m.rule_id = safe_str(&sc, a->rule_id, SIZE_MAX);
        m.rule_version = safe_str(&sc, a->rule_version, SIZE_MAX);
        m.rule_hash = safe_str(&sc, a->rule_hash, SIZE_MAX);
        m.detector = safe_str(&sc, a->detector, SIZE_MAX);
        m.finding = safe_str(&sc, a->finding, SIZE_MAX);
        m.severity = safe_str(&sc, a->severity, SIZE_MAX);
        m.mode = safe_str(&sc, a->mode, SIZE_MAX);
        m.merchant_id = safe_str(&sc, a->merchant_id, SIZE_MAX);
        m.terminal_id = safe_str(&sc, a->terminal_id, SIZE_MAX);
        int nt = a->n_txn_ids;
        if (nt < 0)
                nt = 0;
        if (nt > PG_MAX_RELATED + 1)
                nt = PG_MAX_RELATED + 1;
        for (int i = 0; i < nt; i++)
                ids[i] = safe_str(&sc, a->txn_ids[i], SIZE_MAX);
        m.n_txn_ids = (size_t)nt;
        m.txn_ids = ids;
        m.amount = a->amount;
        m.currency = safe_str(&sc, a->currency, SIZE_MAX);
        m.pan_masked = safe_str(&sc, a->pan_masked, SIZE_MAX);
        m.reason = safe_str(&sc, a->reason, sizeof(a->reason));
        m.event_time = a->event_time;
        m.detected_at = a->detected_at;
        m.suppressed = a->suppressed;
        if (sc.full)
                return -1;
        return pack(&m.base, buf, size);
}

int pg_codec_pb_refund(void *buf, size_t size, const pg_refund_t *r)
{
        if (!r)
                return -1;
        scratch_t sc;
        sc.used = 0;
        sc.full = false;
        Posguard__V1__RefundCommand m = POSGUARD__V1__REFUND_COMMAND__INIT;
        m.refund_id = safe_str(&sc, r->refund_id, sizeof(r->refund_id));
        m.alert_id = safe_str(&sc, r->alert_id, sizeof(r->alert_id));
        m.rule_id = safe_str(&sc, r->rule_id, SIZE_MAX);
        m.txn_id = safe_str(&sc, r->txn_id, SIZE_MAX);
        m.rrn = safe_str(&sc, r->rrn, SIZE_MAX);
        m.merchant_id = safe_str(&sc, r->merchant_id, SIZE_MAX);
        m.terminal_id = safe_str(&sc, r->terminal_id, SIZE_MAX);
        m.card_token = safe_str(&sc, r->card_token, SIZE_MAX);
        m.amount = r->amount;
        m.currency = safe_str(&sc, r->currency, SIZE_MAX);
        m.reason = safe_str(&sc, r->reason, SIZE_MAX);
        m.decided_at = r->decided_at;
        if (sc.full)
                return -1;
        return pack(&m.base, buf, size);
}

/* Bounds that keep a dead-letter envelope well within PG_PB_OUT_MAX (the
 * same as the JSON dead-letter entry's, plus Kafka's topic name limit). */
#define DETAIL_MAX 512
#define FIELD_MAX 64
#define TOPIC_MAX 255

/*
 * Text for a dead-letter string (field, detail, topic): the first limit
 * bytes of s[0..n), card-number-like digit runs masked (judged over all of
 * s), invalid UTF-8 and control characters other than tab, newline and CR
 * replaced by '?'. out has room for limit + 1 bytes; returns out.
 */
static char *masked_text(const char *s, size_t n, size_t limit, char *out)
{
        size_t stop = n < limit ? n : limit;
        memcpy(out, s, stop);
        pg_mask_pan_runs(s, 0, n, out, stop);
        size_t i = 0, o = 0;
        while (i < stop) {
                unsigned char c = (unsigned char)s[i];
                if (c >= 0x80) {
                        size_t k =
                            pg_utf8_len((const unsigned char *)s + i, n - i);
                        if (k && i + k <= stop) {
                                memmove(out + o, out + i, k);
                                o += k;
                                i += k;
                        } else {
                                out[o++] = '?';
                                i += k ? k : 1;
                        }
                        continue;
                }
                bool keep =
                    !pg_is_ctrl(c) || c == '\t' || c == '\n' || c == '\r';
                out[o++] = keep ? out[i] : '?';
                i++;
        }
        out[o] = '\0';
        return out;
}

/* Mask card numbers inside each length-delimited field of a payload that is
 * protobuf from end to end: a digit of a tag or a length next to a card
 * number would otherwise hide the number from the whole-payload pass. */
static void mask_pb_fields(const uint8_t *raw, size_t n, char *out,
                           size_t limit)
{
        size_t i = 0;
        wfield_t w;
        const char *why;
        int r;
        while ((r = next_field(raw, n, &i, &w, &why)) > 0)
                ;
        if (r < 0)
                return;
        i = 0;
        while (next_field(raw, n, &i, &w, &why) > 0)
                if (w.wire == W_LEN)
                        pg_mask_pan_runs((const char *)raw, w.at, w.end, out,
                                         limit);
}

int pg_codec_pb_reject(void *buf, size_t size, pg_reject_t code,
                       const char *field, const char *detail,
                       const pg_source_pos_t *pos, const void *raw,
                       size_t raw_len)
{
        Posguard__V1__DeadLetter m = POSGUARD__V1__DEAD_LETTER__INIT;
        char fbuf[FIELD_MAX + 1], dbuf[DETAIL_MAX + 1], tbuf[TOPIC_MAX + 1];
        char pbuf[PG_JSON_RAW_MAX];
        m.reason = (char *)pg_reject_name(code);
        if (field)
                m.field = masked_text(field, strnlen(field, FIELD_MAX),
                                      FIELD_MAX, fbuf);
        if (detail)
                m.detail = masked_text(detail, strnlen(detail, DETAIL_MAX + 1),
                                       DETAIL_MAX, dbuf);
        if (pos) {
                if (pos->topic)
                        m.source_topic = masked_text(
                            pos->topic, strnlen(pos->topic, TOPIC_MAX + 1),
                            TOPIC_MAX, tbuf);
                m.source_partition = pos->partition;
                m.source_offset = pos->offset;
                if (pos->timestamp_ms >= 0) {
                        m._source_timestamp_case =
                            POSGUARD__V1__DEAD_LETTER___SOURCE_TIMESTAMP_SOURCE_TIMESTAMP;
                        m.source_timestamp = pos->timestamp_ms;
                }
        }
        if (raw && raw_len) {
                size_t keep =
                    raw_len < PG_JSON_RAW_MAX ? raw_len : PG_JSON_RAW_MAX;
                memcpy(pbuf, raw, keep);
                pg_mask_pan_runs(raw, 0, raw_len, pbuf, keep);
                mask_pb_fields(raw, raw_len, pbuf, keep);
                m.payload.data = (uint8_t *)pbuf;
                m.payload.len = keep;
        }
        m.payload_size = raw ? raw_len : 0;
        return pack(&m.base, buf, size);
}
