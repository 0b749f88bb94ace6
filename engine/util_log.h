/*
 * util_log.h - one line per event of interest on stderr, logfmt or JSON.
 *
 * Callers write the message as logfmt pairs (event=name key=value
 * key="quoted value"), words outside a pair being a note for people. In
 * logfmt the line is "ts=... level=... <message>"; in JSON every pair
 * becomes a member ({"ts":..., "level":..., "event":..., ...}; integers as
 * numbers, the loose words as "note"), so a log shipper needs no parser of
 * its own. Messages never carry card data beyond the masked PAN: no log
 * call site passes a card token, a PAN or a CVV.
 */
#ifndef PG_UTIL_LOG_H
#define PG_UTIL_LOG_H

#include <stddef.h>

typedef enum pg_log_format { PG_LOG_LOGFMT = 0, PG_LOG_JSON } pg_log_format_t;
typedef enum pg_log_level {
        PG_LOG_INFO = 0,
        PG_LOG_WARN,
        PG_LOG_ERROR
} pg_log_level_t;

/* Format and threshold for pg_log (default: logfmt, info). */
void pg_log_configure(pg_log_format_t format, pg_log_level_t min);

/* Log one line at level lv (below the threshold: nothing). Thread-safe. */
void pg_log(pg_log_level_t lv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Make s (in place) fit a quoted logfmt value, key="s", on one line: '"'
 * becomes '\'', a control character (newline included) a space. For text
 * from elsewhere: librdkafka's and libmicrohttpd's messages, parse
 * errors. Returns s. */
char *pg_log_quotable(char *s);

/* One line (no newline) of ts, level and a logfmt message in format f.
 * Returns its length. When size is too small, JSON lines lose whole
 * members from the end (staying valid JSON), logfmt lines are cut. */
size_t pg_log_line(char *out, size_t size, pg_log_format_t f, const char *ts,
                   const char *level, const char *msg);

#endif
