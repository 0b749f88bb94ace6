/*
 * replay.h - JSON-lines records from a file into an engine: what `replay`,
 * `test` and `backtest` share.
 */
#ifndef PG_REPLAY_H
#define PG_REPLAY_H

#include <stdint.h>
#include <stdio.h>

#include "codec_json.h"
#include "engine.h"

typedef struct pg_replay_counts {
        uint64_t lines; /* non-blank lines */
        uint64_t rejected;
        uint64_t by_reason[PG_REJ__COUNT];
} pg_replay_counts_t;

/*
 * Push every record of the JSON-lines file at path ("-": stdin) into e, in
 * file order; blank lines are skipped; a rejected line is counted and, when
 * dlq is not NULL, written to it as a dead-letter entry. The engine is not
 * flushed. Returns 0, or -1 with err set when the file cannot be read.
 */
int pg_replay_feed(pg_engine_t *e, const char *path, FILE *dlq,
                   pg_replay_counts_t *counts, char *err, size_t errsz);
/* The same, handing each accepted record to push(opaque, rec) (the record
 * is valid during the call only). */
int pg_replay_feed_fn(void (*push)(void *opaque, const pg_record_t *rec),
                      void *opaque, const char *path, FILE *dlq,
                      pg_replay_counts_t *counts, char *err, size_t errsz);

#endif
