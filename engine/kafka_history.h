/*
 * kafka_history.h - the messages of a Kafka topic between two times, read
 * once and replayed through engines (posguard backtest --topic).
 */
#ifndef PG_KAFKA_HISTORY_H
#define PG_KAFKA_HISTORY_H

#include <stdint.h>

#include "engine.h"
#include "kafka_conf.h"
#include "replay.h"

typedef struct pg_history pg_history_t;

/* The messages of topic with from_ms <= timestamp < to_ms, per partition,
 * read_committed. NULL with err on failure. */
pg_history_t *pg_history_read(const pg_kconf_t *conf, const char *topic,
                              int64_t from_ms, int64_t to_ms, char *err,
                              size_t errsz);
int pg_history_partitions(const pg_history_t *h);
uint64_t pg_history_count(const pg_history_t *h);
/* Decode partition i's messages (JSON when json, else protobuf) into e, in
 * offset order; rejects are counted in c. */
void pg_history_feed(const pg_history_t *h, int i, pg_engine_t *e, int json,
                     pg_replay_counts_t *c);
void pg_history_free(pg_history_t *h);

#endif
