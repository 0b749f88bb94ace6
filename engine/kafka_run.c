/*
 * kafka_run.c - `posguard run`: the engine as a Kafka consumer group member
 * that publishes alerts, refund commands and dead letters exactly once.
 *
 * Exactly once, in one paragraph. Records are consumed with
 * isolation.level=read_committed and no auto commit. Every output an input
 * message causes is produced inside the current Kafka transaction, and the
 * input offsets are sent to the same transaction; every commit.interval.ms
 * the transaction commits, so outputs and the offsets that caused them
 * become visible together or not at all. When the transaction must abort
 * (an abortable error, a lost partition), every partition's state is
 * dropped and rebuilt from the committed offsets, exactly as after a crash.
 *
 * Rebuilding state (warm-up). One engine per assigned partition: event time
 * and the reorder watermark are per partition. With each offset commit goes
 * metadata "pg1 wm=<ms>": the partition's event-time high-water mark. On
 * assignment the consumer reads the committed offset C and that mark W,
 * asks the broker for the first offset whose timestamp is at or after
 * W - horizon (pg_engine_horizon_ms: the longest time any state matters,
 * lateness included), and starts reading there. Messages before C update
 * state but emit nothing (their outputs were committed before); from C on,
 * outputs are produced. The engine is deterministic, so the outputs after
 * C are the ones an uninterrupted run would have produced, with the same
 * alert_id / refund_id. A partition without a committed offset (a new
 * group) starts at auto.offset.reset (earliest by default); one with a
 * committed offset but without the watermark (committed by something else)
 * is warmed up from its beginning.
 * Message timestamps are expected to follow event time (posguard produce
 * sets them to it); where they do not, warm-up covers less or more history
 * than needed, never a wrong output for a record inside its windows.
 *
 * Errors (librdkafka INTRODUCTION.md, "Transactional Producer"):
 * retriable -> try again; abortable -> abort, rebuild, go on; fatal
 * (fenced by a newer instance with the same transactional.id, or any
 * unrecoverable producer error) -> log, leave the transaction uncommitted
 * and exit with status 2 so the supervisor restarts a clean process.
 *
 * Threads. The consumer thread polls a batch of messages (up to BATCH_MAX,
 * waiting only for the first), groups them by partition and hands the
 * groups to the processing threads (setting `workers`, the consumer thread
 * being one of them): each group is claimed whole by one thread (an atomic
 * index), so a partition's messages are decoded and pushed into its engine
 * in offset order by one thread at a time, and per-merchant order (the
 * partition key) is kept. Outputs are produced from the processing thread
 * (librdkafka's producer is thread-safe) into the open transaction. The
 * consumer thread waits for every group of the batch (a barrier: one
 * semaphore post per thread per batch, never per message) before it polls
 * again, so rebalance callbacks, commits, aborts and reloads, which run on
 * the consumer thread between batches, never meet a running engine, and a
 * commit covers exactly what every thread has finished. Fields written by
 * processing threads: part_t's own (one thread per batch owns the part),
 * and the run's dirty / fatal / produce_failed flags (atomics); counters
 * are kept per part and folded into the run's after each batch.
 * librdkafka's threads do the network work.
 */
#include "kafka_run.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "codec_json.h"
#include "codec_pb.h"
#include "engine.h"
#include "kafka_conf.h"
#include "kafka_obs.h"
#include "obs_http.h"
#include "rules.h"
#include "util_log.h"
#include "util_mem.h"
#include "util_time.h"

enum { FMT_PROTOBUF = 0, FMT_JSON = 1 };
static const char *const format_names[] = {"protobuf", "json", NULL};

#define MAX_TOPICS 8        /* input topics */
#define MAX_PARTITIONS 1024 /* per input topic */
#define MAX_SLOTS (MAX_TOPICS * MAX_PARTITIONS)

/* ---------------------------------------------------------------------
 * Logging: logfmt or JSON lines on stderr (util_log.h)
 * ------------------------------------------------------------------- */

#define LOG_INFO(...) pg_log(PG_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) pg_log(PG_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) pg_log(PG_LOG_ERROR, __VA_ARGS__)

/* librdkafka's own log lines, through ours (same format, levels from
 * syslog's: 0-3 error, 4 warning, the rest info). */
static void rk_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
        char m[512];
        snprintf(m, sizeof(m), "%s", buf);
        pg_log(level <= 3   ? PG_LOG_ERROR
               : level == 4 ? PG_LOG_WARN
                            : PG_LOG_INFO,
               "event=librdkafka client=%s facility=%s message=\"%s\"",
               rd_kafka_name(rk), fac, pg_log_quotable(m));
}

/* ---------------------------------------------------------------------
 * State
 * ------------------------------------------------------------------- */

typedef struct run run_t;

/* A dashboard event waiting for its transaction's commit: an output as
 * JSON (NULL when no dashboard listens), and for an alert the ids the top
 * merchants count. */
typedef struct ev {
        const char *type; /* "alert" or "refund" (static) */
        char *json;
        size_t len;
        char merchant[PG_STR_MAX + 1], terminal[PG_STR_MAX + 1];
} ev_t;

typedef struct evlist {
        ev_t *ev;
        size_t n, cap;
        uint64_t dropped; /* past EV_MAX: counted, not kept */
} evlist_t;
#define EV_MAX 1000 /* per transaction */

typedef struct counters {
        uint64_t consumed, warmup, rejected, alerts, refunds, dead_letters;
        uint64_t commits, aborts, rebuilds;
        uint64_t reloads, reloads_failed;
        uint64_t commit_ms;  /* time spent committing, in total */
        uint64_t poll_ms;    /* waiting for messages, in total */
        uint64_t process_ms; /* processing batches, in total */
        uint64_t batches, empty_polls;
        uint64_t rejected_by[PG_REJ__COUNT];
} counters_t;

typedef struct part {
        run_t *run;
        int topic; /* index into run.in_topics */
        int32_t id;
        pg_engine_t *eng;
        int64_t resume;         /* first offset whose outputs we produce */
        int64_t next;           /* after the last live message, -1: none */
        int64_t committed_next; /* what the last commit recorded */
        int64_t max_t;          /* event-time high-water mark, -1: none */
        bool muted;             /* processing a warm-up message */
        bool eof;               /* at the end of the partition */
        bool warmed;            /* warmup_done said (see warm_done) */
        uint64_t warm, live;
        counters_t c;   /* folded into the run's after each batch */
        uint64_t batch; /* the batch job below belongs to */
        size_t job;     /* its job in that batch */
        /* outputs made while the previous transaction commits, produced
         * into the next one when it begins (see "Commits overlap") */
        unsigned char *held;
        size_t held_len, held_cap;
        /* counted since the last batch: metrics and dashboard events, moved
         * to the run's per-transaction staging after each batch */
        pg_metrics_t *m;
        evlist_t ev;
        pg_engine_stats_t last_st; /* engine counters already counted */
        char obuf[PG_PB_OUT_MAX > PG_JSON_OUT_MAX ? PG_PB_OUT_MAX
                                                  : PG_JSON_OUT_MAX];
} part_t;

/* One batch's work for one partition: its messages, in offset order. */
typedef struct job {
        part_t *p;
        rd_kafka_message_t **m;
        size_t n;
        size_t held0; /* p->held_len when the batch began */
} job_t;

#define BATCH_MAX 4096
#define MAX_WORKERS 64

typedef struct pool {
        int n; /* threads besides the consumer's */
        pthread_t th[MAX_WORKERS];
        sem_t go, done;
        job_t jobs[BATCH_MAX];
        size_t njobs;
        _Atomic size_t next; /* the next job to claim */
        _Atomic int quit;
} pool_t;

struct run {
        pg_kconf_t conf;
        pg_ruleset_t *rules;
        pg_engine_conf_t econf;
        int64_t horizon_ms;
        rd_kafka_t *consumer, *producer;
        rd_kafka_mock_cluster_t *mock;
        rd_kafka_t *mock_host;
        int n_in;
        const char *in_topics[MAX_TOPICS];
        int in_formats[MAX_TOPICS];
        char *in_topic_list; /* storage for in_topics */
        const char *alerts_topic, *refunds_topic, *dlq_topic;
        const char *events_topic; /* "" : rule events are logged only */
        int out_format;
        int64_t commit_interval_ms;
        part_t *parts[MAX_SLOTS]; /* [topic * MAX_PARTITIONS + partition] */
        /* set by any processing thread, read by the consumer thread after
         * the batch barrier (seq_cst: rare writes) */
        _Atomic bool dirty;          /* the open transaction holds something */
        _Atomic bool fatal;          /* stop now, commit nothing more (a commit
                                      * already in flight ends, whole) */
        _Atomic bool produce_failed; /* the open transaction must abort */
        bool rebuild;                /* it aborted: rebuild every partition */
        int64_t last_commit;
        int64_t now;         /* monotonic ms, read once per loop turn */
        int64_t polled_wall; /* wall ms when the batch's polls ended */
        int64_t last_message;
        int64_t first_message;    /* 0: none yet */
        int64_t last_commit_done; /* when the last commit returned */
        int64_t until_idle_ms;    /* --until-idle: stop when all caught up */
        /* hot reload: SIGHUP, or the rule file changed (checked every
         * watch_ms; 0: SIGHUP only) */
        const char *rules_path;
        int64_t watch_ms, last_watch;
        struct stat rules_st;
        counters_t c;
        int64_t workers; /* processing threads, the consumer's included */
        pool_t pool;
        /* the committer thread: commits transaction N while the consumer
         * and processing threads go on with what will be N + 1 */
        pthread_t cm_th;
        bool cm_started;
        sem_t cm_go, cm_done;
        _Atomic bool committing; /* read by processing threads in batches */
        bool cm_quit;
        rd_kafka_topic_partition_list_t *cm_offs;
        rd_kafka_consumer_group_metadata_t *cm_group;
        rd_kafka_error_t *cm_err;
        const char *cm_what;
        int64_t cm_t0, cm_t1; /* the commit in flight began, ended */
        rd_kafka_message_t *batch[BATCH_MAX];
        size_t batch_n;    /* polled, not yet processed */
        size_t held_total; /* bytes all parts hold (between batches) */
        uint64_t batch_id; /* batches run so far */
        /* observability (kafka_obs.h): the HTTP endpoint, and what the
         * open and the committing transaction counted (batches processed
         * while a commit is in flight count in the open one: their outputs
         * are produced into it) */
        pg_obs_t *obs;
        pg_metrics_t *m_open, *m_commit;
        evlist_t ev_open, ev_commit;
        pg_topk_t *topk; /* top merchants by committed alerts */
        bool events;     /* the dashboard's event stream is served */
        int64_t last_refresh;
};

static volatile sig_atomic_t stop_requested;

static volatile sig_atomic_t reload_requested;

static void on_signal(int sig)
{
        (void)sig;
        stop_requested = 1;
}

static void on_hup(int sig)
{
        (void)sig;
        reload_requested = 1;
}

