/*
 * test_kafka_faults.c - `posguard run` under injected Kafka request errors,
 * against librdkafka's in-process mock cluster.
 *
 * The mock cluster is a Kafka protocol server inside this process: errors
 * can be pushed onto any request type. It cannot prove exactly-once (its
 * fetch ignores read_committed, so aborted outputs are visible here too);
 * the real-broker tests (tests/kafka_e2e.sh) do that. What this test
 * proves is the error handling: retriable errors are retried, abortable
 * ones abort and rebuild without losing an output, a broker that goes down
 * and comes back stalls and resumes, and a fatal error makes the command
 * fail instead of carrying on. In every case that completes, the set of
 * distinct alert and refund ids on the output topics equals the engine's
 * own outputs for the same records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec_json.h"
#include "engine.h"
#include "kafka_run.h"
#include "rules.h"

/* Kafka API keys (the protocol's numbers) */
enum {
        API_PRODUCE = 0,
        API_INIT_PRODUCER_ID = 22,
        API_ADD_OFFSETS_TO_TXN = 25,
        API_END_TXN = 26,
        API_TXN_OFFSET_COMMIT = 28
};

static const char rules_yaml[] =
    "version: faults\n"
    "rules:\n"
    "  - {id: retry, detector: retry_duplicate, severity: high,\n"
    "     action: refund, mode: enforce, params: {window: 15m}}\n"
    "  - {id: mismatch, detector: amount_mismatch, severity: high,\n"
    "     action: refund, mode: enforce, params: {tolerance: 0}}\n";

#define N_PAIRS 60
#define MAX_IDS 1024

typedef struct ids {
        char v[MAX_IDS][40];
        int n;
} ids_t;

static void ids_add(ids_t *s, const char *id)
{
        for (int i = 0; i < s->n; i++)
                if (!strcmp(s->v[i], id))
                        return;
        assert_true(s->n < MAX_IDS);
        snprintf(s->v[s->n++], sizeof(s->v[0]), "%s", id);
}

static int ids_cmp(const void *a, const void *b)
{
        return strcmp(a, b);
}

/* The test stream: N_PAIRS retransmitted charges (a retry duplicate each,
 * refunded), every fifth also keyed with ten times its register total, a
 * malformed line, and a closing record far later that lets every refund
 * decision fall due. One merchant: one partition, one engine. */
static int make_stream(char lines[][512], int max)
{
        int n = 0;
        long long t0 = 1763805600000LL;
        for (int i = 0; i < N_PAIRS && n + 2 < max; i++) {
                for (int k = 0; k < 2; k++) {
                        long long amount = 1000 + i;
                        snprintf(
                            lines[n++], 512,
                            "{\"txn_id\":\"T%d-%d\",\"kind\":\"purchase\","
                            "\"status\":\"approved\",\"merchant_id\":\"M1\","
                            "\"terminal_id\":\"TID%d\",\"stan\":\"%06d\","
                            "\"rrn\":\"R%d-%d\",\"card_token\":\"tok%d\","
                            "\"amount\":%lld,\"currency\":\"EUR\","
                            "\"event_time\":%lld%s}",
                            i, k, i % 7, i, i, k, i, amount,
                            t0 + i * 60000LL + k * 3000,
                            i % 5 == 0 && k == 0 ? ",\"expected_amount\":100"
                                                 : "");
                }
        }
        snprintf(lines[n++], 512, "{\"txn_id\": broken");
        snprintf(lines[n++], 512,
                 "{\"txn_id\":\"close\",\"kind\":\"purchase\",\"status\":"
                 "\"approved\",\"merchant_id\":\"M1\",\"terminal_id\":\"TZ\","
                 "\"stan\":\"999999\",\"rrn\":\"RZ\",\"card_token\":\"tokZ\","
                 "\"amount\":1,\"currency\":\"EUR\",\"event_time\":%lld}",
                 t0 + 86400000LL * 3);
        return n;
}

static char stream[2 * N_PAIRS + 8][512];
static int n_stream;
static char rules_path[256];

