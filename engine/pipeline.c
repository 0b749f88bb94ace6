/*
 * pipeline.c - P partition engines on N worker threads (see pipeline.h).
 *
 * Hand-off. Worker w owns a ring of RING batches. The caller fills the
 * batch at position submitted % RING and publishes it by incrementing
 * submitted (release); the worker processes positions done..submitted-1
 * and publishes each by incrementing done (release). The caller may fill a
 * position only when submitted - done < RING, so the two never touch the
 * same batch. A semaphore counts published batches so that an idle worker
 * sleeps instead of spinning (one post per batch); another wakes the
 * caller when it waits for a worker (sync, or a full ring).
 *
 * Outputs. A partition's sink encodes each output in the worker's thread
 * into that partition's buffer as {tag, length, bytes}, tag being the input
 * position of the record being pushed (UINT64_MAX during the final flush).
 * Only the partition's worker appends; only the caller reads, in
 * pg_pipeline_sync, after it has seen every worker's done counter cover
 * every published batch (acquire) and before it publishes another, so a
 * buffer is never touched by two threads at once. pg_pipeline_sync merges the
 * buffers by tag (each tag belongs to one partition; flush outputs go in
 * partition order), which is the order one thread would have written.
 *
 * Bounded work and memory: a batch is BATCH records; a worker's ring holds
 * RING batches; outputs wait in memory only until the next sync, which the
 * caller does every so many records.
 */
#include "pipeline.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_json.h"
#include "util_mem.h"

#define BATCH 128
#define RING 8
#define FLUSH_TAG UINT64_MAX

typedef struct batch {
        int n;
        int flush; /* flush the worker's partitions instead of records */
        uint64_t tag[BATCH];
        uint16_t part[BATCH];
        pg_record_t rec[BATCH];
} batch_t;

typedef struct outbuf {
        unsigned char *b;
        size_t len, cap;
} outbuf_t;

typedef struct part {
        struct pg_pipeline *pl;
        int id;
        pg_engine_t *eng;
        uint64_t tag; /* input position of the record being pushed */
        outbuf_t out; /* threaded mode: written by the worker only */
        size_t rd;    /* merge cursor (caller only) */
        uint64_t encode_errors;
        char enc[PG_JSON_OUT_MAX];
} part_t;

typedef struct worker {
        struct pg_pipeline *pl;
        int id;
        pthread_t th;
        sem_t work;                 /* published batches not yet taken */
        _Atomic uint64_t submitted; /* written by the caller */
        _Atomic uint64_t done;      /* written by the worker */
        _Atomic int quit;
        batch_t *ring;
} worker_t;

struct pg_pipeline {
        pg_pipeline_conf_t conf;
        int np, nw;
        part_t *parts;
        worker_t *w;
        batch_t **fill; /* the batch being filled per worker, NULL: none */
        sem_t progress; /* posted by workers after each batch */
        uint64_t pos;   /* input position of the next push */
};

int pg_pipeline_partition(const char *merchant_id, size_t len, int n)
{
        return (int)rd_kafka_msg_partitioner_consistent(NULL, merchant_id, len,
                                                        n, NULL, NULL);
}

/* ---- outputs ---- */

static void emit(part_t *pt, int n)
{
        pg_pipeline_t *pl = pt->pl;
        if (n < 0) {
                pt->encode_errors++;
                return;
        }
        if (pl->nw == 1) {
                pl->conf.write(pl->conf.opaque, pt->enc, (size_t)n);
                return;
        }
        outbuf_t *o = &pt->out;
        size_t need = sizeof(uint64_t) + sizeof(uint32_t) + (size_t)n;
        if (o->len + need > o->cap) {
                o->cap = o->cap ? o->cap * 2 : 1 << 16;
                while (o->cap < o->len + need)
                        o->cap *= 2;
                o->b = pg_xrealloc(o->b, o->cap);
        }
        uint32_t len = (uint32_t)n;
        memcpy(o->b + o->len, &pt->tag, sizeof(uint64_t));
        memcpy(o->b + o->len + sizeof(uint64_t), &len, sizeof(len));
        memcpy(o->b + o->len + sizeof(uint64_t) + sizeof(len), pt->enc,
               (size_t)n);
        o->len += need;
}