/* ---------------------------------------------------------------------
 * Observability: metrics and dashboard events, counted per transaction
 *
 * Processing threads count into their part (p->m, p->ev); after each batch
 * the consumer thread moves that into the open transaction's staging (also
 * while a commit is in flight: those outputs go into the next transaction,
 * see "Commits overlap"). When a transaction commits its
 * staging goes to the exported registry and its events to the dashboard's
 * stream; when it aborts, its staging is dropped (the records are counted
 * again when they are processed again). kafka_obs.h names the metrics.
 * ------------------------------------------------------------------- */

/* Append e (its json now l's), or count it dropped past EV_MAX. */
static void ev_push(evlist_t *l, const ev_t *e)
{
        if (l->n >= EV_MAX) {
                l->dropped++;
                free(e->json);
                return;
        }
        if (l->n == l->cap) {
                l->cap = l->cap ? 2 * l->cap : 16;
                l->ev = pg_xrealloc(l->ev, l->cap * sizeof(*l->ev));
        }
        l->ev[l->n++] = *e;
}

/* An output's event: json is n bytes (no newline), copied; NULL: none. */
static void ev_add(evlist_t *l, const char *type, const char *json, size_t n,
                   const char *merchant, const char *terminal)
{
        ev_t e = {type, NULL, n, "", ""};
        if (json) {
                e.json = pg_xmalloc(n + 1);
                memcpy(e.json, json, n);
                e.json[n] = '\0';
        }
        snprintf(e.merchant, sizeof(e.merchant), "%s",
                 merchant ? merchant : "");
        snprintf(e.terminal, sizeof(e.terminal), "%s",
                 terminal ? terminal : "");
        ev_push(l, &e);
}

static void ev_clear(evlist_t *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->ev[i].json);
        l->n = 0;
        l->dropped = 0;
}

static void ev_move(evlist_t *dst, evlist_t *src)
{
        for (size_t i = 0; i < src->n; i++)
                ev_push(dst, &src->ev[i]);
        dst->dropped += src->dropped;
        src->n = 0;
        src->dropped = 0;
}

static void ev_free(evlist_t *l)
{
        ev_clear(l);
        free(l->ev);
        l->ev = NULL;
        l->cap = 0;
}

/* Add to one exported series now (not transaction-bound). */
static void obs_count(run_t *r, int fam, const char *const *labels, double v)
{
        if (!r->obs)
                return;
        pg_metrics_add(pg_obs_lock(r->obs), fam, labels, v);
        pg_obs_unlock(r->obs);
}

static void obs_observe(run_t *r, int fam, double x)
{
        if (!r->obs)
                return;
        pg_metrics_observe(pg_obs_lock(r->obs), fam, NULL, x);
        pg_obs_unlock(r->obs);
}

static double major_units(int64_t minor, const char *currency)
{
        double v = (double)minor;
        for (int e = pg_currency_exponent(currency); e > 0; e--)
                v /= 10;
        return v;
}

/* An alert p's thread just published. json: its JSON in p->obuf when the
 * output format is JSON (n bytes, the newline included), else NULL. */
static void obs_alert(part_t *p, const pg_alert_t *a, const char *json, int n)
{
        run_t *r = p->run;
        if (!r->obs)
                return;
        const char *cur = a->currency ? a->currency : "";
        const char *al[] = {a->rule_id, a->finding, a->severity, a->mode};
        pg_metrics_add(p->m, M_ALERTS, al, 1);
        if (a->blocked) {
                const char *bl[] = {a->rule_id, a->blocked, cur};
                pg_metrics_add(p->m, M_BLOCKED, bl, 1);
                pg_metrics_add(p->m, M_BLOCKED_AMOUNT, bl,
                               major_units(a->amount, cur));
        }
        /* detected_at is the wall clock unless the engine runs on event
         * time */
        int64_t at = r->econf.event_clock ? pg_wall_ms() : a->detected_at;
        pg_metrics_observe(p->m, M_DETECTION, NULL,
                           (double)(at - a->event_time) / 1000.0);
        /* the top merchants count every alert; the JSON is for the
         * dashboard's stream only */
        if (!r->events) {
                ev_add(&p->ev, "alert", NULL, 0, a->merchant_id,
                       a->terminal_id);
                return;
        }
        if (!json) {
                n = pg_codec_json_alert(p->obuf, sizeof(p->obuf), a);
                json = p->obuf;
        }
        if (n > 1)
                ev_add(&p->ev, "alert", json, (size_t)n - 1, a->merchant_id,
                       a->terminal_id);
}

static void obs_refund(part_t *p, const pg_refund_t *f, const char *json, int n)
{
        run_t *r = p->run;
        if (!r->obs)
                return;
        const char *cur = f->currency ? f->currency : "";
        const char *l[] = {f->rule_id, f->reason, cur};
        pg_metrics_add(p->m, M_REFUNDS, l, 1);
        pg_metrics_add(p->m, M_REFUND_AMOUNT, l, major_units(f->amount, cur));
        if (!r->events)
                return;
        if (!json) {
                n = pg_codec_json_refund(p->obuf, sizeof(p->obuf), f);
                json = p->obuf;
        }
        if (n > 1)
                ev_add(&p->ev, "refund", json, (size_t)n - 1, NULL, NULL);
}

/* After a batch (consumer thread): p's counts into the staging of the
 * transaction its outputs went to. */
static void obs_fold(run_t *r, part_t *p)
{
        if (!r->obs)
                return;
        const char *tl[] = {r->in_topics[p->topic]};
        if (p->c.consumed > p->c.warmup)
                pg_metrics_add(p->m, M_CONSUMED, tl,
                               (double)(p->c.consumed - p->c.warmup));
        if (p->c.warmup) /* no outputs, no transaction: counted now */
                obs_count(r, M_WARMUP, tl, (double)p->c.warmup);
        /* the engine's own counters, from the end of warm-up on (a
         * rebuild's warm-up would count them again) */
        pg_engine_stats_t st;
        pg_engine_stats(p->eng, &st);
        if (p->warmed) {
                const pg_engine_stats_t *o = &p->last_st;
                static const char *const cancelled[] = {"cancelled"};
                static const char *const nothing[] = {"refunded_in_full"};
                if (st.late > o->late)
                        pg_metrics_add(p->m, M_LATE, NULL,
                                       (double)(st.late - o->late));
                if (st.duplicates > o->duplicates)
                        pg_metrics_add(p->m, M_DUPLICATES, NULL,
                                       (double)(st.duplicates - o->duplicates));
                if (st.refunds_cancelled > o->refunds_cancelled)
                        pg_metrics_add(p->m, M_NOT_REFUNDED, cancelled,
                                       (double)(st.refunds_cancelled -
                                                o->refunds_cancelled));
                if (st.refunds_nothing_left > o->refunds_nothing_left)
                        pg_metrics_add(p->m, M_NOT_REFUNDED, nothing,
                                       (double)(st.refunds_nothing_left -
                                                o->refunds_nothing_left));
                if (st.state_full > o->state_full)
                        pg_metrics_add(p->m, M_CAP_HITS, NULL,
                                       (double)(st.state_full - o->state_full));
        }
        p->last_st = st;
        pg_metrics_merge(r->m_open, p->m);
        pg_metrics_clear(p->m);
        ev_move(&r->ev_open, &p->ev);
}

/* The open transaction starts committing: its counts become the
 * committing one's (empty: one commit is in flight at a time, and each
 * ends by clearing them), and the open one starts from nothing. */
static void obs_commit_start(run_t *r)
{
        if (!r->obs)
                return;
        pg_metrics_t *m = r->m_commit;
        r->m_commit = r->m_open;
        r->m_open = m;
        evlist_t l = r->ev_commit;
        r->ev_commit = r->ev_open;
        r->ev_open = l;
}

/* It committed: its counts are exported, its events go to the dashboard. */
static void obs_committed(run_t *r, int64_t dt_ms)
{
        if (!r->obs)
                return;
        static const char *const ok[] = {"committed"};
        pg_metrics_t *m = pg_obs_lock(r->obs);
        pg_metrics_merge(m, r->m_commit);
        pg_metrics_add(m, M_TXNS, ok, 1);
        pg_metrics_observe(m, M_COMMIT, NULL, (double)dt_ms / 1000.0);
        pg_obs_unlock(r->obs);
        pg_metrics_clear(r->m_commit);
        int64_t now = pg_wall_ms();
        for (size_t i = 0; i < r->ev_commit.n; i++) {
                const ev_t *e = &r->ev_commit.ev[i];
                if (e->json)
                        pg_obs_publish(r->obs, e->type, e->json, e->len);
                if (!strcmp(e->type, "alert") && r->topk)
                        pg_topk_add(r->topk, e->merchant, e->terminal, now);
        }
        ev_clear(&r->ev_commit);
}

/* It aborted: every count of the open and committing transactions
 * goes (their records are processed again after the rebuild). */
static void obs_aborted(run_t *r)
{
        if (!r->obs)
                return;
        static const char *const ab[] = {"aborted"};
        obs_count(r, M_TXNS, ab, 1);
        pg_metrics_clear(r->m_open);
        pg_metrics_clear(r->m_commit);
        ev_clear(&r->ev_open);
        ev_clear(&r->ev_commit);
}

/* ---------------------------------------------------------------------
 * Producing outputs
 * ------------------------------------------------------------------- */

/* A fatal producer error (fenced by a newer instance with the same
 * transactional.id, or an unrecoverable state), wherever it shows first: a
 * produce, a commit or an abort. Nothing more is committed; the run exits
 * with status 2 and a restart resumes from the last commit. */
static void stop_fatal(run_t *r, const char *what, const char *why)
{
        char buf[512];
        if (rd_kafka_fatal_error(r->producer, buf, sizeof(buf)))
                why = buf;
        LOG_ERROR("event=transaction_fatal error=\"%s: %s\" (exiting; a "
                  "restart resumes from the last commit)",
                  what, why);
        r->fatal = true;
}

/* Produce one message into the open transaction; waits while the local
 * queue is full. A failure other than a full queue makes the transaction
 * abortable: commit will fail and the run rebuilds. */
static void produce(run_t *r, const char *topic, const char *key,
                    const void *val, size_t len, const char *const *hdr,
                    int nhdr)
{
        rd_kafka_headers_t *h = NULL;
        if (nhdr) {
                h = rd_kafka_headers_new((size_t)nhdr);
                for (int i = 0; i < nhdr; i++)
                        if (hdr[2 * i + 1])
                                rd_kafka_header_add(h, hdr[2 * i], -1,
                                                    hdr[2 * i + 1], -1);
        }
        for (;;) {
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    r->producer, RD_KAFKA_V_TOPIC(topic),
                    RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                    RD_KAFKA_V_VALUE((void *)val, len),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
                if (!err)
                        break;
                if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        rd_kafka_poll(r->producer, 50);
                        continue;
                }
                if (h)
                        rd_kafka_headers_destroy(h);
                if (err == RD_KAFKA_RESP_ERR__FATAL) {
                        stop_fatal(r, "produce", rd_kafka_err2str(err));
                        break;
                }
                LOG_ERROR("event=produce_failed topic=%s error=\"%s\"", topic,
                          rd_kafka_err2str(err));
                r->produce_failed = true;
                break;
        }
        r->dirty = true;
        rd_kafka_poll(r->producer, 0);
}

