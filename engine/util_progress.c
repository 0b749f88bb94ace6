/*
 * util_progress.c - see util_progress.h.
 */
#include "util_progress.h"
#include "util_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void pg_progress_start(pg_progress_t *p, const char *what, uint64_t total)
{
        p->on = isatty(STDERR_FILENO) && !getenv("PG_NO_PROGRESS");
        p->what = what;
        p->total = total;
        p->t0 = p->last = pg_mono_ms();
        p->calls = 0;
        /* PG_PROGRESS_MS: the least time between two redraws (default 200;
         * 0 redraws every 1024 records, which tests use to see the line
         * whatever the machine's speed). */
        const char *ms = getenv("PG_PROGRESS_MS");
        char *end = NULL;
        long v = ms ? strtol(ms, &end, 10) : -1;
        p->interval_ms = (ms && *ms && end && !*end && v >= 0) ? v : 200;
}

void pg_progress_update(pg_progress_t *p, uint64_t records, uint64_t done)
{
        if (!p->on || (++p->calls & 1023))
                return;
        int64_t t = pg_mono_ms();
        if (t - p->last < p->interval_ms)
                return;
        p->last = t;
        double secs = (double)(t - p->t0) / 1000.0;
        double rate = secs > 0 ? (double)records / secs : 0;
        char tail[64] = "";
        if (p->total && done <= p->total && done) {
                double f = (double)done / (double)p->total;
                double left = secs * (1 - f) / f;
                snprintf(tail, sizeof(tail), ", %.0f%%, %.0f s left", 100 * f,
                         left);
        }
        fprintf(stderr, "\r%s: %llu records, %.0f records/s%s\033[K", p->what,
                (unsigned long long)records, rate, tail);
        fflush(stderr);
}

void pg_progress_step(pg_progress_t *p, uint64_t i, const char *note)
{
        if (!p->on)
                return;
        int64_t t = pg_mono_ms();
        p->last = t;
        char tail[64] = "";
        if (p->total && i && i <= p->total) {
                double f = (double)i / (double)p->total;
                double secs = (double)(t - p->t0) / 1000.0;
                snprintf(tail, sizeof(tail), ", %.0f%%, %.0f s left", 100 * f,
                         secs * (1 - f) / f);
        }
        fprintf(stderr, "\r%s: step %llu of %llu, %s%s\033[K", p->what,
                (unsigned long long)i + 1, (unsigned long long)p->total, note,
                tail);
        fflush(stderr);
}

void pg_progress_end(pg_progress_t *p)
{
        if (p->on && p->last != p->t0) {
                fprintf(stderr, "\r\033[K");
                fflush(stderr);
        }
        p->on = false;
}
