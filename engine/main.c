/*
 * main.c - the posguard command line.
 *
 *   posguard replay --rules FILE --input FILE|- [options]
 *   posguard check FILE...        (validate rule files)
 *   posguard version
 *
 * replay reads JSON-lines records, runs the engine, prints alerts and
 * refund commands as JSON lines on stdout and a summary on stderr. Its exit
 * status is non-zero only when it cannot run (bad rule file, unreadable
 * input, bad option); a bad record is rejected, counted and goes on.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cmd_rules.h"
#include "codec_json.h"
#include "engine.h"
#include "kafka_obs.h"
#include "kafka_run.h"
#include "pipeline.h"
#include "replay.h"
#include "rules.h"

#define PG_VERSION "0.1.0"

static void usage(FILE *f)
{
        fputs("usage:\n"
              "  posguard replay --rules FILE --input FILE|- [options]\n"
              "  posguard check FILE...\n"
              "  posguard test [--rules FILE] DIR...\n"
              "  posguard backtest --rules NEW [--baseline OLD] --input FILE "
              "[--json F]\n"
              "  posguard run --config FILE [-X key=value]... [--embedded]\n"
              "  posguard produce --config FILE --input FILE|- [--rate N]\n"
              "  posguard watch --config FILE [--json] [--idle-exit MS]\n"
              "  posguard metrics [--json]   the metrics `run` exports\n"
              "  posguard version\n"
              "  (posguard COMMAND --help for each command's options)\n"
              "\n"
              "replay options:\n"
              "  --dead-letter FILE        write rejected records (JSON "
              "lines, with reasons)\n"
              "  --stats FILE              write the run's counters as JSON\n"
              "  --clock wall|event        detected_at from the wall clock "
              "(default)\n"
              "                            or the event clock (byte-stable "
              "outputs)\n"
              "  --refund-cap-merchant N   max refunded minor units per "
              "merchant,\n"
              "                            currency and UTC hour (default "
              "100000000)\n"
              "  --refund-cap-global N     max refunded minor units per "
              "currency and\n"
              "                            UTC hour (default 1000000000)\n"
              "  --kill-switch             no refund commands: every refund "
              "becomes a\n"
              "                            refund_blocked alert\n"
              "  --max-state-mb N          state memory cap (default 1024)\n"
              "  --expect-records N        size the state for N live records "
              "from the\n"
              "                            start (default 0: tables grow as "
              "they fill)\n"
              "  --partitions P            route records to P engines by "
              "merchant_id,\n"
              "                            as a P-partition topic would "
              "(default 1)\n"
              "  --threads N               worker threads for the P engines "
              "(default:\n"
              "                            cores, at most P); outputs do not "
              "depend on N\n"
              "  --quiet                   no summary on stderr\n",
              f);
}

static void write_out(void *opaque, const char *buf, size_t len)
{
        fwrite(buf, 1, len, opaque);
}

/* replay drives a pipeline; outputs in flight are written every SYNC_EVERY
 * records so that they never pile up in memory */
#define SYNC_EVERY 65536

typedef struct replay_ctx {
        pg_pipeline_t *pl;
        uint64_t n;
} replay_ctx_t;

static void replay_push(void *opaque, const pg_record_t *rec)
{
        replay_ctx_t *rx = opaque;
        pg_pipeline_push(rx->pl, rec);
        if (++rx->n % SYNC_EVERY == 0)
                pg_pipeline_sync(rx->pl);
}