/* ---- Commits overlap ----
 *
 * A transaction commits on the committer thread (rd_kafka_commit_transaction
 * blocks for a broker round trip or several: 10 to 100 ms on a loaded
 * box). Meanwhile batches go on: their outputs cannot join the committing
 * transaction, so each partition holds them, in order, as encoded
 * messages; when the commit returns, the consumer thread begins the next
 * transaction and produces what was held before any later output. The
 * offsets sent with a transaction are the ones snapshotted when its commit
 * started, so it covers exactly the outputs produced into it. If the commit
 * fails, the held outputs are dropped with the aborted state: the rebuild
 * re-reads from the committed offsets and makes them again. */

#define HELD_MAX_HDR 5                    /* the most any output carries */
#define HELD_MAX_BYTES ((size_t)64 << 20) /* then wait for the commit */

static void held_put(part_t *p, const void *b, size_t n)
{
        if (p->held_len + n > p->held_cap) {
                size_t c = p->held_cap ? p->held_cap : 1 << 16;
                while (c < p->held_len + n)
                        c *= 2;
                p->held = pg_xrealloc(p->held, c);
                p->held_cap = c;
        }
        memcpy(p->held + p->held_len, b, n);
        p->held_len += n;
}

static void held_str(part_t *p, const char *s)
{
        uint32_t n = s ? (uint32_t)strlen(s) : UINT32_MAX;
        held_put(p, &n, sizeof(n));
        if (s)
                held_put(p, s, n);
}

/* Keep one output of p until the next transaction begins. From the thread
 * processing p. */
static void hold(part_t *p, const char *topic, const char *key, const void *val,
                 size_t len, const char *const *hdr, int nhdr)
{
        if (nhdr > HELD_MAX_HDR) { /* a programming error: never drop */
                LOG_ERROR("event=hold_failed headers=%d", nhdr);
                p->run->fatal = true;
                return;
        }
        held_str(p, topic);
        held_str(p, key);
        uint32_t n = (uint32_t)len;
        held_put(p, &n, sizeof(n));
        held_put(p, val, len);
        uint8_t h = (uint8_t)nhdr;
        held_put(p, &h, 1);
        for (int i = 0; i < nhdr; i++) {
                held_str(p, hdr[2 * i]);
                held_str(p, hdr[2 * i + 1]);
        }
}

static const char *held_get(run_t *r, const unsigned char *b, size_t *i,
                            char *out, size_t cap)
{
        uint32_t n;
        memcpy(&n, b + *i, sizeof(n));
        *i += sizeof(n);
        if (n == UINT32_MAX)
                return NULL;
        if (n >= cap) { /* larger than any output's field: never cut one */
                LOG_ERROR("event=release_failed field_bytes=%u", n);
                r->fatal = true;
                *i += n;
                out[0] = '\0';
                return out;
        }
        memcpy(out, b + *i, n);
        out[n] = '\0';
        *i += n;
        return out;
}

/* Produce what every partition held, in each partition's order, into the
 * transaction just begun (consumer thread, no batch running). */
static void release_held(run_t *r)
{
        char topic[256], key[PG_STR_MAX + 1],
            hb[2 * HELD_MAX_HDR][PG_REASON_MAX + 64];
        for (int s = 0; s < MAX_SLOTS; s++) {
                part_t *p = r->parts[s];
                if (!p || !p->held_len)
                        continue;
                for (size_t i = 0; i < p->held_len;) {
                        const char *t =
                            held_get(r, p->held, &i, topic, sizeof(topic));
                        const char *k =
                            held_get(r, p->held, &i, key, sizeof(key));
                        uint32_t n;
                        memcpy(&n, p->held + i, sizeof(n));
                        i += sizeof(n);
                        const unsigned char *val = p->held + i;
                        i += n;
                        int nh = p->held[i++];
                        const char *hdr[2 * HELD_MAX_HDR];
                        for (int h = 0; h < nh && h < HELD_MAX_HDR; h++) {
                                hdr[2 * h] = held_get(r, p->held, &i, hb[2 * h],
                                                      sizeof(hb[0]));
                                hdr[2 * h + 1] =
                                    held_get(r, p->held, &i, hb[2 * h + 1],
                                             sizeof(hb[0]));
                        }
                        produce(r, t, k, val, n, hdr, nh);
                }
                p->held_len = 0;
        }
        r->held_total = 0;
}

static void drop_held(run_t *r)
{
        for (int s = 0; s < MAX_SLOTS; s++)
                if (r->parts[s])
                        r->parts[s]->held_len = 0;
        r->held_total = 0;
}

/* Publish the output the caller encoded into p->obuf (n bytes; n < 0: the
 * encoder refused it, which stops the run: an output must never be
 * dropped). From the thread processing p. */
static void publish(part_t *p, const char *topic, const char *key, int n,
                    const char *const *hdr, int nhdr, const char *what,
                    const char *id)
{
        run_t *r = p->run;
        if (n < 0) {
                LOG_ERROR("event=encode_failed what=%s id=%s", what, id);
                r->fatal = true;
                return;
        }
        if (r->out_format == FMT_JSON && n > 0)
                n--; /* the JSON encoders end a line: not in a message */
        if (r->committing)
                hold(p, topic, key, p->obuf, (size_t)n, hdr, nhdr);
        else
                produce(r, topic, key, p->obuf, (size_t)n, hdr, nhdr);
}

static void sink_alert(void *opaque, const pg_alert_t *a)
{
        part_t *p = opaque;
        run_t *r = p->run;
        if (p->muted)
                return;
        int n = r->out_format == FMT_JSON
                    ? pg_codec_json_alert(p->obuf, sizeof(p->obuf), a)
                    : pg_codec_pb_alert(p->obuf, sizeof(p->obuf), a);
        const char *hdr[] = {"finding",  a->finding, "severity", a->severity,
                             "rule_id",  a->rule_id, "mode",     a->mode,
                             "alert_id", a->alert_id};
        publish(p, r->alerts_topic, a->merchant_id, n, hdr, 5, "alert",
                a->alert_id);
        p->c.alerts++;
        obs_alert(p, a, r->out_format == FMT_JSON ? p->obuf : NULL, n);
}

static void sink_refund(void *opaque, const pg_refund_t *f)
{
        part_t *p = opaque;
        run_t *r = p->run;
        if (p->muted)
                return;
        int n = r->out_format == FMT_JSON
                    ? pg_codec_json_refund(p->obuf, sizeof(p->obuf), f)
                    : pg_codec_pb_refund(p->obuf, sizeof(p->obuf), f);
        const char *hdr[] = {"reason",   f->reason,   "rule_id",
                             f->rule_id, "refund_id", f->refund_id};
        publish(p, r->refunds_topic, f->merchant_id, n, hdr, 3, "refund",
                f->refund_id);
        p->c.refunds++;
        obs_refund(p, f, r->out_format == FMT_JSON ? p->obuf : NULL, n);
}

static void dead_letter(part_t *p, const rd_kafka_message_t *m,
                        pg_reject_t code, const char *field, const char *detail)
{
        run_t *r = p->run;
        pg_source_pos_t pos = {rd_kafka_topic_name(m->rkt), m->partition,
                               m->offset, -1};
        rd_kafka_timestamp_type_t tt;
        pos.timestamp_ms = rd_kafka_message_timestamp(m, &tt);
        int n = r->out_format == FMT_JSON
                    ? pg_codec_json_reject(p->obuf, sizeof(p->obuf), code,
                                           field, detail, (uint64_t)m->offset,
                                           m->payload, m->len)
                    : pg_codec_pb_reject(p->obuf, sizeof(p->obuf), code, field,
                                         detail, &pos, m->payload, m->len);
        char ps[16], os[24];
        snprintf(ps, sizeof(ps), "%" PRId32, m->partition);
        snprintf(os, sizeof(os), "%" PRId64, m->offset);
        const char *hdr[] = {"reason",
                             pg_reject_name(code),
                             "field",
                             field,
                             "source_topic",
                             pos.topic,
                             "source_partition",
                             ps,
                             "source_offset",
                             os};
        publish(p, r->dlq_topic, NULL, n, hdr, 5, "dead_letter", os);
        p->c.dead_letters++;
        if (r->obs) {
                const char *rl[] = {pg_reject_name(code)};
                pg_metrics_add(p->m, M_REJECTED, rl, 1);
        }
}

/* ---------------------------------------------------------------------
 * Partitions: creation, warm-up start, rebuild
 * ------------------------------------------------------------------- */

/* The slot of (topic, partition), or NULL when it is not one of ours. */
static part_t **slot(run_t *r, const char *topic, int32_t partition)
{
        if (partition < 0 || partition >= MAX_PARTITIONS || !topic)
                return NULL;
        for (int t = 0; t < r->n_in; t++)
                if (!strcmp(r->in_topics[t], topic))
                        return &r->parts[t * MAX_PARTITIONS + partition];
        return NULL;
}

/* Add a part's counters to the run's (consumer thread, between
 * batches). */
static void fold_counters(run_t *r, part_t *p)
{
        obs_fold(r, p);
        uint64_t *to = (uint64_t *)&r->c, *from = (uint64_t *)&p->c;
        for (size_t i = 0; i < sizeof(counters_t) / sizeof(uint64_t); i++)
                to[i] += from[i];
        memset(&p->c, 0, sizeof(p->c));
}

static void part_free(part_t **s)
{
        part_t *p = *s;
        if (!p)
                return;
        fold_counters(p->run, p);
        p->run->held_total -= p->held_len;
        pg_engine_free(p->eng);
        free(p->held);
        pg_metrics_free(p->m);
        ev_free(&p->ev);
        free(p);
        *s = NULL;
}

static part_t *part_new(run_t *r, part_t **s, int topic, int32_t id,
                        int64_t resume, int64_t wm)
{
        part_free(s);
        part_t *p = pg_xcalloc(1, sizeof(*p));
        p->run = r;
        p->topic = topic;
        p->id = id;
        p->resume = resume;
        p->next = -1;
        p->committed_next = resume;
        p->max_t = wm;
        if (r->obs)
                p->m = pg_metrics_new(pg_run_families, M__COUNT);
        pg_sink_t sink = {sink_alert, sink_refund, p};
        char err[256];
        p->eng = pg_engine_new(r->rules, &r->econf, &sink, err, sizeof(err));
        if (!p->eng) {
                LOG_ERROR("event=engine_failed topic=%s partition=%d "
                          "error=\"%s\"",
                          r->in_topics[topic], id, err);
                pg_metrics_free(p->m);
                free(p);
                r->fatal = true;
                return NULL;
        }
        *s = p;
        return p;
}

/* Warm-up of p is over: said once per engine, also when there was
 * nothing to warm up (no committed offset, no history in the horizon) or
 * when the history ended before the committed offset (retention). */
static void warm_done(part_t *p)
{
        if (p->warmed)
                return;
        p->warmed = true;
        /* the engine's counters so far were warm-up's: not counted */
        pg_engine_stats(p->eng, &p->last_st);
        LOG_INFO("event=warmup_done topic=%s partition=%d records=%" PRIu64,
                 p->run->in_topics[p->topic], p->id, p->warm);
}

/* "pg1 wm=<ms>" -> ms, or -1. */
static int64_t parse_wm(const void *md, size_t len)
{
        char b[64];
        if (!md || len == 0 || len >= sizeof(b))
                return -1;
        memcpy(b, md, len);
        b[len] = '\0';
        long long v;
        if (sscanf(b, "pg1 wm=%lld", &v) != 1 || v < 0)
                return -1;
        return v;
}

