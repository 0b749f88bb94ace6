/*
 * kafka_tools.c - `posguard produce` and `posguard watch` (kafka_run.h):
 * the traffic source and the readable output view of the demo and tests.
 *
 * produce reads JSON-lines records and publishes each to the records topic
 * keyed by merchant_id, with the Kafka timestamp set to the record's event
 * time (run's warm-up finds history by timestamp). In protobuf format a
 * valid record is re-encoded as protobuf; a line that is not a valid record
 * is published as it is, so bad input reaches the engine and its
 * dead-letter topic like it would in production.
 *
 * watch reads the alert and refund topics with read_committed from the
 * beginning, without committing anything, and prints one line per event
 * (or, with --json, the JSON form replay writes, for comparisons).
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "codec_json.h"
#include "codec_pb.h"
#include "codec_pb_view.h"
#include "engine.h"
#include "kafka_conf.h"
#include "kafka_run.h"
#include "source_file.h"
#include "util_time.h"

static volatile sig_atomic_t tools_stop;

static void tools_signal(int sig)
{
        (void)sig;
        tools_stop = 1;
}

static void sleep_ms(int64_t ms)
{
        if (ms <= 0)
                return;
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
}

/* --config FILE and -X key=value, shared by the tools. Returns the index
 * of the first other argument handled by the caller via getopt, or -1. */
typedef struct tool_args {
        pg_kconf_t conf;
        const char *input;
        const char *topic;
        int64_t rate;
        int64_t count;
        int64_t idle_exit_ms;
        bool json;
        bool pace_event;
        const char *partitions_out;
} tool_args_t;

static int parse_args(const char *cmd, int argc, char **argv, tool_args_t *a,
                      const char *usage)
{
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"input", required_argument, NULL, 'i'},
            {"topic", required_argument, NULL, 't'},
            {"rate", required_argument, NULL, 'r'},
            {"count", required_argument, NULL, 'n'},
            {"idle-exit", required_argument, NULL, 'I'},
            {"json", no_argument, NULL, 'J'},
            {"partitions-out", required_argument, NULL, 'P'},
            {"pace-event", no_argument, NULL, 'E'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        memset(a, 0, sizeof(*a));
        pg_kconf_init(&a->conf);
        a->idle_exit_ms = -1;
        const char *config = NULL;
        const char *xs[256];
        int nx = 0, ch;
        char err[512];
        optind = 1;
        while ((ch = getopt_long(argc, argv, "c:X:h", opts, NULL)) != -1) {
                switch (ch) {
                case 'c':
                        config = optarg;
                        break;
                case 'X':
                        if (nx < 256)
                                xs[nx++] = optarg;
                        break;
                case 'i':
                        a->input = optarg;
                        break;
                case 't':
                        a->topic = optarg;
                        break;
                case 'r':
                        a->rate = strtoll(optarg, NULL, 10);
                        break;
                case 'n':
                        a->count = strtoll(optarg, NULL, 10);
                        break;
                case 'I':
                        a->idle_exit_ms = strtoll(optarg, NULL, 10);
                        break;
                case 'J':
                        a->json = true;
                        break;
                case 'P':
                        a->partitions_out = optarg;
                        break;
                case 'E':
                        a->pace_event = true;
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 1;
                default:
                        fputs(usage, stderr);
                        return -1;
                }
        }
        if (pg_kconf_build(&a->conf, config, xs, nx, err, sizeof(err))) {
                fprintf(stderr, "posguard %s: %s\n", cmd, err);
                return -1;
        }
        return 0;
}

static const char *const formats[] = {"protobuf", "json", NULL};

/* ---------------------------------------------------------------------
 * produce
 * ------------------------------------------------------------------- */

static const char produce_usage[] =
    "usage: posguard produce --config FILE [-X key=value]... --input "
    "FILE|-\n"
    "                        [--topic T] [--rate RECORDS_PER_S]\n"
    "  publishes JSON-lines records to input.topic [pos.txn] in "
    "input.format\n"
    "  [protobuf], keyed by merchant_id, timestamped with event_time;\n"
    "  invalid lines are published as they are. --rate 0: as fast as "
    "possible.\n"
    "  --partitions-out FILE: write \"LINE_NO PARTITION\" for each "
    "delivered line\n"
    "  --pace-event: send each record when the wall clock reaches its\n"
    "    event_time (1 ms linger; a record more than a minute ahead goes at\n"
    "    once), for latency measurements on a stream generated to start in\n"
    "    the near future\n";