static void sink_alert(void *opaque, const pg_alert_t *a)
{
        part_t *pt = opaque;
        emit(pt, pt->pl->conf.encode_alert(pt->enc, sizeof(pt->enc), a));
}

static void sink_refund(void *opaque, const pg_refund_t *r)
{
        part_t *pt = opaque;
        emit(pt, pt->pl->conf.encode_refund(pt->enc, sizeof(pt->enc), r));
}

static uint64_t peek_tag(const part_t *pt)
{
        uint64_t t;
        memcpy(&t, pt->out.b + pt->rd, sizeof(t));
        return t;
}

/* Write every buffered output in tag order, then empty the buffers. Only
 * when no worker is running a batch. */
static void merge_outputs(pg_pipeline_t *pl)
{
        for (;;) {
                part_t *best = NULL;
                uint64_t bt = 0;
                for (int i = 0; i < pl->np; i++) {
                        part_t *pt = &pl->parts[i];
                        if (pt->rd >= pt->out.len)
                                continue;
                        uint64_t t = peek_tag(pt);
                        if (!best || t < bt) {
                                best = pt;
                                bt = t;
                        }
                }
                if (!best)
                        break;
                /* the whole run of this partition below the next tag of
                 * any other partition goes at once */
                do {
                        uint32_t len;
                        memcpy(&len, best->out.b + best->rd + sizeof(uint64_t),
                               sizeof(len));
                        pl->conf.write(pl->conf.opaque,
                                       (const char *)best->out.b + best->rd +
                                           sizeof(uint64_t) + sizeof(len),
                                       len);
                        best->rd += sizeof(uint64_t) + sizeof(len) + len;
                } while (best->rd < best->out.len && peek_tag(best) == bt);
        }
        for (int i = 0; i < pl->np; i++) {
                pl->parts[i].out.len = 0;
                pl->parts[i].rd = 0;
        }
}

/* ---- workers ---- */

static void run_batch(pg_pipeline_t *pl, worker_t *w, batch_t *b)
{
        if (b->flush) {
                for (int i = w->id; i < pl->np; i += pl->nw) {
                        pl->parts[i].tag = FLUSH_TAG;
                        pg_engine_flush(pl->parts[i].eng);
                }
                return;
        }
        for (int i = 0; i < b->n; i++) {
                part_t *pt = &pl->parts[b->part[i]];
                pt->tag = b->tag[i];
                pg_engine_push(pt->eng, &b->rec[i]);
        }
}

static void *worker_main(void *arg)
{
        worker_t *w = arg;
        pg_pipeline_t *pl = w->pl;
        for (;;) {
                while (sem_wait(&w->work))
                        ; /* EINTR */
                if (atomic_load(&w->quit))
                        break;
                /* relaxed: only this thread writes done */
                uint64_t d =
                    atomic_load_explicit(&w->done, memory_order_relaxed);
                /* the batch at d was published by the increment of
                 * submitted that the semaphore counted (acquire pairs with
                 * the caller's release increment) */
                (void)atomic_load_explicit(&w->submitted, memory_order_acquire);
                run_batch(pl, w, &w->ring[d % RING]);
                /* release: the batch's engine state and outputs are
                 * complete before the caller sees it done */
                atomic_store_explicit(&w->done, d + 1, memory_order_release);
                sem_post(&pl->progress);
        }
        return NULL;
}