/* What the engine itself decides on the stream. */
static void expect_alert(void *o, const pg_alert_t *a)
{
        ids_add(o, a->alert_id);
}

static void expect_refund(void *o, const pg_refund_t *r)
{
        ids_add(o, r->refund_id);
}

static void expected_ids(ids_t *out)
{
        char err[256];
        pg_ruleset_t *rs = pg_rules_load_file(rules_path, err, sizeof(err));
        assert_non_null(rs);
        pg_sink_t sink = {expect_alert, expect_refund, out};
        pg_engine_conf_t conf = {0};
        conf.event_clock = true;
        pg_engine_t *e = pg_engine_new(rs, &conf, &sink, err, sizeof(err));
        assert_non_null(e);
        for (int i = 0; i < n_stream; i++) {
                pg_record_t rec;
                const char *f;
                char why[128];
                if (pg_codec_json_parse(stream[i], strlen(stream[i]), &rec, &f,
                                        why, sizeof(why)) == PG_REJ_NONE)
                        pg_engine_push(e, &rec);
        }
        /* no flush: posguard run never flushes; the closing record moved
         * event time past every decision */
        pg_engine_free(e);
        pg_rules_free(rs);
}

typedef struct cluster {
        rd_kafka_t *host;
        rd_kafka_mock_cluster_t *mc;
        const char *bootstrap;
} cluster_t;

static void cluster_up(cluster_t *c)
{
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "log_level", "0", NULL, 0);
        c->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        assert_non_null(c->host);
        c->mc = rd_kafka_mock_cluster_new(c->host, 1);
        assert_non_null(c->mc);
        c->bootstrap = rd_kafka_mock_cluster_bootstraps(c->mc);
        assert_int_equal(rd_kafka_mock_topic_create(c->mc, "pos.txn", 1, 1), 0);
        const char *outs[] = {"pos.alerts", "pos.refunds", "pos.dlq"};
        for (int i = 0; i < 3; i++)
                assert_int_equal(
                    rd_kafka_mock_topic_create(c->mc, outs[i], 1, 1), 0);
        /* load the records */
        conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstrap, NULL, 0);
        rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        assert_non_null(p);
        for (int i = 0; i < n_stream; i++)
                assert_int_equal(
                    rd_kafka_producev(
                        p, RD_KAFKA_V_TOPIC("pos.txn"), RD_KAFKA_V_KEY("M1", 2),
                        RD_KAFKA_V_VALUE(stream[i], strlen(stream[i])),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END),
                    0);
        assert_int_equal(rd_kafka_flush(p, 10000), 0);
        rd_kafka_destroy(p);
}

static void cluster_down(cluster_t *c)
{
        rd_kafka_mock_cluster_destroy(c->mc);
        rd_kafka_destroy(c->host);
}

/* posguard run on the cluster until it has read everything. */
static char metrics_path[256];
static void abortable_offset_commit(rd_kafka_mock_cluster_t *mc);