typedef struct produce_ctx {
        uint64_t failed;
        FILE *partitions; /* "LINE_NO PARTITION" per delivered message */
} produce_ctx_t;

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        produce_ctx_t *c = opaque;
        if (m->err) {
                c->failed++;
                fprintf(stderr, "posguard produce: delivery failed: %s\n",
                        rd_kafka_err2str(m->err));
        } else if (c->partitions) {
                fprintf(c->partitions, "%" PRIu64 " %" PRId32 "\n",
                        (uint64_t)(uintptr_t)m->_private, m->partition);
        }
}

int pg_cmd_produce(int argc, char **argv)
{
        tool_args_t a;
        int rc = parse_args("produce", argc, argv, &a, produce_usage);
        if (rc)
                return rc > 0 ? 0 : 64;
        char err[512];
        int fmt;
        if (!a.input) {
                fputs(produce_usage, stderr);
                pg_kconf_free(&a.conf);
                return 64;
        }
        if (pg_kconf_choice(&a.conf, "input.format", formats, 0, &fmt, err,
                            sizeof(err))) {
                fprintf(stderr, "posguard produce: %s\n", err);
                pg_kconf_free(&a.conf);
                return 78;
        }
        const char *topic =
            a.topic ? a.topic : pg_kconf_get(&a.conf, "input.topic", "pos.txn");
        produce_ctx_t ctx = {0, NULL};
        if (a.partitions_out) {
                ctx.partitions = fopen(a.partitions_out, "w");
                if (!ctx.partitions) {
                        perror(a.partitions_out);
                        pg_kconf_free(&a.conf);
                        return 73;
                }
        }
        rd_kafka_conf_t *pc =
            pg_kconf_rdkafka(&a.conf, "producer", err, sizeof(err));
        if (!pc) {
                fprintf(stderr, "posguard produce: %s\n", err);
                pg_kconf_free(&a.conf);
                return 78;
        }
        rd_kafka_conf_set(pc, "enable.idempotence", "true", NULL, 0);
        rd_kafka_conf_set(pc, "linger.ms", a.pace_event ? "1" : "5", NULL, 0);
        rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
        rd_kafka_conf_set_opaque(pc, &ctx);
        rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
        if (!p) {
                fprintf(stderr, "posguard produce: %s\n", err);
                pg_kconf_free(&a.conf);
                return 78;
        }
        pg_source_file_t *src = pg_source_file_open(a.input, err, sizeof(err));
        if (!src) {
                fprintf(stderr, "posguard produce: %s\n", err);
                rd_kafka_destroy(p);
                pg_kconf_free(&a.conf);
                return 66;
        }
        signal(SIGINT, tools_signal);
        signal(SIGTERM, tools_signal);
        static unsigned char buf[PG_PB_OUT_MAX * 2];
        const char *line;
        size_t len;
        bool too_long;
        uint64_t sent = 0, raw = 0;
        int64_t t0 = pg_mono_ms();
        int64_t max_lag = 0, lag_sum = 0, lag_n = 0; /* --pace-event */
        while (!tools_stop &&
               (rc = pg_source_file_next(src, &line, &len, &too_long, err,
                                         sizeof(err))) > 0) {
                pg_record_t rec;
                const char *field;
                char why[256];
                bool ok = !too_long &&
                          pg_codec_json_parse(line, len, &rec, &field, why,
                                              sizeof(why)) == PG_REJ_NONE;
                const void *val = line;
                size_t vlen = len;
                if (ok && fmt == 0) {
                        int n = pg_codec_pb_record(buf, sizeof(buf), &rec);
                        if (n < 0) {
                                fprintf(stderr, "posguard produce: record "
                                                "too large to encode\n");
                                break;
                        }
                        val = buf;
                        vlen = (size_t)n;
                }
                if (!ok)
                        raw++;
                /* pace: wait for the record's event time, unless it is
                 * more than a minute ahead (sent at once, not waited for) */
                if (ok && a.pace_event) {
                        int64_t ahead = rec.event_time - pg_wall_ms();
                        if (ahead <= 60000)
                                sleep_ms(ahead);
                        /* how far behind its event time a record went */
                        if (-ahead > max_lag && ahead >= -60000)
                                max_lag = -ahead;
                        lag_sum += ahead < 0 && ahead >= -60000 ? -ahead : 0;
                        lag_n++;
                }
                for (;;) {
                        rd_kafka_resp_err_t e = rd_kafka_producev(
                            p, RD_KAFKA_V_TOPIC(topic),
                            RD_KAFKA_V_KEY(ok ? rec.merchant_id.s : NULL,
                                           ok ? rec.merchant_id.len : 0),
                            RD_KAFKA_V_VALUE((void *)val, vlen),
                            RD_KAFKA_V_TIMESTAMP(ok ? rec.event_time : 0),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(sent + 1)),
                            RD_KAFKA_V_END);
                        if (!e)
                                break;
                        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                                rd_kafka_poll(p, 50);
                                continue;
                        }
                        fprintf(stderr, "posguard produce: %s\n",
                                rd_kafka_err2str(e));
                        ctx.failed++;
                        break;
                }
                sent++;
                rd_kafka_poll(p, 0);
                if (a.rate > 0) {
                        int64_t due = t0 + (int64_t)(sent * 1000 / a.rate);
                        sleep_ms(due - pg_mono_ms());
                }
        }
        if (rc < 0)
                fprintf(stderr, "posguard produce: %s\n", err);
        rd_kafka_flush(p, 60000);
        if (rd_kafka_outq_len(p) > 0) {
                fprintf(stderr,
                        "posguard produce: %d messages not "
                        "delivered\n",
                        rd_kafka_outq_len(p));
                ctx.failed++;
        }
        fprintf(stderr,
                "posguard produce: %" PRIu64 " messages to %s (%" PRIu64
                " invalid lines as they are), %" PRIu64 " failed\n",
                sent, topic, raw, ctx.failed);
        if (a.pace_event)
                fprintf(stderr,
                        "posguard produce: paced by event time: send lag "
                        "mean_ms=%.1f max_ms=%" PRId64 "\n",
                        lag_n ? (double)lag_sum / (double)lag_n : 0.0, max_lag);
        if (ctx.partitions)
                fclose(ctx.partitions);
        pg_source_file_close(src);
        rd_kafka_destroy(p);
        pg_kconf_free(&a.conf);
        return ctx.failed || rc < 0 ? 1 : 0;
}