/* Wait until worker w has at most max_pending batches in flight. */
static void wait_worker(pg_pipeline_t *pl, worker_t *w, uint64_t max_pending)
{
        uint64_t s = atomic_load_explicit(&w->submitted, memory_order_relaxed);
        /* posts left from batches nobody waited for would make the waits
         * below return at once: drop them first (a post made after this
         * is for a batch whose done store the check below may miss, and
         * it wakes the wait) */
        while (sem_trywait(&pl->progress) == 0)
                ;
        /* acquire: pairs with the worker's release store of done */
        while (s - atomic_load_explicit(&w->done, memory_order_acquire) >
               max_pending)
                while (sem_wait(&pl->progress))
                        ;
}

static void publish(pg_pipeline_t *pl, int wi)
{
        worker_t *w = &pl->w[wi];
        pl->fill[wi] = NULL;
        /* release: the batch contents are written before the worker can
         * see the new count */
        atomic_fetch_add_explicit(&w->submitted, 1, memory_order_release);
        sem_post(&w->work);
}

/* The batch to fill for worker wi (waits while its ring is full). */
static batch_t *batch_for(pg_pipeline_t *pl, int wi)
{
        if (pl->fill[wi])
                return pl->fill[wi];
        worker_t *w = &pl->w[wi];
        wait_worker(pl, w, RING - 1);
        uint64_t s = atomic_load_explicit(&w->submitted, memory_order_relaxed);
        batch_t *b = &w->ring[s % RING];
        b->n = 0;
        b->flush = 0;
        pl->fill[wi] = b;
        return b;
}

/* ---- the caller's side ---- */

pg_pipeline_t *pg_pipeline_new(const pg_ruleset_t *rules,
                               const pg_engine_conf_t *econf,
                               const pg_pipeline_conf_t *conf, char *errstr,
                               size_t errstr_size)
{
        if (conf->partitions < 1 ||
            conf->partitions > PG_PIPELINE_MAX_PARTITIONS) {
                snprintf(errstr, errstr_size,
                         "partitions must be 1 to %d, got %d",
                         PG_PIPELINE_MAX_PARTITIONS, conf->partitions);
                return NULL;
        }
        if (conf->threads < 1 || conf->threads > PG_PIPELINE_MAX_THREADS) {
                snprintf(errstr, errstr_size, "threads must be 1 to %d, got %d",
                         PG_PIPELINE_MAX_THREADS, conf->threads);
                return NULL;
        }
        pg_pipeline_t *pl = pg_xcalloc(1, sizeof(*pl));
        pl->conf = *conf;
        pl->np = conf->partitions;
        pl->nw = conf->threads < pl->np ? conf->threads : pl->np;
        pl->parts = pg_xcalloc((size_t)pl->np, sizeof(part_t));
        for (int i = 0; i < pl->np; i++) {
                part_t *pt = &pl->parts[i];
                pt->pl = pl;
                pt->id = i;
                pg_sink_t sink = {sink_alert, sink_refund, pt};
                pt->eng =
                    pg_engine_new(rules, econf, &sink, errstr, errstr_size);
                if (!pt->eng) {
                        pg_pipeline_free(pl);
                        return NULL;
                }
        }
        if (pl->nw == 1)
                return pl; /* the reference: the caller drives every engine */
        sem_init(&pl->progress, 0, 0);
        pl->fill = pg_xcalloc((size_t)pl->nw, sizeof(*pl->fill));
        pl->w = pg_xcalloc((size_t)pl->nw, sizeof(worker_t));
        for (int i = 0; i < pl->nw; i++) {
                worker_t *w = &pl->w[i];
                w->pl = pl;
                w->id = i;
                w->ring = pg_xmalloc(RING * sizeof(batch_t));
                sem_init(&w->work, 0, 0);
                atomic_init(&w->submitted, 0);
                atomic_init(&w->done, 0);
                atomic_init(&w->quit, 0);
                if (pthread_create(&w->th, NULL, worker_main, w)) {
                        fprintf(stderr, "posguard: cannot start a worker "
                                        "thread\n");
                        abort();
                }
        }
        return pl;
}