static int run_posguard(const cluster_t *c, const char *txid)
{
        char bs[256], rules[300], tx[128], mf[300];
        snprintf(mf, sizeof(mf), "metrics.file=%s", metrics_path);
        snprintf(bs, sizeof(bs), "kafka.bootstrap.servers=%s", c->bootstrap);
        snprintf(rules, sizeof(rules), "rules=%s", rules_path);
        snprintf(tx, sizeof(tx), "transactional.id=%s", txid);
        char *argv[] = {"run",
                        "-X",
                        bs,
                        "-X",
                        rules,
                        "-X",
                        tx,
                        "-X",
                        "input.format=json",
                        "-X",
                        "output.format=json",
                        "-X",
                        "clock=event",
                        "-X",
                        "http.listen=127.0.0.1:0",
                        "-X",
                        mf,
                        "-X",
                        "commit.interval.ms=50",
                        "-X",
                        "kafka.log_level=0",
                        "-X",
                        "kafka.reconnect.backoff.max.ms=500",
                        "-X",
                        "kafka.consumer.session.timeout.ms=6000",
                        "--until-idle",
                        "1500",
                        NULL};
        return pg_cmd_run((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv);
}

/* Distinct ids on the output topics (aborted messages included: the mock
 * ignores read_committed). */
static void output_ids(const cluster_t *c, ids_t *out, int *dlq)
{
        char err[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstrap, NULL, 0);
        rd_kafka_conf_set(conf, "group.id", "reader", NULL, 0);
        rd_kafka_conf_set(conf, "log_level", "0", NULL, 0);
        rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        assert_non_null(k);
        rd_kafka_topic_partition_list_t *a =
            rd_kafka_topic_partition_list_new(3);
        const char *topics[] = {"pos.alerts", "pos.refunds", "pos.dlq"};
        for (int i = 0; i < 3; i++)
                rd_kafka_topic_partition_list_add(a, topics[i], 0)->offset =
                    RD_KAFKA_OFFSET_BEGINNING;
        assert_int_equal(rd_kafka_assign(k, a), 0);
        rd_kafka_topic_partition_list_destroy(a);
        *dlq = 0;
        int idle = 0;
        while (idle < 20) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(k, 100);
                if (!m) {
                        idle++;
                        continue;
                }
                idle = 0;
                if (!m->err) {
                        const char *tn = rd_kafka_topic_name(m->rkt);
                        if (!strcmp(tn, "pos.dlq")) {
                                (*dlq)++;
                        } else {
                                const char *key = strcmp(tn, "pos.alerts")
                                                      ? "\"refund_id\":\""
                                                      : "\"alert_id\":\"";
                                char buf[4096];
                                size_t n = m->len < sizeof(buf) - 1
                                               ? m->len
                                               : sizeof(buf) - 1;
                                memcpy(buf, m->payload, n);
                                buf[n] = '\0';
                                char *p = strstr(buf, key);
                                assert_non_null(p);
                                p += strlen(key);
                                char *q = strchr(p, '"');
                                assert_non_null(q);
                                *q = '\0';
                                ids_add(out, p);
                        }
                }
                rd_kafka_message_destroy(m);
        }
        rd_kafka_consumer_close(k);
        rd_kafka_destroy(k);
}

static void assert_same(ids_t *want, ids_t *got)
{
        qsort(want->v, (size_t)want->n, sizeof(want->v[0]), ids_cmp);
        qsort(got->v, (size_t)got->n, sizeof(got->v[0]), ids_cmp);
        if (want->n != got->n)
                fail_msg("expected %d distinct outputs, found %d", want->n,
                         got->n);
        for (int i = 0; i < want->n; i++)
                assert_string_equal(want->v[i], got->v[i]);
}

/* The sum of a family's samples whose line starts with prefix, in the
 * metrics file the run wrote at exit. */
static double metric_sum(const char *prefix)
{
        FILE *f = fopen(metrics_path, "r");
        assert_non_null(f);
        char line[1024];
        double sum = 0;
        while (fgets(line, sizeof(line), f))
                if (!strncmp(line, prefix, strlen(prefix)))
                        sum += strtod(strrchr(line, ' ') + 1, NULL);
        fclose(f);
        return sum;
}

/* The run's metrics count what it committed: every alert and refund once,
 * however many transactions aborted and were done again. */
static void assert_metrics(const ids_t *want, bool aborted)
{
        int alerts = 0, refunds = 0;
        for (int i = 0; i < want->n; i++) {
                alerts += !strncmp(want->v[i], "al-", 3);
                refunds += !strncmp(want->v[i], "rf-", 3);
        }
        assert_int_equal((int)metric_sum("posguard_alerts_total{"), alerts);
        assert_int_equal((int)metric_sum("posguard_refunds_total{"), refunds);
        double ab =
            metric_sum("posguard_transactions_total{outcome=\"aborted\"}");
        if (aborted)
                assert_true(ab >= 1);
        assert_true(
            metric_sum("posguard_transactions_total{outcome=\"committed\"}") >=
            1);
}