/*
 * For every partition in list: read its committed offset and watermark,
 * create its engine, and set the list's offset to where reading starts.
 */
static void plan_partitions(run_t *r, rd_kafka_topic_partition_list_t *list)
{
        rd_kafka_topic_partition_list_t *c =
            rd_kafka_topic_partition_list_copy(list);
        for (int i = 0; i < c->cnt; i++)
                c->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
        rd_kafka_resp_err_t err = rd_kafka_committed(r->consumer, c, 30000);
        if (err)
                LOG_WARN("event=committed_failed error=\"%s\" (reading from "
                         "auto.offset.reset)",
                         rd_kafka_err2str(err));
        /* where warm-up starts: the first offset at or after wm - horizon */
        rd_kafka_topic_partition_list_t *t =
            rd_kafka_topic_partition_list_new(c->cnt);
        for (int i = 0; i < c->cnt; i++) {
                int64_t wm =
                    parse_wm(c->elems[i].metadata, c->elems[i].metadata_size);
                if (c->elems[i].offset >= 0 && wm >= 0)
                        rd_kafka_topic_partition_list_add(t, c->elems[i].topic,
                                                          c->elems[i].partition)
                            ->offset =
                            wm > r->horizon_ms ? wm - r->horizon_ms : 0;
        }
        if (t->cnt) {
                err = rd_kafka_offsets_for_times(r->consumer, t, 30000);
                if (err)
                        LOG_WARN("event=offsets_for_times_failed error=\"%s\" "
                                 "(warm-up from the start of the partition)",
                                 rd_kafka_err2str(err));
        }
        for (int i = 0; i < list->cnt; i++) {
                rd_kafka_topic_partition_t *e = &list->elems[i];
                rd_kafka_topic_partition_t *ce = &c->elems[i];
                part_t **sl = slot(r, e->topic, e->partition);
                if (!sl) {
                        LOG_ERROR("event=partition_out_of_range topic=%s "
                                  "partition=%d",
                                  e->topic, e->partition);
                        r->fatal = true;
                        continue;
                }
                int64_t resume = ce->offset; /* may be INVALID */
                int64_t wm = parse_wm(ce->metadata, ce->metadata_size);
                /* a committed offset without our watermark: warm up from
                 * the start, the only safe choice */
                int64_t start =
                    resume > 0 && wm < 0 ? RD_KAFKA_OFFSET_BEGINNING : resume;
                rd_kafka_topic_partition_t *te =
                    rd_kafka_topic_partition_list_find(t, e->topic,
                                                       e->partition);
                if (te) {
                        if (err || te->err || te->offset < 0)
                                start = RD_KAFKA_OFFSET_BEGINNING;
                        else if (te->offset < resume)
                                start = te->offset;
                }
                part_t *p =
                    part_new(r, sl, (int)(sl - r->parts) / MAX_PARTITIONS,
                             e->partition, resume >= 0 ? resume : 0, wm);
                if (!p)
                        continue;
                e->offset = start;
                LOG_INFO("event=partition_assigned topic=%s partition=%d "
                         "committed=%" PRId64 " watermark=%" PRId64
                         " warmup_from=%" PRId64,
                         e->topic, e->partition, resume, wm, start);
                if (resume <= 0 || start == resume)
                        warm_done(p);
        }
        rd_kafka_topic_partition_list_destroy(t);
        rd_kafka_topic_partition_list_destroy(c);
}

/* ---------------------------------------------------------------------
 * Transactions
 * ------------------------------------------------------------------- */

enum { TXN_OK = 0, TXN_ABORTED, TXN_FATAL };

static int txn_fail(run_t *r, rd_kafka_error_t *e, const char *what);

