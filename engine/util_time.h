/*
 * util_time.h - the two clocks: wall (Unix ms, for detected_at, logs and
 * timestamps people read) and monotonic (ms, for intervals and timeouts).
 */
#ifndef PG_UTIL_TIME_H
#define PG_UTIL_TIME_H

#include <stdint.h>
#include <time.h>

static inline int64_t pg_wall_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t pg_mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