static int parse_i64(const char *s, int64_t *v)
{
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (errno || end == s || *end || x < 0)
                return -1;
        *v = x;
        return 0;
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef pg_replay_counts_t run_counts_t;

static void write_stats(FILE *f, const run_counts_t *c,
                        const pg_engine_stats_t *st, double secs, long rss_kb)
{
        fprintf(f,
                "{\"lines\":%" PRIu64 ",\"rejected\":%" PRIu64
                ",\"rejected_by_reason\":{",
                c->lines, c->rejected);
        int first = 1;
        for (int i = 1; i < PG_REJ__COUNT; i++) {
                if (!c->by_reason[i])
                        continue;
                fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",",
                        pg_reject_name((pg_reject_t)i), c->by_reason[i]);
                first = 0;
        }
        fprintf(f,
                "},\"records\":%" PRIu64 ",\"duplicates\":%" PRIu64
                ",\"late\":%" PRIu64 ",\"alerts\":{",
                st->records, st->duplicates, st->late);
        first = 1;
        for (int i = 0; i < PG_FIND__COUNT; i++) {
                if (!st->alerts[i])
                        continue;
                fprintf(f, "%s\"%s\":%" PRIu64, first ? "" : ",",
                        pg_finding_name((pg_finding_t)i), st->alerts[i]);
                first = 0;
        }
        fprintf(f,
                "},\"alerts_shadow\":%" PRIu64 ",\"alerts_suppressed\":%" PRIu64
                ",\"refunds\":%" PRIu64 ",\"refunds_duplicate\":%" PRIu64
                ",\"refunds_overcharge\":%" PRIu64 ",\"refund_amount\":%" PRIu64
                ",\"refunds_cancelled\":%" PRIu64
                ",\"refunds_nothing_left\":%" PRIu64
                ",\"refunds_blocked\":%" PRIu64 ",\"state_full\":%" PRIu64
                ",\"chain_truncated\":%" PRIu64 ",\"rrn_conflicts\":%" PRIu64
                ",\"state_bytes_peak\":%zu,\"seconds\":%.3f,"
                "\"records_per_second\":%.0f,\"peak_rss_kb\":%ld}\n",
                st->alerts_shadow, st->alerts_suppressed,
                st->refunds_duplicate + st->refunds_overcharge,
                st->refunds_duplicate, st->refunds_overcharge,
                st->refund_amount, st->refunds_cancelled,
                st->refunds_nothing_left, st->refunds_blocked, st->state_full,
                st->chain_truncated, st->rrn_conflicts, st->state_bytes_peak,
                secs, secs > 0 ? (double)c->lines / secs : 0.0, rss_kb);
}

static void print_summary(FILE *f, const run_counts_t *c,
                          const pg_engine_stats_t *st, double secs, long rss_kb)
{
        fprintf(f,
                "posguard replay: %" PRIu64 " lines, %" PRIu64
                " records accepted, %" PRIu64 " rejected, %" PRIu64
                " transport duplicates dropped, %" PRIu64 " late\n",
                c->lines, st->records, c->rejected, st->duplicates, st->late);
        for (int i = 1; i < PG_REJ__COUNT; i++)
                if (c->by_reason[i])
                        fprintf(f, "  rejected %-22s %" PRIu64 "\n",
                                pg_reject_name((pg_reject_t)i),
                                c->by_reason[i]);
        for (int i = 0; i < PG_FIND__COUNT; i++)
                if (st->alerts[i])
                        fprintf(f, "  alerts   %-22s %" PRIu64 "\n",
                                pg_finding_name((pg_finding_t)i),
                                st->alerts[i]);
        fprintf(f,
                "  refunds  duplicate %" PRIu64 ", overcharge %" PRIu64
                ", total %" PRIu64 " minor units; not sent: %" PRIu64
                " cancelled, %" PRIu64 " already refunded, %" PRIu64
                " blocked\n",
                st->refunds_duplicate, st->refunds_overcharge,
                st->refund_amount, st->refunds_cancelled,
                st->refunds_nothing_left, st->refunds_blocked);
        if (st->state_full || st->chain_truncated || st->rrn_conflicts)
                fprintf(f,
                        "  WARNING  state cap refusals %" PRIu64
                        ", truncated walks %" PRIu64 ", rrn conflicts %" PRIu64
                        "\n",
                        st->state_full, st->chain_truncated, st->rrn_conflicts);
        fprintf(f,
                "  %.3f s, %.0f lines/s, state peak %.1f MiB, peak RSS %.1f "
                "MiB\n",
                secs, secs > 0 ? (double)c->lines / secs : 0.0,
                (double)st->state_bytes_peak / 1048576.0,
                (double)rss_kb / 1024.0);
}