static void txn_begin(run_t *r)
{
        rd_kafka_error_t *e = rd_kafka_begin_transaction(r->producer);
        if (e) {
                if (rd_kafka_error_is_fatal(e))
                        stop_fatal(r, "begin_transaction",
                                   rd_kafka_error_string(e));
                else
                        LOG_ERROR("event=begin_transaction_failed "
                                  "error=\"%s\"",
                                  rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
                r->fatal = true;
        }
}

static int commit_wait(run_t *r);

/* Abort the open transaction; every assigned partition is rebuilt from
 * its committed offset on the next loop turn. A commit in flight ends
 * first; if it failed, it has aborted already. */
static int txn_abort(run_t *r, const char *why)
{
        int rc = commit_wait(r);
        if (r->fatal)
                return TXN_FATAL;
        if (rc == TXN_ABORTED)
                return rc;
        LOG_WARN("event=transaction_abort reason=\"%s\"", why);
        drop_held(r);
        r->dirty = false;
        rd_kafka_error_t *e = rd_kafka_abort_transaction(r->producer, -1);
        if (e) {
                /* an abort that fails leaves no way to go on */
                stop_fatal(r, "abort_transaction", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
                return TXN_FATAL;
        }
        r->c.aborts++;
        obs_aborted(r);
        r->produce_failed = false;
        r->rebuild = true;
        txn_begin(r);
        return TXN_ABORTED;
}

static int txn_fail(run_t *r, rd_kafka_error_t *e, const char *what)
{
        char msg[512];
        snprintf(msg, sizeof(msg), "%s: %s", what, rd_kafka_error_string(e));
        if (rd_kafka_error_is_fatal(e)) {
                stop_fatal(r, what, rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
                return TXN_FATAL;
        }
        bool abortable = rd_kafka_error_txn_requires_abort(e);
        rd_kafka_error_destroy(e);
        if (abortable)
                return txn_abort(r, msg);
        LOG_ERROR("event=transaction_error error=\"%s\" (exiting)", msg);
        r->fatal = true;
        return TXN_FATAL;
}

/* The offsets of every partition that moved since the last commit, with
 * the watermark metadata. */
static rd_kafka_topic_partition_list_t *offsets_now(run_t *r)
{
        rd_kafka_topic_partition_list_t *offs =
            rd_kafka_topic_partition_list_new(8);
        for (int i = 0; i < MAX_SLOTS; i++) {
                part_t *p = r->parts[i];
                if (!p || p->next < 0 || p->next <= p->committed_next)
                        continue;
                rd_kafka_topic_partition_t *e =
                    rd_kafka_topic_partition_list_add(
                        offs, r->in_topics[p->topic], p->id);
                e->offset = p->next;
                char md[48];
                int n = snprintf(md, sizeof(md), "pg1 wm=%" PRId64,
                                 p->max_t < 0 ? 0 : p->max_t);
                e->metadata = pg_xmalloc((size_t)n);
                memcpy(e->metadata, md, (size_t)n);
                e->metadata_size = (size_t)n;
        }
        return offs;
}

/* Send the offsets, then commit: librdkafka calls only, from the
 * committer thread or the consumer thread. NULL when committed; the error
 * and what failed otherwise. */
static rd_kafka_error_t *commit_work(run_t *r,
                                     rd_kafka_topic_partition_list_t *offs,
                                     rd_kafka_consumer_group_metadata_t *g,
                                     const char **what)
{
        for (int attempt = 0; offs->cnt; attempt++) {
                rd_kafka_error_t *e = rd_kafka_send_offsets_to_transaction(
                    r->producer, offs, g, -1);
                if (!e)
                        break;
                if (rd_kafka_error_is_retriable(e) && attempt < 10) {
                        rd_kafka_error_destroy(e);
                        continue;
                }
                *what = "send_offsets_to_transaction";
                return e;
        }
        for (int attempt = 0;; attempt++) {
                rd_kafka_error_t *e =
                    rd_kafka_commit_transaction(r->producer, -1);
                if (!e)
                        return NULL;
                if (rd_kafka_error_is_retriable(e) && attempt < 10) {
                        rd_kafka_error_destroy(e);
                        continue;
                }
                *what = "commit_transaction";
                return e;
        }
}

/* The end of a commit, on the consumer thread: on success the next
 * transaction begins and what was held goes into it. */
static int commit_done(run_t *r, rd_kafka_topic_partition_list_t *offs,
                       rd_kafka_consumer_group_metadata_t *g,
                       rd_kafka_error_t *e, const char *what, int64_t t0,
                       int64_t t1)
{
        rd_kafka_consumer_group_metadata_destroy(g);
        if (e) {
                rd_kafka_topic_partition_list_destroy(offs);
                return txn_fail(r, e, what);
        }
        for (int i = 0; i < offs->cnt; i++) {
                part_t **sl =
                    slot(r, offs->elems[i].topic, offs->elems[i].partition);
                if (sl && *sl)
                        (*sl)->committed_next = offs->elems[i].offset;
        }
        rd_kafka_topic_partition_list_destroy(offs);
        r->c.commits++;
        /* t1: when the commit returned (on the committer thread), not when
         * this thread noticed */
        r->last_commit_done = t1;
        int64_t dt = t1 - t0;
        r->c.commit_ms += (uint64_t)dt;
        if (dt > 1000)
                LOG_WARN("event=slow_commit ms=%" PRId64, dt);
        txn_begin(r);
        release_held(r);
        obs_committed(r, dt);
        return TXN_OK;
}

static void *committer_main(void *arg)
{
        run_t *r = arg;
        for (;;) {
                while (sem_wait(&r->cm_go))
                        ; /* EINTR */
                if (r->cm_quit)
                        return NULL;
                r->cm_err =
                    commit_work(r, r->cm_offs, r->cm_group, &r->cm_what);
                r->cm_t1 = pg_mono_ms(); /* published by the post */
                sem_post(&r->cm_done);
        }
}

/* The commit in flight has returned: finish it on this thread. */
static int commit_finish(run_t *r)
{
        r->committing = false;
        return commit_done(r, r->cm_offs, r->cm_group, r->cm_err, r->cm_what,
                           r->cm_t0, r->cm_t1);
}

/* Wait for a commit in flight, if any, and finish it. */
static int commit_wait(run_t *r)
{
        if (!r->committing)
                return TXN_OK;
        while (sem_wait(&r->cm_done))
                ;
        return commit_finish(r);
}

/* Finish the commit in flight if it has returned; never waits. */
static void commit_poll(run_t *r)
{
        if (r->committing && sem_trywait(&r->cm_done) == 0)
                commit_finish(r);
}

/* Commit the open transaction, on the committer thread when one runs
 * (wait: false) or here. Between batches only. */
static int txn_commit_mode(run_t *r, bool wait)
{
        int rc = commit_wait(r);
        if (rc != TXN_OK || r->fatal)
                return r->fatal ? TXN_FATAL : rc;
        /* after an abort the offsets are stale until the rebuild: nothing
         * is committed before it */
        if (r->rebuild)
                return TXN_ABORTED;
        if (r->produce_failed)
                return txn_abort(r, "a produce failed");
        if (!r->dirty)
                return TXN_OK;
        int64_t t0 = pg_mono_ms();
        rd_kafka_topic_partition_list_t *offs = offsets_now(r);
        rd_kafka_consumer_group_metadata_t *g =
            rd_kafka_consumer_group_metadata(r->consumer);
        r->dirty = false; /* what comes from now on is the next one's */
        obs_commit_start(r);
        if (!wait && r->cm_started) {
                r->cm_offs = offs;
                r->cm_group = g;
                r->cm_t0 = t0;
                r->cm_err = NULL;
                r->committing = true;
                sem_post(&r->cm_go);
                return TXN_OK;
        }
        const char *what = NULL;
        rd_kafka_error_t *e = commit_work(r, offs, g, &what);
        return commit_done(r, offs, g, e, what, t0, pg_mono_ms());
}

/* Send the offsets of every partition that moved, then commit, and wait. */
static int txn_commit(run_t *r)
{
        return txn_commit_mode(r, true);
}

/* After an abort: every assigned partition starts again from its committed
 * offset, warm-up first. */
static void rebuild_all(run_t *r)
{
        commit_wait(r); /* committed offsets are read below */
        if (r->fatal)
                return;
        rd_kafka_topic_partition_list_t *a = NULL;
        rd_kafka_resp_err_t err = rd_kafka_assignment(r->consumer, &a);
        r->rebuild = false;
        if (err) {
                LOG_ERROR("event=assignment_failed error=\"%s\"",
                          rd_kafka_err2str(err));
                r->fatal = true;
                return;
        }
        r->c.rebuilds++;
        obs_count(r, M_REBUILDS, NULL, 1);
        if (a->cnt == 0) { /* nothing assigned (e.g. all lost) */
                rd_kafka_topic_partition_list_destroy(a);
                return;
        }
        plan_partitions(r, a);
        rd_kafka_error_t *e = rd_kafka_seek_partitions(r->consumer, a, 30000);
        if (e) {
                LOG_ERROR("event=seek_failed error=\"%s\"",
                          rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
                r->fatal = true;
        } else {
                for (int i = 0; i < a->cnt; i++)
                        if (a->elems[i].err)
                                r->fatal = true;
        }
        rd_kafka_topic_partition_list_destroy(a);
}

/* A rule event as one JSON object on output.events (when set), produced in
 * the open transaction: {"type":"rules_reloaded"|"rules_reload_failed",
 * "at":..., "version":..., "hash":..., ...}. */
static void rules_event(run_t *r, const char *type, const pg_ruleset_t *now,
                        const pg_ruleset_t *prev, const char *error)
{
        if (!r->events_topic[0])
                return;
        commit_wait(r); /* produced here, into an open transaction */
        char t[40], buf[2048];
        pg_time_format(pg_wall_ms(), t, sizeof(t));
        int n = snprintf(buf, sizeof(buf),
                         "{\"type\":\"%s\",\"at\":\"%s\",\"path\":\"%s\","
                         "\"version\":\"%s\",\"hash\":\"%s\"",
                         type, t, r->rules_path, now->version, now->hash);
        if (prev && n > 0 && (size_t)n < sizeof(buf))
                n += snprintf(buf + n, sizeof(buf) - (size_t)n,
                              ",\"previous_version\":\"%s\","
                              "\"previous_hash\":\"%s\"",
                              prev->version, prev->hash);
        if (error && n > 0 && (size_t)n < sizeof(buf))
                n += snprintf(buf + n, sizeof(buf) - (size_t)n,
                              ",\"error\":\"%.1500s\"", error);
        if (n > 0 && (size_t)n < sizeof(buf) - 1) {
                buf[n++] = '}';
                const char *hdr[] = {"type", type};
                produce(r, r->events_topic, NULL, buf, (size_t)n, hdr, 1);
        }
}

/* ---------------------------------------------------------------------
 * Hot reload
 *
 * A new rule set is built and validated off to the side; a broken one is
 * reported and changes nothing. A good one takes over at a commit: the
 * open transaction commits (every output so far was decided by the old
 * set), the new set is swapped in, and every assigned partition is rebuilt
 * from its committed offset with warm-up, as after an abort: the windows
 * are recomputed under the new rules from the partition's history, outputs
 * muted up to the switch point, so no record is evaluated for output twice
 * or by a mix of versions. The old set is freed once no engine uses it.
 * ------------------------------------------------------------------- */

static bool rules_file_changed(run_t *r)
{
        struct stat st;
        if (stat(r->rules_path, &st) != 0)
                return false; /* gone for a moment (an editor's rename) */
        bool changed = st.st_mtim.tv_sec != r->rules_st.st_mtim.tv_sec ||
                       st.st_mtim.tv_nsec != r->rules_st.st_mtim.tv_nsec ||
                       st.st_size != r->rules_st.st_size ||
                       st.st_ino != r->rules_st.st_ino;
        r->rules_st = st;
        return changed;
}

static void maybe_reload(run_t *r)
{
        bool due = reload_requested;
        if (!due && r->watch_ms > 0 && r->now - r->last_watch >= r->watch_ms) {
                r->last_watch = r->now;
                due = rules_file_changed(r);
        }
        if (!due)
                return;
        reload_requested = 0;
        rules_file_changed(r); /* remember what we load */
        char err[1024];
        pg_ruleset_t *nrs = pg_rules_load_file(r->rules_path, err, sizeof(err));
        if (nrs && pg_engine_conf_check(nrs, &r->econf, err, sizeof(err))) {
                pg_rules_free(nrs); /* its horizons outgrow the sizing */
                nrs = NULL;
        }
        if (!nrs) {
                r->c.reloads_failed++;
                static const char *const failed[] = {"failed"};
                obs_count(r, M_RELOADS, failed, 1);
                pg_log_quotable(err); /* one log line */
                LOG_ERROR("event=rules_reload_failed path=%s error=\"%s\" "
                          "note=\"still running version %s hash %s\"",
                          r->rules_path, err, r->rules->version,
                          r->rules->hash);
                for (char *p = err; *p; p++) /* JSON-safe */
                        if (*p == '\\')
                                *p = ' ';
                rules_event(r, "rules_reload_failed", r->rules, NULL, err);
                return;
        }
        if (!strcmp(nrs->hash, r->rules->hash)) {
                LOG_INFO("event=rules_unchanged version=%s hash=%s",
                         nrs->version, nrs->hash);
                pg_rules_free(nrs);
                return;
        }
        if (txn_commit(r) != TXN_OK) {
                /* aborted or fatal: try again once the run is rebuilt */
                pg_rules_free(nrs);
                reload_requested = !r->fatal;
                return;
        }
        pg_ruleset_t *old = r->rules;
        r->rules = nrs;
        r->horizon_ms = pg_engine_horizon_ms(nrs);
        rebuild_all(r); /* every engine now runs the new set */
        LOG_INFO("event=rules_reloaded version=%s hash=%s rules=%d "
                 "previous_version=%s previous_hash=%s",
                 nrs->version, nrs->hash, nrs->n_rules, old->version,
                 old->hash);
        rules_event(r, "rules_reloaded", nrs, old, NULL);
        pg_rules_free(old);
        r->c.reloads++;
        static const char *const ok[] = {"ok"};
        obs_count(r, M_RELOADS, ok, 1);
}

/* ---------------------------------------------------------------------
 * Rebalance (cooperative-sticky: incremental)
 * ------------------------------------------------------------------- */

static void run_pending(run_t *r);

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
        run_t *r = opaque;
        /* messages polled before the rebalance belong to the old
         * assignment: they are processed (and, on revoke, committed)
         * before it changes */
        run_pending(r);
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                plan_partitions(r, parts);
                rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
                if (e) {
                        LOG_ERROR("event=assign_failed error=\"%s\"",
                                  rd_kafka_error_string(e));
                        rd_kafka_error_destroy(e);
                        r->fatal = true;
                }
                return;
        }
        if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
                /* Outputs of what was processed go out with its offsets
                 * before another member takes the partitions; lost
                 * partitions may already be someone else's: abort. */
                if (rd_kafka_assignment_lost(rk))
                        txn_abort(r, "partitions lost");
                else
                        txn_commit(r);
                for (int i = 0; i < parts->cnt; i++) {
                        part_t **sl = slot(r, parts->elems[i].topic,
                                           parts->elems[i].partition);
                        if (sl && *sl) {
                                LOG_INFO("event=partition_revoked topic=%s "
                                         "partition=%d live=%" PRIu64
                                         " warmup=%" PRIu64,
                                         parts->elems[i].topic,
                                         parts->elems[i].partition, (*sl)->live,
                                         (*sl)->warm);
                                part_free(sl);
                        }
                }
                rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, parts);
                if (e) {
                        LOG_ERROR("event=unassign_failed error=\"%s\"",
                                  rd_kafka_error_string(e));
                        rd_kafka_error_destroy(e);
                }
                return;
        }
        LOG_ERROR("event=rebalance_error error=\"%s\"", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
}

/* ---------------------------------------------------------------------
 * One input message
 * ------------------------------------------------------------------- */

/* One message of partition p, on the thread that claimed p's job. */
static void process(part_t *p, const rd_kafka_message_t *m)
{
        run_t *r = p->run;
        p->muted = m->offset < p->resume;
        if (r->obs && !p->muted) {
                /* where a detection's latency is spent before posguard
                 * has the record: producer and broker (a re-read after a
                 * rebuild is not a delivery, so muted ones do not count) */
                rd_kafka_timestamp_type_t tt;
                int64_t ts = rd_kafka_message_timestamp(m, &tt);
                if (tt != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && ts > 0)
                        pg_metrics_observe(p->m, M_CONSUME_DELAY, NULL,
                                           ts < r->polled_wall
                                               ? (double)(r->polled_wall - ts) /
                                                     1000.0
                                               : 0.0);
        }
        pg_record_t rec;
        const char *field = NULL;
        char why[256];
        pg_reject_t rej;
        if (r->in_formats[p->topic] == FMT_JSON) {
                rej = pg_codec_json_parse(m->payload, m->len, &rec, &field, why,
                                          sizeof(why));
        } else {
                rej = pg_codec_pb_parse(m->payload, m->len, &rec, &field, why,
                                        sizeof(why));
        }
        if (rej == PG_REJ_NONE) {
                if (rec.event_time > p->max_t)
                        p->max_t = rec.event_time;
                pg_engine_push(p->eng, &rec);
        } else if (!p->muted) {
                p->c.rejected++;
                p->c.rejected_by[rej]++;
                dead_letter(p, m, rej, field, why);
        }
        if (p->muted) {
                p->warm++;
                p->c.warmup++;
                if (m->offset + 1 == p->resume)
                        warm_done(p);
        } else {
                warm_done(p);
                p->live++;
                p->next = m->offset + 1;
                r->dirty = true;
        }
        p->muted = false;
}

static void run_jobs(run_t *r)
{
        pool_t *pl = &r->pool;
        for (;;) {
                /* relaxed: the jobs were published by the semaphore post
                 * that woke this thread (or written by this thread) */
                size_t i = atomic_fetch_add_explicit(&pl->next, 1,
                                                     memory_order_relaxed);
                if (i >= pl->njobs)
                        return;
                job_t *j = &pl->jobs[i];
                for (size_t k = 0; k < j->n && !r->fatal; k++)
                        process(j->p, j->m[k]);
        }
}

static void *worker_main(void *arg)
{
        run_t *r = arg;
        for (;;) {
                while (sem_wait(&r->pool.go))
                        ; /* EINTR */
                if (atomic_load(&r->pool.quit))
                        return NULL;
                run_jobs(r);
                sem_post(&r->pool.done);
        }
}

static void pool_start(run_t *r)
{
        pool_t *pl = &r->pool;
        sem_init(&pl->go, 0, 0);
        sem_init(&pl->done, 0, 0);
        atomic_init(&pl->next, 0);
        atomic_init(&pl->quit, 0);
        pl->n = 0;
        for (int i = 0; i < r->workers - 1 && i < MAX_WORKERS; i++) {
                if (pthread_create(&pl->th[i], NULL, worker_main, r)) {
                        LOG_WARN("event=worker_start_failed started=%d", i);
                        break;
                }
                pl->n++;
        }
}

static void pool_stop(run_t *r)
{
        pool_t *pl = &r->pool;
        atomic_store(&pl->quit, 1);
        for (int i = 0; i < pl->n; i++)
                sem_post(&pl->go);
        for (int i = 0; i < pl->n; i++)
                pthread_join(pl->th[i], NULL);
        pl->n = 0;
        sem_destroy(&pl->go);
        sem_destroy(&pl->done);
}

/* Process r->batch[0..n): group the messages by partition (offset order
 * kept within each), run the groups on the processing threads, wait for
 * all of them, fold the counters, free the messages. */
static void run_batch(run_t *r, size_t n)
{
        pool_t *pl = &r->pool;
        static rd_kafka_message_t *grouped[BATCH_MAX];
        part_t *owner[BATCH_MAX];
        size_t used = 0;
        if (r->rebuild || r->fatal) {
                /* an abort is pending (in a rebalance callback, say): the
                 * engines are stale and every partition will be read again
                 * from its committed offset, so these are not processed */
                for (size_t i = 0; i < n; i++)
                        rd_kafka_message_destroy(r->batch[i]);
                return;
        }
        r->batch_id++;
        pl->njobs = 0;
        /* two passes: count per part, then place (n is small) */
        for (size_t i = 0; i < n; i++) {
                rd_kafka_message_t *m = r->batch[i];
                part_t **sl =
                    slot(r, rd_kafka_topic_name(m->rkt), m->partition);
                part_t *p = sl ? *sl : NULL;
                owner[i] = NULL;
                if (m->err) {
                        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                                if (p)
                                        p->eof = true;
                        } else {
                                LOG_WARN("event=consume_error error=\"%s\"",
                                         rd_kafka_message_errstr(m));
                        }
                        continue;
                }
                if (!p)
                        continue; /* a message of a partition no longer ours */
                p->eof = false;
                r->last_message = r->now;
                if (!r->first_message)
                        r->first_message = r->last_message;
                p->c.consumed++;
                owner[i] = p;
                if (p->batch != r->batch_id) { /* first message of p here */
                        p->batch = r->batch_id;
                        p->job = pl->njobs;
                        pl->jobs[pl->njobs++] =
                            (job_t){p, NULL, 0, p->held_len};
                }
                pl->jobs[p->job].n++;
        }
        for (size_t j = 0; j < pl->njobs; j++) {
                pl->jobs[j].m = grouped + used;
                used += pl->jobs[j].n;
                pl->jobs[j].n = 0;
        }
        for (size_t i = 0; i < n; i++) {
                if (!owner[i])
                        continue;
                job_t *j = &pl->jobs[owner[i]->job];
                j->m[j->n++] = r->batch[i];
        }
        atomic_store_explicit(&pl->next, 0, memory_order_relaxed);
        /* only as many helpers as there are groups beyond ours */
        int helpers = pl->njobs > 1 ? (int)pl->njobs - 1 : 0;
        if (helpers > pl->n)
                helpers = pl->n;
        for (int i = 0; i < helpers; i++)
                sem_post(&pl->go); /* publishes the jobs (sem: release) */
        run_jobs(r);
        for (int i = 0; i < helpers; i++)
                while (sem_wait(&pl->done))
                        ;
        for (size_t j = 0; j < pl->njobs; j++) {
                fold_counters(r, pl->jobs[j].p);
                r->held_total += pl->jobs[j].p->held_len - pl->jobs[j].held0;
        }
        for (size_t i = 0; i < n; i++)
                rd_kafka_message_destroy(r->batch[i]);
}

