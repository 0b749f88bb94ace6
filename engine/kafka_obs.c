/*
 * kafka_obs.c - the metric families of `posguard run` (see kafka_obs.h).
 *
 * Conventions (prometheus.io/docs/practices/naming): the posguard_ prefix,
 * base units (seconds, bytes; money in the currency's major unit, with the
 * currency as a label), counters end in _total. No label ever carries a
 * card, terminal or transaction id: the labels are rule ids, findings,
 * severities, modes, reasons, currencies, topics, partitions and table
 * names, all of bounded number.
 */
#include "kafka_obs.h"

#include "util_hash.h"
#include "util_text.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* seconds: 1 ms to 1 min */
static const double latency_buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                         0.05,  0.1,    0.25,  0.5,  1,
                                         2.5,   5,      10,    30,   60};
#define NB (int)(sizeof(latency_buckets) / sizeof(latency_buckets[0]))

const pg_mfamily_t pg_run_families[M__COUNT] = {
    [M_CONSUMED] = {"posguard_records_consumed_total",
                    "Input messages processed live (after warm-up), by topic.",
                    PG_M_COUNTER,
                    {"topic"}},
    [M_WARMUP] = {"posguard_records_warmup_total",
                  "Input messages re-read to rebuild state (outputs muted).",
                  PG_M_COUNTER,
                  {"topic"}},
    [M_REJECTED] = {"posguard_records_rejected_total",
                    "Input messages rejected to the dead-letter topic, by "
                    "reason.",
                    PG_M_COUNTER,
                    {"reason"}},
    [M_LATE] = {"posguard_records_late_total",
                "Records later than allowed_lateness (processed, counted).",
                PG_M_COUNTER},
    [M_DUPLICATES] = {"posguard_records_duplicate_total",
                      "Transport duplicates dropped (same txn_id within the "
                      "dedupe horizon).",
                      PG_M_COUNTER},
    [M_ALERTS] = {"posguard_alerts_total",
                  "Alerts published, by rule, finding, severity and mode "
                  "(shadow or enforce).",
                  PG_M_COUNTER,
                  {"rule", "finding", "severity", "mode"}},
    [M_REFUNDS] = {"posguard_refunds_total",
                   "Refund commands published, by rule, reason (duplicate or "
                   "overcharge) and currency.",
                   PG_M_COUNTER,
                   {"rule", "reason", "currency"}},
    [M_REFUND_AMOUNT] = {"posguard_refund_amount_total",
                         "Amount refunded by refund commands, in the "
                         "currency's major unit.",
                         PG_M_COUNTER,
                         {"rule", "reason", "currency"}},
    [M_BLOCKED] = {"posguard_refunds_blocked_total",
                   "Refunds owed but blocked by a guard rail (refund_blocked "
                   "alerts), by reason.",
                   PG_M_COUNTER,
                   {"rule", "reason", "currency"}},
    [M_BLOCKED_AMOUNT] = {"posguard_refund_blocked_amount_total",
                          "Amount of the blocked refunds, in the currency's "
                          "major unit.",
                          PG_M_COUNTER,
                          {"rule", "reason", "currency"}},
    [M_NOT_REFUNDED] = {"posguard_refund_decisions_not_owed_total",
                        "Refund decisions that found nothing owed: the "
                        "charge was cancelled, or already refunded in full.",
                        PG_M_COUNTER,
                        {"reason"}},
    [M_CAP_HITS] = {"posguard_state_cap_hits_total",
                    "New state refused by the memory cap (max.state.mb).",
                    PG_M_COUNTER},
    [M_DETECTION] = {"posguard_detection_latency_seconds",
                     "From the offending record's event time to its alert "
                     "(wall clock at detection).",
                     PG_M_HISTOGRAM,
                     {NULL},
                     latency_buckets,
                     NB},
    [M_CONSUME_DELAY] = {"posguard_consume_delay_seconds",
                         "From an input message's Kafka timestamp (its "
                         "producer's create time, or the broker's append "
                         "time where the topic says so) to the poll that "
                         "returned it.",
                         PG_M_HISTOGRAM,
                         {NULL},
                         latency_buckets,
                         NB},
    [M_BATCH] = {"posguard_batch_duration_seconds",
                 "Processing time of one polled batch of input messages.",
                 PG_M_HISTOGRAM,
                 {NULL},
                 latency_buckets,
                 NB},
    [M_COMMIT] = {"posguard_transaction_commit_duration_seconds",
                  "Duration of a Kafka transaction commit (offsets and "
                  "outputs).",
                  PG_M_HISTOGRAM,
                  {NULL},
                  latency_buckets,
                  NB},
    [M_TXNS] = {"posguard_transactions_total",
                "Kafka transactions ended, by outcome (committed or aborted).",
                PG_M_COUNTER,
                {"outcome"}},
    [M_REBUILDS] = {"posguard_state_rebuilds_total",
                    "Rebuilds of every partition's state from its committed "
                    "offset (after an abort or a rule reload).",
                    PG_M_COUNTER},
    [M_LAG] = {"posguard_consumer_lag_records",
               "Messages in the partition after the last one processed.",
               PG_M_GAUGE,
               {"topic", "partition"}},
    [M_ASSIGNED] = {"posguard_partitions_assigned",
                    "Input partitions assigned to this instance.", PG_M_GAUGE},
    [M_WARMING] = {"posguard_partitions_warming",
                   "Assigned partitions still rebuilding their state.",
                   PG_M_GAUGE},
    [M_READY] = {"posguard_ready",
                 "1 once assigned and every partition is warmed up (as "
                 "/readyz).",
                 PG_M_GAUGE},
    [M_STATE_ENTRIES] = {"posguard_state_entries",
                         "Entries in the engines' state, by table and rule, "
                         "all partitions.",
                         PG_M_GAUGE,
                         {"table", "rule"}},
    [M_STATE_BYTES] = {"posguard_state_bytes",
                       "Memory held by the engines' state, by table and "
                       "rule, all partitions.",
                       PG_M_GAUGE,
                       {"table", "rule"}},
    [M_STATE_CAP] = {"posguard_state_cap_bytes",
                     "The state memory cap of one partition's engine.",
                     PG_M_GAUGE},
    [M_HELD] = {"posguard_held_output_bytes",
                "Outputs held while a commit is in flight.", PG_M_GAUGE},
    [M_RULES_INFO] = {"posguard_rules_info",
                      "The rule set in force (value 1).",
                      PG_M_GAUGE,
                      {"version", "hash"}},
    [M_RELOADS] = {"posguard_rules_reloads_total",
                   "Rule reloads, by outcome (ok or failed).",
                   PG_M_COUNTER,
                   {"outcome"}},
    [M_START] = {"posguard_start_time_seconds",
                 "When this process started (Unix time).", PG_M_GAUGE},
    [M_TOP_ALERTS] = {"posguard_top_merchant_alerts",
                      "Committed alerts in the last 15 minutes of the 10 "
                      "merchants with most (rank 1: most).",
                      PG_M_GAUGE,
                      {"merchant", "rank"}},
    [M_TOP_TERMINALS] = {"posguard_top_merchant_alerting_terminals",
                         "Distinct terminals of those merchants with alerts "
                         "in the last 15 minutes (counted up to 16).",
                         PG_M_GAUGE,
                         {"merchant", "rank"}},
};

