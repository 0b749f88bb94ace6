/*
 * bench_memory.c - memory of the engine's state, and its behaviour under a
 * key explosion.
 *
 *   bench_memory live N [MAX_STATE_MB]
 *       N approved charges, each with its own txn_id, rrn and card, spread
 *       over one hour of event time, so that every one of them is still
 *       tracked at the end (the dedupe horizon is 24 h, the refund lookback
 *       30 days): state bytes per tracked charge, and the process's RSS.
 *   bench_memory explosion N MAX_STATE_MB
 *       a card-testing attack: N declined purchases, each on a card never
 *       seen before, over one hour, against a state cap of MAX_STATE_MB:
 *       the cap must hold (state and RSS stay under it, plus the fixed
 *       cost of the process), the refusal counter must rise, and the run
 *       must end normally.
 *
 * Records are built in memory (no file, no codec): the figures are the
 * engine's alone. Prints one JSON object on stdout. Rules: rules/default.yaml
 * (or PG_RULES).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "rules.h"

static void set_str(pg_str_t *s, const char *fmt, unsigned long long v)
{
        int n = snprintf(s->s, sizeof(s->s), fmt, v);
        s->len = (uint8_t)(n > 0 ? n : 0);
}

static long status_kb(const char *key)
{
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        long v = -1;
        size_t kl = strlen(key);
        while (f && fgets(line, sizeof(line), f))
                if (!strncmp(line, key, kl))
                        v = strtol(line + kl, NULL, 10);
        if (f)
                fclose(f);
        return v;
}

static void count(void *o, const void *x)
{
        (void)x;
        (*(uint64_t *)o)++;
}

static void on_alert(void *o, const pg_alert_t *a)
{
        count(o, a);
}

static void on_refund(void *o, const pg_refund_t *r)
{
        count(o, r);
}

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
        if (argc < 3 ||
            (strcmp(argv[1], "live") && strcmp(argv[1], "explosion"))) {
                fprintf(stderr,
                        "usage: bench_memory live N [MAX_STATE_MB]\n"
                        "       bench_memory explosion N MAX_STATE_MB\n");
                return 2;
        }
        bool explosion = !strcmp(argv[1], "explosion");
        uint64_t n = strtoull(argv[2], NULL, 10);
        size_t cap_mb = argc > 3 ? strtoull(argv[3], NULL, 10) : 16384;
        const char *rules_path =
            getenv("PG_RULES") ? getenv("PG_RULES") : "rules/default.yaml";
        char err[1024];
        pg_ruleset_t *rs = pg_rules_load_file(rules_path, err, sizeof(err));
        if (!rs) {
                fprintf(stderr, "bench_memory: %s\n", err);
                return 1;
        }
        uint64_t outputs = 0;
        pg_sink_t sink = {on_alert, on_refund, &outputs};
        pg_engine_conf_t conf;
        memset(&conf, 0, sizeof(conf));
        conf.event_clock = true;
        conf.max_state_bytes = cap_mb << 20;
        long rss0 = status_kb("VmRSS:");
        pg_engine_t *e = pg_engine_new(rs, &conf, &sink, err, sizeof(err));
        if (!e) {
                fprintf(stderr, "bench_memory: %s\n", err);
                return 1;
        }
        pg_record_t r;
        memset(&r, 0, sizeof(r));
        set_str(&r.currency, "EUR", 0);
        int64_t t0 = 1795000000000LL, span = 3600 * 1000;
        double w0 = now_s();
        for (uint64_t i = 0; i < n; i++) {
                set_str(&r.txn_id, "T%016llx", (unsigned long long)i);
                set_str(&r.merchant_id, "M%06llu",
                        (unsigned long long)(i % 5000));
                set_str(&r.terminal_id, "T%07llu",
                        (unsigned long long)(i % 20000));
                set_str(&r.stan, "%06llu", (unsigned long long)(i % 1000000));
                set_str(&r.rrn, "%012llu", (unsigned long long)i);
                set_str(&r.card_token, "tok_%024llx", (unsigned long long)i);
                r.kind = PG_KIND_PURCHASE;
                r.status = explosion ? PG_STATUS_DECLINED : PG_STATUS_APPROVED;
                r.amount = 1000 + (int64_t)(i % 5000);
                r.event_time =
                    t0 + (int64_t)((double)i * (double)span / (double)n);
                pg_engine_push(e, &r);
        }
        double secs = now_s() - w0;
        pg_engine_stats_t st;
        pg_engine_stats(e, &st);
        long rss = status_kb("VmRSS:"), hwm = status_kb("VmHWM:");
        printf("{\"mode\": \"%s\", \"records\": %" PRIu64
               ", \"max_state_mb\": %zu, \"seconds\": %.3f, "
               "\"records_per_second\": %.0f, \"state_bytes\": %zu, "
               "\"state_bytes_peak\": %zu, \"state_bytes_per_record\": %.1f, "
               "\"state_full\": %" PRIu64 ", \"rss_kb_before\": %ld, "
               "\"rss_kb\": %ld, \"peak_rss_kb\": %ld, \"outputs\": %" PRIu64
               ", \"parts\": [",
               explosion ? "explosion" : "live", n, cap_mb, secs,
               (double)n / secs, st.state_bytes, st.state_bytes_peak,
               (double)st.state_bytes / (double)n, st.state_full, rss0, rss,
               hwm, outputs);
        /* where the bytes are: per table, per tracked charge */
        pg_state_part_t parts[64];
        size_t np = pg_engine_state_parts(e, parts, 64);
        for (size_t i = 0; i < np && i < 64; i++)
                printf("%s{\"table\": \"%s\", \"rule\": \"%s\", "
                       "\"entries\": %zu, \"bytes\": %zu, "
                       "\"bytes_per_record\": %.1f}",
                       i ? ", " : "", parts[i].table, parts[i].rule,
                       parts[i].entries, parts[i].bytes,
                       (double)parts[i].bytes / (double)n);
        printf("]}\n");
        pg_engine_free(e);
        pg_rules_free(rs);
        return 0;
}