/* Process what was polled so far: before every rebalance (the callback
 * runs inside a poll, possibly in the middle of a batch) and at the end of
 * each loop turn. */
static void run_pending(run_t *r)
{
        size_t n = r->batch_n;
        r->batch_n = 0;
        if (n)
                run_batch(r, n);
}

/* ---------------------------------------------------------------------
 * Setup
 * ------------------------------------------------------------------- */

static const char *const known_keys[] = {"rules",
                                         "input.topic",
                                         "input.format",
                                         "output.alerts",
                                         "output.refunds",
                                         "output.dlq",
                                         "output.format",
                                         "group.id",
                                         "transactional.id",
                                         "commit.interval.ms",
                                         "refund.cap.merchant",
                                         "refund.cap.global",
                                         "kill.switch",
                                         "max.state.mb",
                                         "expect.records",
                                         "clock",
                                         "rules.watch.ms",
                                         "output.events",
                                         "workers",
                                         "http.listen",
                                         "log.format",
                                         "log.level",
                                         "metrics.file",
                                         NULL};

static void run_usage(FILE *f)
{
        fputs("usage: posguard run --config FILE [-X key=value]... "
              "[--embedded]\n"
              "\n"
              "Settings (config file lines or -X), defaults in brackets:\n"
              "  rules               rule file [rules/default.yaml]\n"
              "  input.topic         records topic(s), comma-separated "
              "[pos.txn]\n"
              "  input.format        protobuf | json [protobuf]\n"
              "  input.format.TOPIC  the format of one input topic\n"
              "  output.alerts       [pos.alerts]\n"
              "  output.refunds      [pos.refunds]\n"
              "  output.dlq          [pos.dlq]\n"
              "  output.format       protobuf | json [protobuf]\n"
              "  group.id            consumer group [posguard]\n"
              "  transactional.id    stable per instance [posguard-<host>]\n"
              "  commit.interval.ms  transaction length [100]\n"
              "  refund.cap.merchant, refund.cap.global, kill.switch,\n"
              "  max.state.mb, clock (wall | event)  as for replay\n"
              "  expect.records      live records per partition's engine "
              "to size\n"
              "                      its state for from the start (as "
              "replay's\n"
              "                      --expect-records) [0]\n"
              "  output.events       topic for rules_reloaded / "
              "rules_reload_failed\n"
              "                      events (JSON; empty: log only) []\n"
              "  rules.watch.ms      check the rule file for changes this "
              "often\n"
              "                      (0: on SIGHUP only) [1000]\n"
              "  workers             processing threads, the consumer's "
              "included\n"
              "                      (0: one per core) [0]\n"
              "  http.listen         HOST:PORT of /metrics, /healthz, "
              "/readyz and the\n"
              "                      live dashboard (port 0: any free one; "
              "empty: none)\n"
              "                      [127.0.0.1:9464]\n"
              "  log.format          logfmt | json [logfmt]\n"
              "  log.level           info | warn | error [info]\n"
              "  metrics.file        at exit, write the final metrics there "
              "(Prometheus\n"
              "                      text, as node_exporter's textfile "
              "collector reads) []\n"
              "  kafka.*             any librdkafka setting, for both "
              "clients\n"
              "  kafka.consumer.*, kafka.producer.*  for one client only\n"
              "--until-idle MS: drain, commit and exit once every partition "
              "of the\n"
              "  input topic is assigned here, at its end, and nothing came "
              "for MS\n"
              "  (a single instance: tests, demos)\n"
              "--embedded: librdkafka's in-process mock cluster instead of "
              "a broker\n"
              "  (a quick look only: NOT a real broker, no exactly-once "
              "guarantee)\n",
              f);
}

