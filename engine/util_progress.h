/*
 * util_progress.h - progress of long work (replay, backtest, benchmarks) on
 * a terminal: records, records/s, % done and time left when the total is
 * known, on one line of stderr rewritten at most five times a second.
 * Quiet when stderr is not a terminal (logs, CI, pipes) or when
 * PG_NO_PROGRESS is set (PG_PROGRESS_MS sets the least time between two
 * redraws); the line is cleared at the end, so what a command
 * prints after it is unchanged.
 */
#ifndef PG_UTIL_PROGRESS_H
#define PG_UTIL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct pg_progress {
        bool on;
        const char *what;
        uint64_t total;   /* units of done (bytes, records); 0: unknown */
        int64_t t0, last; /* ms, monotonic */
        int64_t interval_ms;
        uint32_t calls;
} pg_progress_t;

void pg_progress_start(pg_progress_t *p, const char *what, uint64_t total);
/* Cheap to call per record: it looks at the clock every 1024 calls. */
void pg_progress_update(pg_progress_t *p, uint64_t records, uint64_t done);
/* For coarse steps (a benchmark's runs): "what: step i of n, note", % done
 * and time left, redrawn at once. */
void pg_progress_step(pg_progress_t *p, uint64_t i, const char *note);
void pg_progress_end(pg_progress_t *p);

#endif