/* ---- the dashboard's stats event ---- */

typedef struct jbuf {
        char *p;
        size_t n, size;
} jbuf_t;

static void jput(jbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void jput(jbuf_t *b, const char *fmt, ...)
{
        if (b->n >= b->size)
                return;
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->size - b->n, fmt, ap);
        va_end(ap);
        b->n = k < 0 ? b->size : b->n + (size_t)k;
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void jstr(jbuf_t *b, const char *s)
{
        jput(b, "\"");
        char e[6];
        for (size_t i = 0, n = s ? strlen(s) : 0; i < n;) {
                size_t k = pg_json_esc(s, n, &i, e);
                jput(b, "%.*s", (int)k, e);
        }
        jput(b, "\"");
}

typedef struct sums {
        jbuf_t *b;
        int label; /* which label keys the object */
        int n;
        /* merge equal keys: small tables, kept in order of first sight */
        char keys[64][64];
        double v[64];
} sums_t;

static void sum_by(const char *const *labels, double v, void *arg)
{
        sums_t *s = arg;
        const char *k = labels[s->label] ? labels[s->label] : "";
        for (int i = 0; i < s->n; i++)
                if (!strcmp(s->keys[i], k)) {
                        s->v[i] += v;
                        return;
                }
        if (s->n == 64)
                return;
        snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", k);
        s->v[s->n++] = v;
}

/* "name":{key:value,...} of a family summed by one label. */
static void jsums(jbuf_t *b, const char *name, const pg_metrics_t *m, int fam,
                  int label)
{
        sums_t s = {.b = b, .label = label};
        pg_metrics_each(m, fam, sum_by, &s);
        jput(b, ",\"%s\":{", name);
        for (int i = 0; i < s.n; i++) {
                jput(b, "%s", i ? "," : "");
                jstr(b, s.keys[i]);
                jput(b, ":%.15g", s.v[i]);
        }
        jput(b, "}");
}

static void add_total(const char *const *labels, double v, void *arg)
{
        (void)labels;
        *(double *)arg += v;
}

static double total(const pg_metrics_t *m, int fam)
{
        double t = 0;
        pg_metrics_each(m, fam, add_total, &t);
        return t;
}

size_t pg_run_stats_json(char *buf, size_t size, const pg_metrics_t *m,
                         const pg_ruleset_t *rs, int64_t at_ms, bool ready,
                         const char *why)
{
        jbuf_t b = {buf, 0, size};
        jput(&b, "{\"at\":%" PRId64 ",\"ready\":%s,\"why\":", at_ms,
             ready ? "true" : "false");
        jstr(&b, why);
        jput(&b, ",\"consumed\":%.0f,\"rejected\":%.0f,\"lag\":%.0f",
             total(m, M_CONSUMED), total(m, M_REJECTED), total(m, M_LAG));
        jsums(&b, "alerts_by_finding", m, M_ALERTS, 1);
        jsums(&b, "alerts_by_mode", m, M_ALERTS, 3);
        jsums(&b, "refunds_by_reason", m, M_REFUNDS, 1);
        jsums(&b, "refunded_by_currency", m, M_REFUND_AMOUNT, 2);
        jsums(&b, "blocked_by_reason", m, M_BLOCKED, 1);
        jput(&b, ",\"rules\":{\"version\":");
        jstr(&b, rs->version);
        jput(&b, ",\"hash\":");
        jstr(&b, rs->hash);
        jput(&b, ",\"list\":[");
        for (int i = 0; i < rs->n_rules; i++) {
                const pg_rule_t *r = &rs->rules[i];
                jput(&b, "%s{\"id\":", i ? "," : "");
                jstr(&b, r->id);
                jput(&b, ",\"detector\":");
                jstr(&b, pg_detector_name(r->detector));
                jput(&b, ",\"mode\":");
                jstr(&b, pg_mode_name(r->mode));
                jput(&b, ",\"severity\":");
                jstr(&b, r->severity);
                jput(&b, "}");
        }
        jput(&b, "]}}");
        if (b.n >= size) /* cut: say so rather than send broken JSON */
                return (size_t)snprintf(buf, size,
                                        "{\"at\":%" PRId64
                                        ",\"error\":\"stats too large\"}",
                                        at_ms);
        return b.n;
}

/* ---- top merchants ---- */

#define TOPK_MERCHANTS 4096 /* tracked at once; the quietest goes first */
#define TOPK_TERMINALS 16   /* distinct terminals counted per merchant */

typedef struct tk_merchant {
        char id[65];
        int64_t minute[PG_TOPK_WINDOW_MIN]; /* which minute a slot counts */
        uint32_t count[PG_TOPK_WINDOW_MIN];
        uint64_t term[TOPK_TERMINALS];    /* terminal id hashes... */
        int64_t term_min[TOPK_TERMINALS]; /* ...and when last alerting */
} tk_merchant_t;

#define TOPK_INDEX (2 * TOPK_MERCHANTS) /* open addressing, half full */

struct pg_topk {
        tk_merchant_t *m;
        size_t n;
        uint16_t idx[TOPK_INDEX]; /* merchant index + 1; 0: empty */
};

static uint64_t id_hash(const char *s);

/* Where id is in the index, or the empty slot where it would go. */
static size_t tk_slot(const pg_topk_t *t, const char *id)
{
        size_t j = (size_t)id_hash(id) & (TOPK_INDEX - 1);
        while (t->idx[j] && strcmp(t->m[t->idx[j] - 1].id, id))
                j = (j + 1) & (TOPK_INDEX - 1);
        return j;
}

static void tk_reindex(pg_topk_t *t)
{
        memset(t->idx, 0, sizeof(t->idx));
        for (size_t i = 0; i < t->n; i++)
                t->idx[tk_slot(t, t->m[i].id)] = (uint16_t)(i + 1);
}

pg_topk_t *pg_topk_new(void)
{
        pg_topk_t *t = calloc(1, sizeof(*t));
        t->m = calloc(TOPK_MERCHANTS, sizeof(*t->m));
        if (!t->m) {
                free(t);
                return NULL;
        }
        return t;
}

void pg_topk_free(pg_topk_t *t)
{
        if (t) {
                free(t->m);
                free(t);
        }
}

static uint32_t window_total(const tk_merchant_t *m, int64_t minute)
{
        uint32_t s = 0;
        for (int i = 0; i < PG_TOPK_WINDOW_MIN; i++)
                if (minute - m->minute[i] < PG_TOPK_WINDOW_MIN &&
                    m->minute[i] <= minute)
                        s += m->count[i];
        return s;
}

static uint64_t id_hash(const char *s)
{
        return pg_hash64(s, strlen(s), 0) | 1;
}

void pg_topk_add(pg_topk_t *t, const char *merchant, const char *terminal,
                 int64_t now_ms)
{
        int64_t minute = now_ms / 60000;
        char id[sizeof(t->m[0].id)];
        snprintf(id, sizeof(id), "%s", merchant);
        size_t j = tk_slot(t, id);
        tk_merchant_t *m = t->idx[j] ? &t->m[t->idx[j] - 1] : NULL;
        if (!m) {
                bool evicted = t->n == TOPK_MERCHANTS;
                if (!evicted) {
                        m = &t->m[t->n++];
                } else { /* the quietest in the window makes room */
                        m = &t->m[0];
                        for (size_t i = 1; i < t->n; i++)
                                if (window_total(&t->m[i], minute) <
                                    window_total(m, minute))
                                        m = &t->m[i];
                }
                memset(m, 0, sizeof(*m));
                snprintf(m->id, sizeof(m->id), "%s", id);
                for (int i = 0; i < PG_TOPK_WINDOW_MIN; i++)
                        m->minute[i] = INT64_MIN / 2;
                if (evicted) /* rare: the index is rebuilt */
                        tk_reindex(t);
                else
                        t->idx[j] = (uint16_t)(m - t->m + 1);
        }
        int s = (int)(minute % PG_TOPK_WINDOW_MIN);
        if (m->minute[s] != minute) {
                m->minute[s] = minute;
                m->count[s] = 0;
        }
        m->count[s]++;
        uint64_t h = id_hash(terminal ? terminal : "");
        int slot = -1, oldest = 0;
        for (int i = 0; i < TOPK_TERMINALS; i++) {
                if (m->term[i] == h) {
                        slot = i;
                        break;
                }
                if (m->term_min[i] < m->term_min[oldest])
                        oldest = i;
        }
        if (slot < 0)
                slot = oldest;
        m->term[slot] = h;
        m->term_min[slot] = minute;
}

size_t pg_topk_top(const pg_topk_t *t, int64_t now_ms, pg_topk_row_t *out,
                   size_t n)
{
        int64_t minute = now_ms / 60000;
        size_t k = 0;
        for (size_t i = 0; i < t->n; i++) {
                const tk_merchant_t *m = &t->m[i];
                uint32_t a = window_total(m, minute);
                if (!a)
                        continue;
                uint32_t terms = 0;
                for (int j = 0; j < TOPK_TERMINALS; j++)
                        terms += m->term[j] &&
                                 minute - m->term_min[j] < PG_TOPK_WINDOW_MIN;
                /* insertion into out, largest first (ties: by id) */
                size_t at = k;
                while (at > 0 && (out[at - 1].alerts < a ||
                                  (out[at - 1].alerts == a &&
                                   strcmp(out[at - 1].merchant, m->id) > 0)))
                        at--;
                if (at >= n)
                        continue;
                if (k < n)
                        k++;
                memmove(&out[at + 1], &out[at], (k - 1 - at) * sizeof(*out));
                out[at] = (pg_topk_row_t){m->id, a, terms};
        }
        return k;
}