static int setup(run_t *r, bool embedded, char *err, size_t errsz)
{
        pg_kconf_t *c = &r->conf;
        if (pg_kconf_check_known(c, known_keys, "input.format.", err, errsz))
                return -1;
        static const char *const formats[] = {"logfmt", "json", NULL};
        static const char *const levels[] = {"info", "warn", "error", NULL};
        int lf, ll;
        if (pg_kconf_choice(c, "log.format", formats, 0, &lf, err, errsz) ||
            pg_kconf_choice(c, "log.level", levels, 0, &ll, err, errsz))
                return -1;
        pg_log_configure((pg_log_format_t)lf, (pg_log_level_t)ll);
        const char *rules = pg_kconf_get(c, "rules", "rules/default.yaml");
        r->rules_path = rules;
        stat(rules, &r->rules_st);
        r->rules = pg_rules_load_file(rules, err, errsz);
        if (!r->rules)
                return -1;
        if (pg_kconf_int(c, "rules.watch.ms", 1000, 0, 3600000, &r->watch_ms,
                         err, errsz))
                return -1;
        r->horizon_ms = pg_engine_horizon_ms(r->rules);
        /* input.topic: one topic or a comma-separated list; each takes
         * input.format unless input.format.<topic> says otherwise */
        int def_format;
        if (pg_kconf_choice(c, "input.format", format_names, FMT_PROTOBUF,
                            &def_format, err, errsz))
                return -1;
        free(r->in_topic_list);
        r->in_topic_list = strdup(pg_kconf_get(c, "input.topic", "pos.txn"));
        r->n_in = 0;
        for (char *save = NULL, *t = strtok_r(r->in_topic_list, ", ", &save); t;
             t = strtok_r(NULL, ", ", &save)) {
                if (r->n_in == MAX_TOPICS) {
                        snprintf(err, errsz, "input.topic: at most %d topics",
                                 MAX_TOPICS);
                        return -1;
                }
                char key[160];
                snprintf(key, sizeof(key), "input.format.%s", t);
                r->in_topics[r->n_in] = t;
                if (pg_kconf_choice(c, key, format_names, def_format,
                                    &r->in_formats[r->n_in], err, errsz))
                        return -1;
                r->n_in++;
        }
        if (r->n_in == 0) {
                snprintf(err, errsz, "input.topic: no topic named");
                return -1;
        }
        r->alerts_topic = pg_kconf_get(c, "output.alerts", "pos.alerts");
        r->refunds_topic = pg_kconf_get(c, "output.refunds", "pos.refunds");
        r->dlq_topic = pg_kconf_get(c, "output.dlq", "pos.dlq");
        r->events_topic = pg_kconf_get(c, "output.events", "");
        int clock;
        static const char *const clocks[] = {"wall", "event", NULL};
        int64_t mb, expect;
        if (pg_kconf_choice(c, "output.format", format_names, FMT_PROTOBUF,
                            &r->out_format, err, errsz) ||
            pg_kconf_int(c, "commit.interval.ms", 100, 1, 600000,
                         &r->commit_interval_ms, err, errsz) ||
            pg_kconf_int(c, "refund.cap.merchant", 0, 0, INT64_MAX,
                         &r->econf.refund_cap_merchant, err, errsz) ||
            pg_kconf_int(c, "refund.cap.global", 0, 0, INT64_MAX,
                         &r->econf.refund_cap_global, err, errsz) ||
            pg_kconf_bool(c, "kill.switch", false, &r->econf.kill_switch, err,
                          errsz) ||
            pg_kconf_int(c, "max.state.mb", 1024, 1, 1 << 20, &mb, err,
                         errsz) ||
            pg_kconf_int(c, "expect.records", 0, 0,
                         (int64_t)PG_MAX_EXPECT_RECORDS, &expect, err, errsz) ||
            pg_kconf_choice(c, "clock", clocks, 0, &clock, err, errsz) ||
            pg_kconf_int(c, "workers", 0, 0, MAX_WORKERS, &r->workers, err,
                         errsz))
                return -1;
        if (r->workers == 0) {
                long cores = sysconf(_SC_NPROCESSORS_ONLN);
                r->workers = cores < 1             ? 1
                             : cores > MAX_WORKERS ? MAX_WORKERS
                                                   : cores;
        }
        r->econf.max_state_bytes = (size_t)mb << 20;
        r->econf.expect_records = (size_t)expect;
        r->econf.event_clock = clock == 1;
        if (pg_engine_conf_check(r->rules, &r->econf, err, errsz))
                return -1;

        /* the HTTP endpoint, up before the clients so that /healthz and
         * /readyz answer (not ready) while the group is joined */
        const char *listen = pg_kconf_get(c, "http.listen", "127.0.0.1:9464");
        if (listen[0] || pg_kconf_get(c, "metrics.file", "")[0]) {
                r->obs = pg_obs_new(pg_run_families, M__COUNT);
                if (listen[0] && pg_obs_listen(r->obs, listen, err, errsz))
                        return -1;
                r->events = listen[0] != 0;
                r->m_open = pg_metrics_new(pg_run_families, M__COUNT);
                r->m_commit = pg_metrics_new(pg_run_families, M__COUNT);
                r->topk = pg_topk_new();
                pg_metrics_set(pg_obs_lock(r->obs), M_START, NULL,
                               (double)pg_wall_ms() / 1000.0);
                pg_obs_unlock(r->obs);
                if (listen[0])
                        LOG_INFO("event=http_listening url=%s "
                                 "metrics=%smetrics",
                                 pg_obs_url(r->obs), pg_obs_url(r->obs));
        }

        char host[64] = "local";
        gethostname(host, sizeof(host) - 1);
        char txid[128];
        snprintf(txid, sizeof(txid), "posguard-%s", host);
        const char *group = pg_kconf_get(c, "group.id", "posguard");
        const char *tid = pg_kconf_get(c, "transactional.id", txid);

        if (embedded) {
                /* The mock cluster lives in a client of its own; both real
                 * clients connect to it over loopback like to a broker. */
                rd_kafka_conf_t *hc = rd_kafka_conf_new();
                char e2[256];
                r->mock_host =
                    rd_kafka_new(RD_KAFKA_PRODUCER, hc, e2, sizeof(e2));
                if (!r->mock_host) {
                        snprintf(err, errsz, "mock cluster: %s", e2);
                        return -1;
                }
                r->mock = rd_kafka_mock_cluster_new(r->mock_host, 1);
                if (!r->mock) {
                        snprintf(err, errsz, "mock cluster: cannot start");
                        return -1;
                }
                const char *topics[] = {r->alerts_topic, r->refunds_topic,
                                        r->dlq_topic};
                for (int i = 0; i < 3; i++)
                        rd_kafka_mock_topic_create(r->mock, topics[i], 1, 1);
                for (int i = 0; i < r->n_in; i++)
                        rd_kafka_mock_topic_create(r->mock, r->in_topics[i], 4,
                                                   1);
                pg_kconf_set(c, "kafka.bootstrap.servers",
                             rd_kafka_mock_cluster_bootstraps(r->mock),
                             "--embedded");
                LOG_WARN("event=embedded bootstrap=%s note=\"librdkafka mock "
                         "cluster: NOT a real broker, a quick look only\"",
                         rd_kafka_mock_cluster_bootstraps(r->mock));
        }

        rd_kafka_conf_t *cc = pg_kconf_rdkafka(c, "consumer", err, errsz);
        if (!cc)
                return -1;
        rd_kafka_conf_set_log_cb(cc, rk_log);
        char e2[512];
        struct {
                const char *k, *v;
        } cdef[] = {
            {"group.id", group},
            {"enable.auto.commit", "false"},
            {"enable.auto.offset.store", "false"},
            {"isolation.level", "read_committed"},
            {"partition.assignment.strategy", "cooperative-sticky"},
            {"auto.offset.reset", "earliest"},
            {"enable.partition.eof", r->until_idle_ms > 0 ? "true" : "false"},
            /* librdkafka 2.0's default (100000) stalled the fetch path: the
             * consumer waited for fetches a third of the time at 1M
             * records (bench/kafka_run.sh, docs/PERFORMANCE.md); the
             * byte bound (queued.max.messages.kbytes) still caps memory */
            {"queued.min.messages", "1000000"}};
        for (size_t i = 0; i < sizeof(cdef) / sizeof(cdef[0]); i++) {
                char key[128];
                snprintf(key, sizeof(key), "kafka.consumer.%s", cdef[i].k);
                char key2[128];
                snprintf(key2, sizeof(key2), "kafka.%s", cdef[i].k);
                /* a user's own setting wins, except the ones exactly-once
                 * needs */
                bool forced = i >= 1 && i <= 3;
                if (!forced &&
                    (pg_kconf_get(c, key, NULL) || pg_kconf_get(c, key2, NULL)))
                        continue;
                if (rd_kafka_conf_set(cc, cdef[i].k, cdef[i].v, e2,
                                      sizeof(e2)) != RD_KAFKA_CONF_OK) {
                        snprintf(err, errsz, "%s: %s", cdef[i].k, e2);
                        rd_kafka_conf_destroy(cc);
                        return -1;
                }
        }
        rd_kafka_conf_set_rebalance_cb(cc, rebalance_cb);
        rd_kafka_conf_set_opaque(cc, r);
        r->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e2, sizeof(e2));
        if (!r->consumer) {
                snprintf(err, errsz, "consumer: %s", e2);
                return -1;
        }
        rd_kafka_poll_set_consumer(r->consumer);

        rd_kafka_conf_t *pc = pg_kconf_rdkafka(c, "producer", err, errsz);
        if (!pc)
                return -1;
        rd_kafka_conf_set_log_cb(pc, rk_log);
        if (rd_kafka_conf_set(pc, "transactional.id", tid, e2, sizeof(e2)) !=
            RD_KAFKA_CONF_OK) {
                snprintf(err, errsz, "transactional.id: %s", e2);
                rd_kafka_conf_destroy(pc);
                return -1;
        }
        r->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, e2, sizeof(e2));
        if (!r->producer) {
                snprintf(err, errsz, "producer: %s", e2);
                return -1;
        }
        rd_kafka_error_t *e = rd_kafka_init_transactions(r->producer, 60000);
        if (e) {
                snprintf(err, errsz, "init_transactions: %s",
                         rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
                return -1;
        }
        char inputs[512] = "";
        for (int i = 0; i < r->n_in; i++) {
                size_t l = strlen(inputs);
                snprintf(inputs + l, sizeof(inputs) - l, "%s%s/%s",
                         i ? "," : "", r->in_topics[i],
                         format_names[r->in_formats[i]]);
        }
        pool_start(r);
        sem_init(&r->cm_go, 0, 0);
        sem_init(&r->cm_done, 0, 0);
        r->cm_started = pthread_create(&r->cm_th, NULL, committer_main, r) == 0;
        if (!r->cm_started)
                LOG_WARN("event=committer_start_failed note=\"commits run "
                         "on the consumer thread\"");
        LOG_INFO("event=started rules=%s rules_version=%s group=%s "
                 "transactional_id=%s input=%s outputs=%s,%s,%s/%s "
                 "horizon_ms=%" PRId64 " workers=%d",
                 rules, r->rules->version, group, tid, inputs, r->alerts_topic,
                 r->refunds_topic, r->dlq_topic, format_names[r->out_format],
                 r->horizon_ms, r->pool.n + 1);
        return 0;
}

/* Partitions of a topic, from the cluster's metadata; -1 when it cannot be
 * had now. */
