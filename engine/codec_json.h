/*
 * codec_json.h - JSON lines <-> records, alerts and refunds.
 *
 * Parsing is zero-allocation (jsmn tokens on the stack) and strict: every
 * rule of DOMAIN.md's record table and of docs/SEMANTICS.md section 1 is
 * checked, and a reject names the field and the reason. Output encoding
 * writes into a caller's buffer.
 */
#ifndef PG_CODEC_JSON_H
#define PG_CODEC_JSON_H

#include "output.h"
#include "record.h"

#define PG_JSON_MAX_LINE (64 * 1024)
/* Tokens jsmn may produce for one line (held on the parser's stack); a
 * line that needs more is rejected as malformed. */
#define PG_JSON_MAX_TOKENS 512
/* Input bytes of a rejected line kept in a dead-letter entry's "raw". */
#define PG_JSON_RAW_MAX 1024
/* The last valid event time, 9999-12-31T23:59:59.999Z; the first is 0. */
#define PG_TIME_MAX_MS INT64_C(253402300799999)

/* Why a record was rejected; stable names for counters (pg_reject_name). */
typedef enum pg_reject {
        PG_REJ_NONE = 0,
        PG_REJ_MALFORMED,     /* not one JSON object */
        PG_REJ_LINE_TOO_LONG, /* over PG_JSON_MAX_LINE */
        PG_REJ_MISSING,       /* required field absent or null */
        PG_REJ_TYPE,          /* wrong JSON type */
        PG_REJ_EMPTY,         /* empty required string */
        PG_REJ_OVERSIZE,      /* string over PG_STR_MAX bytes */
        PG_REJ_BAD_CHARS,     /* control characters or invalid UTF-8 */
        PG_REJ_ENUM,          /* not a value of the enum */
        PG_REJ_AMOUNT,        /* not a positive int64 (or negative expected) */
        PG_REJ_CURRENCY,      /* not three upper-case letters */
        PG_REJ_TIME,          /* unparsable event_time */
        PG_REJ_DUPLICATE_FIELD,
        PG_REJ_CLEAR_PAN, /* pan_masked/card_token shows a card number */
        PG_REJ__COUNT
} pg_reject_t;

const char *pg_reject_name(pg_reject_t r);

/*
 * Parse one line (without its newline) into *out. Returns PG_REJ_NONE on
 * success; otherwise the reject code, with a human reason in errstr that
 * names the field ("field 'amount': must be a positive integer") and never
 * contains the value of card_token or pan_masked. *field is set to the
 * offending field name or NULL (borrowed, static storage). out->seq is not
 * touched.
 */
/*
 * Reject order (codec_json.c has the details): line_too_long; invalid UTF-8
 * anywhere (bad_chars); not one valid JSON object, in document order
 * (malformed; a raw control character or lone surrogate in any string is
 * bad_chars); a repeated top-level key (duplicate_field); then the fields in
 * pg_field_t order, each checked for missing/null, type, empty, oversize,
 * control characters, then its own rule. On a reject *out is unspecified
 * (seq still untouched); *out is written only once the JSON is valid.
 */
pg_reject_t pg_codec_json_parse(const char *line, size_t len, pg_record_t *out,
                                const char **field, char *errstr,
                                size_t errstr_size);

/* Encode an alert / refund as one JSON object followed by '\n'. Returns the
 * number of bytes written (excluding the terminating NUL), or -1 if buf is
 * too small (PG_JSON_OUT_MAX is always enough). */
#define PG_JSON_OUT_MAX 4096
int pg_codec_json_alert(char *buf, size_t size, const pg_alert_t *a);
int pg_codec_json_refund(char *buf, size_t size, const pg_refund_t *r);

/* Encode a dead-letter entry: {"type":"reject","reason":...,"field":...,
 * "detail":...,"line_no":N,"raw":...}. raw is the input line with every run
 * of 13-19 digits that passes the Luhn check masked to first 6/last 4, and
 * with invalid bytes replaced; it is truncated to 1024 bytes. */
int pg_codec_json_reject(char *buf, size_t size, pg_reject_t code,
                         const char *field, const char *detail,
                         uint64_t line_no, const char *raw, size_t raw_len);

/* Format ms since the epoch as RFC 3339 UTC with milliseconds into buf
 * (at least 32 bytes). Returns buf. */
char *pg_time_format(int64_t ms, char *buf, size_t size);
/* Parse RFC 3339 (see SEMANTICS.md) into ms; returns 0 on success. */
int pg_time_parse(const char *s, size_t len, int64_t *ms);

#endif