/* ---------------------------------------------------------------------
 * watch
 * ------------------------------------------------------------------- */

static const char watch_usage[] =
    "usage: posguard watch --config FILE [-X key=value]... [--json]\n"
    "                      [--count N] [--idle-exit MS]\n"
    "  prints the committed alerts and refund commands of output.alerts\n"
    "  and output.refunds (in output.format) from the beginning, one line\n"
    "  per event, then follows; --json prints replay's JSON lines;\n"
    "  --count: stop after N events; --idle-exit: stop after MS without "
    "one.\n"
    "  --topic T: consume-only baseline: read T (read_committed), decode\n"
    "  nothing, report messages/s from the first to the last message.\n";

static void print_alert(const pg_alert_t *al, void *ctx)
{
        bool json = *(const bool *)ctx;
        if (json) {
                char buf[PG_JSON_OUT_MAX];
                int n = pg_codec_json_alert(buf, sizeof(buf), al);
                if (n > 0)
                        fwrite(buf, 1, (size_t)n, stdout);
                return;
        }
        char amt[48], t[40];
        pg_fmt_amount(amt, sizeof(amt), al->amount,
                      al->currency ? al->currency : "");
        pg_time_format(al->event_time, t, sizeof(t));
        printf("ALERT  %-24s %-8s %-7s %s  merchant %s terminal %s  %s  "
               "card %s  txn %s  %s\n",
               al->finding, al->severity, al->mode, t, al->merchant_id,
               al->terminal_id, amt,
               al->pan_masked && al->pan_masked[0] ? al->pan_masked : "-",
               al->n_txn_ids ? al->txn_ids[0] : "-", al->reason);
}

static void print_refund(const pg_refund_t *rf, void *ctx)
{
        bool json = *(const bool *)ctx;
        if (json) {
                char buf[PG_JSON_OUT_MAX];
                int n = pg_codec_json_refund(buf, sizeof(buf), rf);
                if (n > 0)
                        fwrite(buf, 1, (size_t)n, stdout);
                return;
        }
        char amt[48], t[40];
        pg_fmt_amount(amt, sizeof(amt), rf->amount,
                      rf->currency ? rf->currency : "");
        pg_time_format(rf->decided_at, t, sizeof(t));
        printf("REFUND %-24s %s  merchant %s  %s to %s  for txn %s  (%s)\n",
               rf->refund_id, t, rf->merchant_id, amt, rf->card_token,
               rf->txn_id, rf->reason);
}