static int topic_partitions(run_t *r, const char *topic)
{
        rd_kafka_topic_t *t = rd_kafka_topic_new(r->consumer, topic, NULL);
        if (!t)
                return -1;
        const struct rd_kafka_metadata *md = NULL;
        int n = -1;
        if (rd_kafka_metadata(r->consumer, 0, t, &md, 5000) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topic_cnt == 1) {
                if (!md->topics[0].err)
                        n = md->topics[0].partition_cnt;
                else if (md->topics[0].err ==
                         RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                        n = 0; /* nothing to wait for */
        }
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(t);
        return n;
}

/* --until-idle (one instance: tests, demos): every partition of the input
 * topics is assigned here and at its end, and nothing came for a while. A
 * partition still held by a member that died is not ours yet: wait. */
static bool caught_up(run_t *r)
{
        if (r->now - r->last_message < r->until_idle_ms)
                return false;
        int n = 0, want = 0;
        for (int i = 0; i < MAX_SLOTS; i++) {
                const part_t *p = r->parts[i];
                if (!p)
                        continue;
                if (!p->eof)
                        return false;
                n++;
        }
        for (int t = 0; t < r->n_in; t++) {
                int k = topic_partitions(r, r->in_topics[t]);
                if (k < 0)
                        return false;
                want += k;
        }
        return n > 0 && n == want;
}

/* Once a second (consumer thread, between batches): the gauges, the
 * heartbeat with readiness, and the dashboard's stats event. */
static void obs_refresh(run_t *r, bool force)
{
        if (!r->obs || (!force && r->now - r->last_refresh < 1000))
                return;
        r->last_refresh = r->now;
        int assigned = 0, warming = 0;
        pg_metrics_t *m = pg_obs_lock(r->obs);
        pg_metrics_reset_family(m, M_LAG);
        pg_metrics_reset_family(m, M_STATE_ENTRIES);
        pg_metrics_reset_family(m, M_STATE_BYTES);
        pg_metrics_reset_family(m, M_RULES_INFO);
        pg_metrics_reset_family(m, M_TOP_ALERTS);
        pg_metrics_reset_family(m, M_TOP_TERMINALS);
        if (r->topk) {
                pg_topk_row_t top[PG_TOPK_N];
                size_t nt = pg_topk_top(r->topk, pg_wall_ms(), top, PG_TOPK_N);
                for (size_t i = 0; i < nt; i++) {
                        char rank[24];
                        snprintf(rank, sizeof(rank), "%zu", i + 1);
                        const char *tl[] = {top[i].merchant, rank};
                        pg_metrics_set(m, M_TOP_ALERTS, tl, top[i].alerts);
                        pg_metrics_set(m, M_TOP_TERMINALS, tl,
                                       top[i].terminals);
                }
        }
        for (int i = 0; i < MAX_SLOTS; i++) {
                part_t *p = r->parts[i];
                if (!p)
                        continue;
                assigned++;
                warming += !p->warmed;
                const char *topic = r->in_topics[p->topic];
                int64_t lo, hi;
                if (rd_kafka_get_watermark_offsets(r->consumer, topic, p->id,
                                                   &lo, &hi) == 0 &&
                    hi >= 0) {
                        int64_t at = p->next >= 0 ? p->next : p->resume;
                        char ps[16];
                        snprintf(ps, sizeof(ps), "%" PRId32, p->id);
                        const char *ll[] = {topic, ps};
                        pg_metrics_set(m, M_LAG, ll,
                                       (double)(hi > at ? hi - at : 0));
                }
                pg_state_part_t sp[64];
                size_t n = pg_engine_state_parts(p->eng, sp, 64);
                for (size_t k = 0; k < n && k < 64; k++) {
                        const char *sl[] = {sp[k].table, sp[k].rule};
                        pg_metrics_add(m, M_STATE_ENTRIES, sl,
                                       (double)sp[k].entries);
                        pg_metrics_add(m, M_STATE_BYTES, sl,
                                       (double)sp[k].bytes);
                }
        }
        bool ready = assigned > 0 && warming == 0 && !r->rebuild && !r->fatal;
        char why[96];
        if (r->fatal)
                snprintf(why, sizeof(why), "stopping after a fatal error");
        else if (r->rebuild)
                snprintf(why, sizeof(why), "rebuilding state");
        else if (!assigned)
                snprintf(why, sizeof(why), "no partition assigned");
        else
                snprintf(why, sizeof(why), "%d of %d partitions warming up",
                         warming, assigned);
        pg_metrics_set(m, M_ASSIGNED, NULL, assigned);
        pg_metrics_set(m, M_WARMING, NULL, warming);
        pg_metrics_set(m, M_READY, NULL, ready);
        pg_metrics_set(m, M_HELD, NULL, (double)r->held_total);
        pg_metrics_set(m, M_STATE_CAP, NULL, (double)r->econf.max_state_bytes);
        const char *rl[] = {r->rules->version, r->rules->hash};
        pg_metrics_set(m, M_RULES_INFO, rl, 1);
        static char stats[16384];
        size_t n = pg_run_stats_json(stats, sizeof(stats), m, r->rules,
                                     pg_wall_ms(), ready, ready ? "" : why);
        pg_obs_unlock(r->obs);
        pg_obs_heartbeat(r->obs, ready, why);
        pg_obs_stats(r->obs, stats, n);
}

/* metrics.file: the exported registry as it is at exit, written to a
 * temporary file and renamed, so a reader never sees half of it. */
static void metrics_file(run_t *r)
{
        const char *path = pg_kconf_get(&r->conf, "metrics.file", "");
        if (!path[0] || !r->obs)
                return;
        size_t n;
        char *text = pg_metrics_render(pg_obs_lock(r->obs), &n);
        pg_obs_unlock(r->obs);
        char tmp[4096];
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        FILE *f = fopen(tmp, "w");
        bool ok = f && fwrite(text, 1, n, f) == n;
        if (f && fclose(f))
                ok = false;
        if (ok && rename(tmp, path))
                ok = false;
        if (ok)
                LOG_INFO("event=metrics_written path=%s bytes=%zu", path, n);
        else
                LOG_ERROR("event=metrics_write_failed path=%s error=\"%s\"",
                          path, strerror(errno));
        free(text);
}

static void teardown(run_t *r)
{
        pg_obs_free(r->obs); /* the server first: it reads what goes below */
        r->obs = NULL;
        if (r->pool.n)
                pool_stop(r);
        if (r->cm_started) {
                if (r->committing) { /* a fatal stop: let it end first */
                        while (sem_wait(&r->cm_done))
                                ;
                        r->committing = false;
                        if (r->cm_err)
                                rd_kafka_error_destroy(r->cm_err);
                        rd_kafka_topic_partition_list_destroy(r->cm_offs);
                        rd_kafka_consumer_group_metadata_destroy(r->cm_group);
                }
                r->cm_quit = true;
                sem_post(&r->cm_go);
                pthread_join(r->cm_th, NULL);
                r->cm_started = false;
                sem_destroy(&r->cm_go);
                sem_destroy(&r->cm_done);
        }
        for (int i = 0; i < MAX_SLOTS; i++)
                part_free(&r->parts[i]);
        if (r->consumer)
                rd_kafka_destroy(r->consumer);
        if (r->producer)
                rd_kafka_destroy(r->producer);
        if (r->mock)
                rd_kafka_mock_cluster_destroy(r->mock);
        if (r->mock_host)
                rd_kafka_destroy(r->mock_host);
        pg_rules_free(r->rules);
        pg_kconf_free(&r->conf);
        free(r->in_topic_list);
        pg_metrics_free(r->m_open);
        pg_metrics_free(r->m_commit);
        pg_topk_free(r->topk);
        ev_free(&r->ev_open);
        ev_free(&r->ev_commit);
}

static long peak_rss_kb(void)
{
        struct rusage ru;
        return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

static void summary(const run_t *r)
{
        /* throughput: from the first message to the commit that made the
         * last outputs visible */
        int64_t span =
            r->first_message && r->last_commit_done > r->first_message
                ? r->last_commit_done - r->first_message
                : 0;
        LOG_INFO(
            "event=stopped consumed=%" PRIu64 " warmup=%" PRIu64
            " rejected=%" PRIu64 " alerts=%" PRIu64 " refunds=%" PRIu64
            " dead_letters=%" PRIu64 " commits=%" PRIu64 " aborts=%" PRIu64
            " rebuilds=%" PRIu64 " reloads=%" PRIu64 " reloads_failed=%" PRIu64
            " batches=%" PRIu64 " empty_polls=%" PRIu64 " poll_ms=%" PRIu64
            " process_ms=%" PRIu64 " commit_ms=%" PRIu64
            " first_to_committed_ms=%" PRId64
            " records_per_s=%.0f peak_rss_kb=%ld",
            r->c.consumed, r->c.warmup, r->c.rejected, r->c.alerts,
            r->c.refunds, r->c.dead_letters, r->c.commits, r->c.aborts,
            r->c.rebuilds, r->c.reloads, r->c.reloads_failed, r->c.batches,
            r->c.empty_polls, r->c.poll_ms, r->c.process_ms, r->c.commit_ms,
            span, span ? (double)r->c.consumed * 1000.0 / (double)span : 0.0,
            peak_rss_kb());
}

int pg_cmd_run(int argc, char **argv)
{
        static run_t run; /* large (partition table): not on the stack */
        run_t *r = &run;
        memset(r, 0, sizeof(*r));
        pg_kconf_init(&r->conf);
        char err[1024];
        bool embedded = false;
        const char *config = NULL;
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"embedded", no_argument, NULL, 'E'},
            {"until-idle", required_argument, NULL, 'U'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        /* -X are applied after the file, whatever their position */
        const char *xs[256];
        int nx = 0;
        int ch;
        optind = 1;
        while ((ch = getopt_long(argc, argv, "c:X:h", opts, NULL)) != -1) {
                switch (ch) {
                case 'c':
                        config = optarg;
                        break;
                case 'X':
                        if (nx == 256) {
                                fprintf(stderr, "posguard run: too many -X\n");
                                return 64;
                        }
                        xs[nx++] = optarg;
                        break;
                case 'E':
                        embedded = true;
                        break;
                case 'U':
                        r->until_idle_ms = strtoll(optarg, NULL, 10);
                        break;
                case 'h':
                        run_usage(stdout);
                        return 0;
                default:
                        run_usage(stderr);
                        return 64;
                }
        }
        if (pg_kconf_build(&r->conf, config, xs, nx, err, sizeof(err))) {
                fprintf(stderr, "posguard run: %s\n", err);
                pg_kconf_free(&r->conf);
                return 78;
        }
        if (setup(r, embedded, err, sizeof(err))) {
                fprintf(stderr, "posguard run: %s\n", err);
                teardown(r);
                return 78;
        }

        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sa.sa_handler = on_hup;
        sigaction(SIGHUP, &sa, NULL);

        rd_kafka_topic_partition_list_t *sub =
            rd_kafka_topic_partition_list_new(r->n_in);
        for (int i = 0; i < r->n_in; i++)
                rd_kafka_topic_partition_list_add(sub, r->in_topics[i],
                                                  RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t serr = rd_kafka_subscribe(r->consumer, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (serr) {
                fprintf(stderr, "posguard run: subscribe: %s\n",
                        rd_kafka_err2str(serr));
                teardown(r);
                return 69;
        }
        txn_begin(r);
        r->last_commit = pg_mono_ms();
        r->last_message = pg_mono_ms();
        while (!stop_requested && !r->fatal) {
                /* a batch: wait for the first message only */
                r->batch_n = 0;
                int64_t t_poll = pg_mono_ms();
                rd_kafka_message_t *m = rd_kafka_consumer_poll(r->consumer, 50);
                while (m) {
                        r->batch[r->batch_n++] = m;
                        m = r->batch_n < BATCH_MAX && !r->rebuild && !r->fatal
                                ? rd_kafka_consumer_poll(r->consumer, 0)
                                : NULL;
                }
                /* clock reads: per batch (up to BATCH_MAX messages),
                 * never per message */
                r->now = pg_mono_ms();
                if (r->obs && r->batch_n)
                        r->polled_wall = pg_wall_ms();
                if (!r->batch_n)
                        r->c.empty_polls++;
                if (r->batch_n) {
                        r->c.poll_ms += (uint64_t)(r->now - t_poll);
                        r->c.batches++;
                        run_pending(r);
                        int64_t t_done = pg_mono_ms();
                        r->c.process_ms += (uint64_t)(t_done - r->now);
                        obs_observe(r, M_BATCH,
                                    (double)(t_done - r->now) / 1000.0);
                        r->now = t_done;
                }
                if (r->produce_failed)
                        txn_abort(r, "a produce failed");
                commit_poll(r);
                /* an abort (here, in a commit or in a rebalance callback)
                 * rebuilds before anything else is committed */
                if (r->rebuild && !r->fatal)
                        rebuild_all(r);
                /* outputs held during a slow commit are bounded: wait for
                 * it rather than hold more */
                if (r->committing && r->held_total > HELD_MAX_BYTES)
                        commit_wait(r);
                if (!r->committing && !r->rebuild &&
                    r->now - r->last_commit >= r->commit_interval_ms) {
                        txn_commit_mode(r, false);
                        r->last_commit = r->now;
                }
                if (!r->fatal)
                        maybe_reload(r);
                obs_refresh(r, false);
                if (r->until_idle_ms > 0 && caught_up(r)) {
                        LOG_INFO("event=caught_up idle_ms=%" PRId64,
                                 r->until_idle_ms);
                        break;
                }
        }
        int status = 0;
        if (r->fatal) {
                status = 2;
                if (r->obs)
                        pg_obs_failed(r->obs, "fatal error (see the log)");
        } else {
                /* SIGTERM / SIGINT: drain what was processed, commit, leave
                 * the group cleanly. */
                LOG_INFO("event=stopping reason=%s",
                         stop_requested ? "signal" : "caught_up");
                if (txn_commit(r) != TXN_OK)
                        status = 2;
                rd_kafka_consumer_close(r->consumer);
                if (txn_commit(r) != TXN_OK)
                        status = 2;
                rd_kafka_error_t *e =
                    rd_kafka_abort_transaction(r->producer, 30000);
                if (e)
                        rd_kafka_error_destroy(e);
        }
        summary(r);
        metrics_file(r);
        teardown(r);
        return status;
}