void pg_pipeline_push(pg_pipeline_t *pl, const pg_record_t *rec)
{
        int p = pl->np == 1
                    ? 0
                    : pg_pipeline_partition(rec->merchant_id.s,
                                            rec->merchant_id.len, pl->np);
        uint64_t tag = pl->pos++;
        if (pl->nw == 1) {
                pl->parts[p].tag = tag;
                pg_engine_push(pl->parts[p].eng, rec);
                return;
        }
        int wi = p % pl->nw;
        batch_t *b = batch_for(pl, wi);
        b->tag[b->n] = tag;
        b->part[b->n] = (uint16_t)p;
        memcpy(&b->rec[b->n], rec, sizeof(*rec));
        if (++b->n == BATCH)
                publish(pl, wi);
}

void pg_pipeline_sync(pg_pipeline_t *pl)
{
        if (pl->nw == 1)
                return;
        for (int i = 0; i < pl->nw; i++)
                if (pl->fill[i])
                        publish(pl, i);
        for (int i = 0; i < pl->nw; i++)
                wait_worker(pl, &pl->w[i], 0);
        merge_outputs(pl);
}

void pg_pipeline_flush(pg_pipeline_t *pl)
{
        if (pl->nw == 1) {
                for (int i = 0; i < pl->np; i++) {
                        pl->parts[i].tag = FLUSH_TAG;
                        pg_engine_flush(pl->parts[i].eng);
                }
                return;
        }
        for (int i = 0; i < pl->nw; i++) {
                if (pl->fill[i])
                        publish(pl, i);
                batch_t *b = batch_for(pl, i);
                b->flush = 1;
                publish(pl, i);
        }
        pg_pipeline_sync(pl);
}

void pg_pipeline_stats(const pg_pipeline_t *pl, pg_engine_stats_t *out)
{
        memset(out, 0, sizeof(*out));
        for (int i = 0; i < pl->np; i++) {
                pg_engine_stats_t s;
                pg_engine_stats(pl->parts[i].eng, &s);
                out->records += s.records;
                out->duplicates += s.duplicates;
                out->late += s.late;
                for (int f = 0; f < PG_FIND__COUNT; f++)
                        out->alerts[f] += s.alerts[f];
                out->alerts_shadow += s.alerts_shadow;
                out->alerts_suppressed += s.alerts_suppressed;
                out->refunds_duplicate += s.refunds_duplicate;
                out->refunds_overcharge += s.refunds_overcharge;
                out->refund_amount += s.refund_amount;
                out->refunds_cancelled += s.refunds_cancelled;
                out->refunds_nothing_left += s.refunds_nothing_left;
                out->refunds_blocked += s.refunds_blocked;
                out->state_full += s.state_full;
                out->chain_truncated += s.chain_truncated;
                out->rrn_conflicts += s.rrn_conflicts;
                out->reorder_overflow += s.reorder_overflow;
                out->state_bytes += s.state_bytes;
                /* engines peak at different times: the sum bounds it */
                out->state_bytes_peak += s.state_bytes_peak;
        }
}

uint64_t pg_pipeline_encode_errors(const pg_pipeline_t *pl)
{
        uint64_t n = 0;
        for (int i = 0; i < pl->np; i++)
                n += pl->parts[i].encode_errors;
        return n;
}

void pg_pipeline_free(pg_pipeline_t *pl)
{
        if (!pl)
                return;
        if (pl->w) {
                for (int i = 0; i < pl->nw; i++) {
                        atomic_store(&pl->w[i].quit, 1);
                        sem_post(&pl->w[i].work);
                }
                for (int i = 0; i < pl->nw; i++) {
                        pthread_join(pl->w[i].th, NULL);
                        sem_destroy(&pl->w[i].work);
                        free(pl->w[i].ring);
                }
                free(pl->w);
                free(pl->fill);
                sem_destroy(&pl->progress);
        }
        for (int i = 0; i < pl->np; i++) {
                pg_engine_free(pl->parts[i].eng);
                free(pl->parts[i].out.b);
        }
        free(pl->parts);
        free(pl);
}