int pg_cmd_watch(int argc, char **argv)
{
        tool_args_t a;
        int rc = parse_args("watch", argc, argv, &a, watch_usage);
        if (rc)
                return rc > 0 ? 0 : 64;
        char err[512];
        int fmt;
        if (pg_kconf_choice(&a.conf, "output.format", formats, 0, &fmt, err,
                            sizeof(err))) {
                fprintf(stderr, "posguard watch: %s\n", err);
                pg_kconf_free(&a.conf);
                return 78;
        }
        const char *topics[2] = {
            pg_kconf_get(&a.conf, "output.alerts", "pos.alerts"),
            pg_kconf_get(&a.conf, "output.refunds", "pos.refunds")};
        int ntopics = 2;
        if (a.topic) { /* consume-only baseline */
                topics[0] = a.topic;
                ntopics = 1;
        }
        rd_kafka_conf_t *cc =
            pg_kconf_rdkafka(&a.conf, "consumer", err, sizeof(err));
        if (!cc) {
                fprintf(stderr, "posguard watch: %s\n", err);
                pg_kconf_free(&a.conf);
                return 78;
        }
        char gid[64];
        snprintf(gid, sizeof(gid), "posguard-watch-%d-%lld", (int)getpid(),
                 (long long)time(NULL));
        rd_kafka_conf_set(cc, "group.id", gid, NULL, 0);
        rd_kafka_conf_set(cc, "enable.auto.commit", "false", NULL, 0);
        rd_kafka_conf_set(cc, "isolation.level", "read_committed", NULL, 0);
        rd_kafka_conf_set(cc, "auto.offset.reset", "earliest", NULL, 0);
        rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
        if (!c) {
                fprintf(stderr, "posguard watch: %s\n", err);
                pg_kconf_free(&a.conf);
                return 78;
        }
        rd_kafka_poll_set_consumer(c);
        rd_kafka_topic_partition_list_t *sub =
            rd_kafka_topic_partition_list_new(2);
        for (int i = 0; i < ntopics; i++)
                rd_kafka_topic_partition_list_add(sub, topics[i],
                                                  RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t se = rd_kafka_subscribe(c, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (se) {
                fprintf(stderr, "posguard watch: subscribe: %s\n",
                        rd_kafka_err2str(se));
                rd_kafka_destroy(c);
                pg_kconf_free(&a.conf);
                return 69;
        }
        signal(SIGINT, tools_signal);
        signal(SIGTERM, tools_signal);
        setvbuf(stdout, NULL, _IOLBF, 0);
        int64_t n = 0, alerts = 0, refunds = 0, undecodable = 0;
        int64_t last = pg_mono_ms(), first = 0;
        while (!tools_stop && (a.count <= 0 || n < a.count)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
                if (!m) {
                        if (a.idle_exit_ms >= 0 &&
                            pg_mono_ms() - last >= a.idle_exit_ms)
                                break;
                        continue;
                }
                if (m->err) {
                        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                                fprintf(stderr, "posguard watch: %s\n",
                                        rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        continue;
                }
                last = pg_mono_ms();
                if (!first)
                        first = last;
                if (a.topic) {
                        n++;
                        rd_kafka_message_destroy(m);
                        continue;
                }
                bool is_alert = !strcmp(rd_kafka_topic_name(m->rkt), topics[0]);
                int ok = 0;
                if (fmt == 1) {
                        /* JSON outputs are already replay's lines */
                        fwrite(m->payload, 1, m->len, stdout);
                        fputc('\n', stdout);
                        if (is_alert)
                                alerts++;
                        else
                                refunds++;
                } else if (is_alert) {
                        ok = pg_codec_pb_alert_view(m->payload, m->len,
                                                    print_alert, &a.json);
                        alerts += ok == 0;
                } else {
                        ok = pg_codec_pb_refund_view(m->payload, m->len,
                                                     print_refund, &a.json);
                        refunds += ok == 0;
                }
                if (ok != 0) {
                        undecodable++;
                        fprintf(stderr,
                                "posguard watch: %s [%d] offset %" PRId64
                                ": cannot decode\n",
                                rd_kafka_topic_name(m->rkt), m->partition,
                                m->offset);
                }
                n++;
                rd_kafka_message_destroy(m);
        }
        if (a.topic)
                fprintf(stderr,
                        "posguard watch: consumed=%" PRId64
                        " first_to_last_ms=%" PRId64 " records_per_s=%.0f\n",
                        n, last - first,
                        last > first
                            ? (double)n * 1000.0 / (double)(last - first)
                            : 0.0);
        else
                fprintf(stderr,
                        "posguard watch: %" PRId64 " alerts, %" PRId64
                        " refund commands%s\n",
                        alerts, refunds,
                        undecodable ? " (some undecodable)" : "");
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
        pg_kconf_free(&a.conf);
        return undecodable ? 1 : 0;
}