static int cmd_replay(int argc, char **argv)
{
        static const struct option opts[] = {
            {"rules", required_argument, 0, 'r'},
            {"input", required_argument, 0, 'i'},
            {"dead-letter", required_argument, 0, 'd'},
            {"stats", required_argument, 0, 's'},
            {"clock", required_argument, 0, 'c'},
            {"refund-cap-merchant", required_argument, 0, 'm'},
            {"refund-cap-global", required_argument, 0, 'g'},
            {"kill-switch", no_argument, 0, 'k'},
            {"max-state-mb", required_argument, 0, 'x'},
            {"expect-records", required_argument, 0, 'E'},
            {"quiet", no_argument, 0, 'q'},
            {"partitions", required_argument, 0, 'P'},
            {"threads", required_argument, 0, 'T'},
            {"help", no_argument, 0, 'h'},
            {0, 0, 0, 0}};
        const char *rules_path = NULL, *input = NULL, *dlq_path = NULL,
                   *stats_path = NULL;
        int partitions = 1, threads = 0;
        pg_engine_conf_t conf;
        memset(&conf, 0, sizeof(conf));
        bool quiet = false;
        int c;
        int64_t v;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'r':
                        rules_path = optarg;
                        break;
                case 'i':
                        input = optarg;
                        break;
                case 'd':
                        dlq_path = optarg;
                        break;
                case 's':
                        stats_path = optarg;
                        break;
                case 'c':
                        if (!strcmp(optarg, "event"))
                                conf.event_clock = true;
                        else if (strcmp(optarg, "wall")) {
                                fprintf(stderr, "posguard: --clock must be "
                                                "wall or event\n");
                                return 2;
                        }
                        break;
                case 'm':
                case 'g':
                case 'x':
                        if (parse_i64(optarg, &v) < 0 || v == 0) {
                                fprintf(stderr,
                                        "posguard: --%s needs a positive "
                                        "integer, got '%s'\n",
                                        c == 'm'   ? "refund-cap-merchant"
                                        : c == 'g' ? "refund-cap-global"
                                                   : "max-state-mb",
                                        optarg);
                                return 2;
                        }
                        if (c == 'm')
                                conf.refund_cap_merchant = v;
                        else if (c == 'g')
                                conf.refund_cap_global = v;
                        else
                                conf.max_state_bytes = (size_t)v << 20;
                        break;
                case 'k':
                        conf.kill_switch = true;
                        break;
                case 'E':
                        if (parse_i64(optarg, &v) < 0 || v < 0 ||
                            (uint64_t)v > PG_MAX_EXPECT_RECORDS) {
                                fprintf(stderr,
                                        "posguard: --expect-records needs an "
                                        "integer from 0 to %zu, got '%s'\n",
                                        PG_MAX_EXPECT_RECORDS, optarg);
                                return 2;
                        }
                        conf.expect_records = (size_t)v;
                        break;
                case 'P':
                case 'T':
                        /* the range is the pipeline's to check and report */
                        if (parse_i64(optarg, &v) < 0 || v < 1 || v > 1 << 20) {
                                fprintf(stderr,
                                        "posguard: --%s needs a positive "
                                        "integer, got '%s'\n",
                                        c == 'P' ? "partitions" : "threads",
                                        optarg);
                                return 2;
                        }
                        if (c == 'P')
                                partitions = (int)v;
                        else
                                threads = (int)v;
                        break;
                case 'q':
                        quiet = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (!rules_path || !input || optind != argc) {
                usage(stderr);
                return 2;
        }
        char err[512];
        pg_ruleset_t *rs = pg_rules_load_file(rules_path, err, sizeof(err));
        if (!rs) {
                fprintf(stderr, "posguard: %s\n", err);
                return 1;
        }
        FILE *dlq = NULL;
        if (dlq_path && !(dlq = fopen(dlq_path, "w"))) {
                fprintf(stderr, "posguard: cannot write %s: %s\n", dlq_path,
                        strerror(errno));
                pg_rules_free(rs);
                return 1;
        }
        static char obuf[1 << 16];
        setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
        if (!threads) {
                long cores = sysconf(_SC_NPROCESSORS_ONLN);
                threads = cores > 0 ? (int)cores : 1;
        }
        pg_pipeline_conf_t pc = {partitions,          threads,
                                 pg_codec_json_alert, pg_codec_json_refund,
                                 write_out,           stdout};
        replay_ctx_t rx = {0};
        rx.pl = pg_pipeline_new(rs, &conf, &pc, err, sizeof(err));
        if (!rx.pl) {
                fprintf(stderr, "posguard: %s\n", err);
                return 1;
        }

        run_counts_t counts;
        memset(&counts, 0, sizeof(counts));
        double t0 = now_s();
        int rc = 0;
        if (pg_replay_feed_fn(replay_push, &rx, input, dlq, &counts, err,
                              sizeof(err))) {
                fprintf(stderr, "posguard: cannot read input: %s\n", err);
                rc = 1;
        }
        pg_pipeline_flush(rx.pl);
        fflush(stdout);
        double secs = now_s() - t0;
        if (pg_pipeline_encode_errors(rx.pl)) {
                fprintf(stderr,
                        "posguard: %" PRIu64 " outputs could not be "
                        "encoded\n",
                        pg_pipeline_encode_errors(rx.pl));
                rc = 1;
        }
        pg_engine_stats_t st;
        pg_pipeline_stats(rx.pl, &st);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        if (!quiet)
                print_summary(stderr, &counts, &st, secs, ru.ru_maxrss);
        if (stats_path) {
                FILE *sf = fopen(stats_path, "w");
                if (!sf) {
                        fprintf(stderr, "posguard: cannot write %s: %s\n",
                                stats_path, strerror(errno));
                        rc = 1;
                } else {
                        write_stats(sf, &counts, &st, secs, ru.ru_maxrss);
                        fclose(sf);
                }
        }
        if (dlq)
                fclose(dlq);
        pg_pipeline_free(rx.pl);
        pg_rules_free(rs);
        return rc;
}

