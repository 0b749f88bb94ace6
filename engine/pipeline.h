/*
 * pipeline.h - the parallel engine: P partition engines driven by N worker
 * threads, with outputs equal, byte for byte, to one thread driving the
 * same P engines.
 *
 * Records are routed to partitions by merchant_id with librdkafka's default
 * partitioner (CRC-32 of the key modulo P), so `replay --partitions P` sees
 * exactly what `posguard run` sees on a topic of P partitions keyed by
 * merchant (DOMAIN.md: merchant_id is the partition key), and per-merchant
 * order is kept. Partition p belongs to worker p mod N for the life of the
 * pipeline: each engine stays single-threaded.
 *
 * The reference order of outputs (threads = 1): records are pushed in
 * input order, each output is written when its engine emits it, and at the
 * end the engines are flushed in partition order. With N > 1 threads each
 * output is tagged with the input position of the record that caused it;
 * pg_pipeline_sync merges the partitions' outputs by tag, which gives the
 * same order whatever N, batch sizes or scheduling.
 *
 * Hand-off: the caller fills a batch per worker and publishes it in a
 * single-producer single-consumer ring (two atomic counters, no lock); a
 * semaphore per worker only puts an idle worker to sleep and wakes it,
 * once per batch, never per record.
 *
 * Threads: every function is called by the one thread that owns the
 * pipeline (the caller); the workers are internal.
 */
#ifndef PG_PIPELINE_H
#define PG_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define PG_PIPELINE_MAX_PARTITIONS 256
#define PG_PIPELINE_MAX_THREADS 64

typedef struct pg_pipeline pg_pipeline_t;

typedef struct pg_pipeline_conf {
        int partitions; /* >= 1 */
        int threads;    /* >= 1; more than partitions is cut to partitions */
        /* encoders of one output (as codec_json.h: bytes written, or < 0) */
        int (*encode_alert)(char *buf, size_t size, const pg_alert_t *a);
        int (*encode_refund)(char *buf, size_t size, const pg_refund_t *r);
        /* where encoded outputs go, in the reference order, from the
         * caller's thread */
        void (*write)(void *opaque, const char *buf, size_t len);
        void *opaque;
} pg_pipeline_conf_t;

/* The rule set is borrowed and must outlive the pipeline. NULL with errstr
 * set when the configuration is refused. */
pg_pipeline_t *pg_pipeline_new(const pg_ruleset_t *rules,
                               const pg_engine_conf_t *econf,
                               const pg_pipeline_conf_t *conf, char *errstr,
                               size_t errstr_size);

/* The partition of a merchant among n (librdkafka's consistent
 * partitioner). */
int pg_pipeline_partition(const char *merchant_id, size_t len, int n);

/* Offer one accepted record (copied). */
void pg_pipeline_push(pg_pipeline_t *p, const pg_record_t *rec);
/* Wait until every record pushed so far is processed, and write the
 * outputs they caused. Bounds the memory held by outputs in flight. */
void pg_pipeline_sync(pg_pipeline_t *p);
/* End of input: flush every engine (pg_engine_flush), write everything. */
void pg_pipeline_flush(pg_pipeline_t *p);
/* The engines' statistics summed (call after sync or flush). */
void pg_pipeline_stats(const pg_pipeline_t *p, pg_engine_stats_t *out);
/* Write failures of the encoders (an output that could not be encoded). */
uint64_t pg_pipeline_encode_errors(const pg_pipeline_t *p);
void pg_pipeline_free(pg_pipeline_t *p);

#endif