/* Run with errors pushed by inject, then compare. */
static void run_case(void (*inject)(rd_kafka_mock_cluster_t *), int want_rc)
{
        cluster_t c;
        cluster_up(&c);
        if (inject)
                inject(c.mc);
        snprintf(metrics_path, sizeof(metrics_path), "/tmp/pg-faults-%d.prom",
                 (int)getpid());
        remove(metrics_path);
        int rc = run_posguard(&c, "faults-1");
        assert_int_equal(rc, want_rc);
        if (want_rc == 0) {
                ids_t *want = calloc(1, sizeof(*want));
                ids_t *got = calloc(1, sizeof(*got));
                expected_ids(want);
                assert_true(want->n > N_PAIRS); /* alerts and refunds */
                int dlq;
                output_ids(&c, got, &dlq);
                assert_same(want, got);
                assert_true(dlq >= 1);
                assert_metrics(want, inject == abortable_offset_commit);
                free(want);
                free(got);
        }
        cluster_down(&c);
}

static void no_faults(void **state)
{
        run_case(NULL, 0);
}

static void retriable_commit_errors(rd_kafka_mock_cluster_t *mc)
{
        rd_kafka_mock_push_request_errors(
            mc, API_END_TXN, 4, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
            RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
        rd_kafka_mock_push_request_errors(
            mc, API_ADD_OFFSETS_TO_TXN, 2,
            RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
            RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS);
        rd_kafka_mock_push_request_errors(
            mc, API_PRODUCE, 3, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
}

static void retriable_errors(void **state)
{
        run_case(retriable_commit_errors, 0);
}

static void abortable_offset_commit(rd_kafka_mock_cluster_t *mc)
{
        /* the offsets of a transaction refused: it must abort, rebuild from
         * the committed offsets and produce the outputs again */
        rd_kafka_mock_push_request_errors(
            mc, API_TXN_OFFSET_COMMIT, 1,
            RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
}

static void abortable_errors(void **state)
{
        run_case(abortable_offset_commit, 0);
}

static void fenced_at_start(rd_kafka_mock_cluster_t *mc)
{
        rd_kafka_mock_push_request_errors(
            mc, API_INIT_PRODUCER_ID, 1,
            RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
}

static void fatal_error_stops_the_run(void **state)
{
        /* refused at init_transactions: the command cannot run */
        run_case(fenced_at_start, 78);
}

static void sleep_ms(long ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
}

/* The broker goes away for two seconds while records are processed. */
static void *bounce(void *arg)
{
        rd_kafka_mock_cluster_t *mc = arg;
        sleep_ms(300);
        rd_kafka_mock_broker_set_down(mc, 1);
        sleep_ms(2000);
        rd_kafka_mock_broker_set_up(mc, 1);
        return NULL;
}

static void broker_down_and_up(void **state)
{
        cluster_t c;
        cluster_up(&c);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, bounce, c.mc), 0);
        int rc = run_posguard(&c, "faults-2");
        pthread_join(th, NULL);
        assert_int_equal(rc, 0);
        ids_t *want = calloc(1, sizeof(*want));
        ids_t *got = calloc(1, sizeof(*got));
        expected_ids(want);
        int dlq;
        output_ids(&c, got, &dlq);
        assert_same(want, got);
        free(want);
        free(got);
        cluster_down(&c);
}

static int setup(void **state)
{
        n_stream =
            make_stream(stream, (int)(sizeof(stream) / sizeof(stream[0])));
        snprintf(rules_path, sizeof(rules_path), "/tmp/pg-faults-%d.yaml",
                 (int)getpid());
        FILE *f = fopen(rules_path, "w");
        assert_non_null(f);
        fputs(rules_yaml, f);
        fclose(f);
        return 0;
}

static int teardown(void **state)
{
        unlink(rules_path);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(no_faults),
            cmocka_unit_test(retriable_errors),
            cmocka_unit_test(abortable_errors),
            cmocka_unit_test(fatal_error_stops_the_run),
            cmocka_unit_test(broker_down_and_up),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