static int cmd_check(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        int bad = 0;
        for (int i = 1; i < argc; i++) {
                char err[8192];
                pg_ruleset_t *rs =
                    pg_rules_load_file(argv[i], err, sizeof(err));
                if (!rs) {
                        fprintf(stderr, "%s\n", err);
                        bad = 1;
                        continue;
                }
                printf("%s: version %s, %d active rules\n", argv[i],
                       rs->version, rs->n_rules);
                for (int j = 0; j < rs->n_rules; j++) {
                        const pg_rule_t *r = &rs->rules[j];
                        printf("  %-24s %-16s %-8s %-7s %-8s%s%s%s%s%s\n",
                               r->id, pg_detector_name(r->detector),
                               pg_mode_name(r->mode),
                               r->action == PG_ACTION_REFUND ? "refund"
                                                             : "alert",
                               r->severity, r->filter ? " filtered" : "",
                               r->owner[0] ? " owner=" : "", r->owner,
                               r->tags[0] ? " tags=" : "", r->tags);
                }
                pg_rules_free(rs);
        }
        return bad;
}

/* The metric families of `run`: for operators, and for the dashboards'
 * check (dashboards/check.py). */
static int cmd_metrics(int argc, char **argv)
{
        bool json = argc > 1 && !strcmp(argv[1], "--json");
        static const char *const types[] = {"counter", "gauge", "histogram"};
        if (json)
                printf("[");
        for (int i = 0; i < M__COUNT; i++) {
                const pg_mfamily_t *f = &pg_run_families[i];
                if (!json) {
                        printf("%-48s %-9s", f->name, types[f->type]);
                        for (int k = 0; k < PG_M_MAX_LABELS && f->labels[k];
                             k++)
                                printf("%s%s", k ? "," : " {", f->labels[k]);
                        printf("%s\n    %s\n", f->labels[0] ? "}" : "",
                               f->help);
                        continue;
                }
                printf("%s{\"name\":\"%s\",\"type\":\"%s\",\"labels\":[",
                       i ? "," : "", f->name, types[f->type]);
                for (int k = 0; k < PG_M_MAX_LABELS && f->labels[k]; k++)
                        printf("%s\"%s\"", k ? "," : "", f->labels[k]);
                printf("],\"help\":\"%s\"}", f->help);
        }
        if (json)
                printf("]\n");
        return 0;
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        const char *cmd = argv[1];
        if (!strcmp(cmd, "replay"))
                return cmd_replay(argc - 1, argv + 1);
        if (!strcmp(cmd, "check"))
                return cmd_check(argc - 1, argv + 1);
        if (!strcmp(cmd, "test"))
                return pg_cmd_test(argc - 1, argv + 1);
        if (!strcmp(cmd, "backtest"))
                return pg_cmd_backtest(argc - 1, argv + 1);
        if (!strcmp(cmd, "run"))
                return pg_cmd_run(argc - 1, argv + 1);
        if (!strcmp(cmd, "produce"))
                return pg_cmd_produce(argc - 1, argv + 1);
        if (!strcmp(cmd, "watch"))
                return pg_cmd_watch(argc - 1, argv + 1);
        if (!strcmp(cmd, "metrics"))
                return cmd_metrics(argc - 1, argv + 1);
        if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
                printf("posguard %s\n", PG_VERSION);
                return 0;
        }
        if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") ||
            !strcmp(cmd, "-h")) {
                usage(stdout);
                return 0;
        }
        fprintf(stderr, "posguard: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
}
