/*
 * util_log.c - see util_log.h.
 */
#include "util_log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "codec_json.h"
#include "util_text.h"
#include "util_time.h"

static pg_log_format_t log_format = PG_LOG_LOGFMT;
static pg_log_level_t log_min = PG_LOG_INFO;

void pg_log_configure(pg_log_format_t format, pg_log_level_t min)
{
        log_format = format;
        log_min = min;
}

typedef struct out {
        char *p;
        size_t n, size;
        bool cut; /* something did not fit */
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                if (o->n + 1 >= o->size) {
                        o->cut = true;
                        break;
                }
                o->p[o->n++] = s[i];
        }
        o->p[o->n] = '\0';
}

static void put_json_str(out_t *o, const char *s, size_t n)
{
        put(o, "\"", 1);
        char e[6];
        for (size_t i = 0; i < n;)
                put(o, e, pg_json_esc(s, n, &i, e));
        put(o, "\"", 1);
}

static bool integer(const char *s, size_t n)
{
        size_t i = s[0] == '-' ? 1 : 0;
        if (n == i || n - i > 18 || (s[i] == '0' && n - i > 1))
                return false;
        for (; i < n; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

/* Append m (one whole member, with its leading comma) to o only if it fits
 * with the closing brace: a long line loses members, never its form. */
static void commit(out_t *o, const out_t *m)
{
        if (!m->cut && o->n + m->n + 2 <= o->size)
                put(o, m->p, m->n);
}

size_t pg_log_line(char *buf, size_t size, pg_log_format_t f, const char *ts,
                   const char *level, const char *msg)
{
        out_t o = {buf, 0, size, false};
        if (!size)
                return 0;
        buf[0] = '\0';
        if (f == PG_LOG_LOGFMT) {
                put(&o, "ts=", 3);
                put(&o, ts, strlen(ts));
                put(&o, " level=", 7);
                put(&o, level, strlen(level));
                put(&o, " ", 1);
                put(&o, msg, strlen(msg));
                return o.n;
        }
        char mb[2048];
        out_t m = {mb, 0, sizeof(mb), false};
        put(&o, "{", 1);
        put(&m, "\"ts\":", 5);
        put_json_str(&m, ts, strlen(ts));
        put(&m, ",\"level\":", 9);
        put_json_str(&m, level, strlen(level));
        commit(&o, &m);
        char note[512];
        size_t nn = 0;
        for (const char *p = msg; *p;) {
                while (*p == ' ')
                        p++;
                if (!*p)
                        break;
                /* a token: up to a space outside quotes */
                const char *t = p, *eq = NULL;
                bool q = false;
                for (; *p && (q || *p != ' '); p++) {
                        if (*p == '"')
                                q = !q;
                        else if (*p == '=' && !eq && !q)
                                eq = p;
                }
                size_t tl = (size_t)(p - t);
                if (eq && eq > t) {
                        const char *v = eq + 1;
                        size_t vl = (size_t)(p - v);
                        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
                                v++;
                                vl -= 2;
                        }
                        m.n = 0;
                        m.cut = false;
                        put(&m, ",", 1);
                        put_json_str(&m, t, (size_t)(eq - t));
                        put(&m, ":", 1);
                        if (integer(v, vl))
                                put(&m, v, vl);
                        else
                                put_json_str(&m, v, vl);
                        commit(&o, &m);
                } else {
                        if (nn && nn + 1 < sizeof(note))
                                note[nn++] = ' ';
                        for (size_t i = 0; i < tl && nn + 1 < sizeof(note); i++)
                                note[nn++] = t[i];
                }
        }
        if (nn) {
                m.n = 0;
                m.cut = false;
                put(&m, ",\"note\":", 8);
                put_json_str(&m, note, nn);
                commit(&o, &m);
        }
        put(&o, "}", 1);
        return o.n;
}

char *pg_log_quotable(char *s)
{
        for (char *p = s; *p; p++)
                if (*p == '"')
                        *p = '\'';
                else if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = ' ';
        return s;
}

void pg_log(pg_log_level_t lv, const char *fmt, ...)
{
        static const char *const names[] = {"info", "warn", "error"};
        if (lv < log_min)
                return;
        char ts[40];
        pg_time_format(pg_wall_ms(), ts, sizeof(ts));
        char msg[1024], line[2048];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        pg_log_line(line, sizeof(line), log_format, ts, names[lv], msg);
        fprintf(stderr, "%s\n", line); /* one call: one line, whole */
}
