/*
 * cmd_rules.c - the risk team's rule commands: `posguard test` (rule
 * fixtures) and `posguard backtest` (what a rule change changes).
 *
 * Both replay JSON-lines records through the engine exactly as `replay`
 * does (event clock, flushed at the end of the input) and collect its
 * outputs in memory.
 */
#include "cmd_rules.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define JSMN_STATIC
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include "codec_json.h"
#include "engine.h"
#include "kafka_conf.h"
#include "kafka_history.h"
#include "replay.h"
#include "rules.h"
#include "util_mem.h"
#include "util_text.h"

/* ---------------------------------------------------------------------
 * Collected outputs
 * ------------------------------------------------------------------- */

typedef struct out {
        char type; /* 'a' alert, 'r' refund */
        char id[PG_ID_LEN];
        char rule[PG_RULE_ID_MAX + 1];
        char finding[PG_RULE_ID_MAX + 1];
        char mode[8];
        char txn[PG_STR_MAX + 1];
        int64_t amount;
        char currency[4];
        char *json; /* the JSON line, without its newline */
} out_t;

typedef struct outs {
        out_t *v;
        size_t n, cap;
} outs_t;

static out_t *outs_add(outs_t *o)
{
        if (o->n == o->cap) {
                o->cap = o->cap ? 2 * o->cap : 64;
                o->v = pg_xrealloc(o->v, o->cap * sizeof(*o->v));
        }
        out_t *x = &o->v[o->n++];
        memset(x, 0, sizeof(*x));
        return x;
}

static void outs_free(outs_t *o)
{
        for (size_t i = 0; i < o->n; i++)
                free(o->v[i].json);
        free(o->v);
        memset(o, 0, sizeof(*o));
}

static char *dup_line(const char *buf, int n)
{
        if (n > 0 && buf[n - 1] == '\n')
                n--;
        char *s = pg_xmalloc((size_t)n + 1);
        memcpy(s, buf, (size_t)n);
        s[n] = '\0';
        return s;
}

static void collect_alert(void *opaque, const pg_alert_t *a)
{
        out_t *x = outs_add(opaque);
        char buf[PG_JSON_OUT_MAX];
        int n = pg_codec_json_alert(buf, sizeof(buf), a);
        x->type = 'a';
        snprintf(x->id, sizeof(x->id), "%s", a->alert_id);
        snprintf(x->rule, sizeof(x->rule), "%s", a->rule_id);
        snprintf(x->finding, sizeof(x->finding), "%s", a->finding);
        snprintf(x->mode, sizeof(x->mode), "%s", a->mode);
        snprintf(x->txn, sizeof(x->txn), "%s",
                 a->n_txn_ids ? a->txn_ids[0] : "");
        x->amount = a->amount;
        snprintf(x->currency, sizeof(x->currency), "%s", a->currency);
        x->json = dup_line(buf, n > 0 ? n : 0);
}

static void collect_refund(void *opaque, const pg_refund_t *r)
{
        out_t *x = outs_add(opaque);
        char buf[PG_JSON_OUT_MAX];
        int n = pg_codec_json_refund(buf, sizeof(buf), r);
        x->type = 'r';
        snprintf(x->id, sizeof(x->id), "%s", r->refund_id);
        snprintf(x->rule, sizeof(x->rule), "%s", r->rule_id);
        snprintf(x->finding, sizeof(x->finding), "%s", r->reason);
        snprintf(x->mode, sizeof(x->mode), "enforce");
        snprintf(x->txn, sizeof(x->txn), "%s", r->txn_id);
        x->amount = r->amount;
        snprintf(x->currency, sizeof(x->currency), "%s", r->currency);
        x->json = dup_line(buf, n > 0 ? n : 0);
}

/* Replay input through rules (event clock, flushed) into o. */
static int replay_into(const pg_ruleset_t *rs, const pg_engine_conf_t *conf0,
                       const char *input, outs_t *o, pg_replay_counts_t *cnt,
                       char *err, size_t errsz)
{
        pg_engine_conf_t conf = *conf0;
        conf.event_clock = true;
        pg_sink_t sink = {collect_alert, collect_refund, o};
        pg_engine_t *e = pg_engine_new(rs, &conf, &sink, err, errsz);
        if (!e)
                return -1;
        memset(cnt, 0, sizeof(*cnt));
        int rc = pg_replay_feed(e, input, NULL, cnt, err, errsz);
        pg_engine_flush(e);
        pg_engine_free(e);
        return rc;
}

/* The same, from a topic's history: one engine per partition, as posguard
 * run keeps them, each flushed at the end of the range. */
static int replay_history_into(const pg_ruleset_t *rs, const pg_history_t *h,
                               int json, outs_t *o, pg_replay_counts_t *cnt,
                               char *err, size_t errsz)
{
        pg_engine_conf_t conf = {0};
        conf.event_clock = true;
        memset(cnt, 0, sizeof(*cnt));
        pg_sink_t sink = {collect_alert, collect_refund, o};
        for (int i = 0; i < pg_history_partitions(h); i++) {
                pg_engine_t *e = pg_engine_new(rs, &conf, &sink, err, errsz);
                if (!e)
                        return -1;
                pg_history_feed(h, i, e, json, cnt);
                pg_engine_flush(e);
                pg_engine_free(e);
        }
        return 0;
}

/* RFC 3339 or integer ms since the epoch. */
static int parse_when(const char *s, int64_t *ms)
{
        char *end;
        long long v = strtoll(s, &end, 10);
        if (*s && !*end && v >= 0) {
                *ms = v;
                return 0;
        }
        return pg_time_parse(s, strlen(s), ms);
}

/* ---------------------------------------------------------------------
 * posguard test DIR...
 * ------------------------------------------------------------------- */

/* JSON value text with the whitespace outside strings removed. */
static void canon(const char *s, int n, char *out, size_t size)
{
        size_t o = 0;
        bool in = false;
        for (int i = 0; i < n && o + 1 < size; i++) {
                char c = s[i];
                if (in) {
                        out[o++] = c;
                        if (c == '\\' && i + 1 < n && o + 1 < size)
                                out[o++] = s[++i];
                        else if (c == '"')
                                in = false;
                } else if (c == '"') {
                        in = true;
                        out[o++] = c;
                } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                        out[o++] = c;
                }
        }
        out[o] = '\0';
}

#define MAX_TOK 256

typedef struct jobj {
        const char *js;
        jsmntok_t tok[MAX_TOK];
        int n;
} jobj_t;

static int jobj_parse(jobj_t *j, const char *s)
{
        jsmn_parser p;
        jsmn_init(&p);
        j->js = s;
        j->n = jsmn_parse(&p, s, strlen(s), j->tok, MAX_TOK);
        return j->n > 0 && j->tok[0].type == JSMN_OBJECT ? 0 : -1;
}

/* The value token of top-level key k, or -1. */
static int jobj_find(const jobj_t *j, const char *k, int klen)
{
        for (int i = 1; i + 1 < j->n; i++)
                if (j->tok[i].parent == 0 && j->tok[i].type == JSMN_STRING &&
                    j->tok[i].end - j->tok[i].start == klen &&
                    !memcmp(j->js + j->tok[i].start, k, (size_t)klen))
                        return i + 1;
        return -1;
}

/* Every top-level field of want is in got with the same value. */
static bool matches(const jobj_t *want, const jobj_t *got)
{
        for (int i = 1; i + 1 < want->n; i++) {
                const jsmntok_t *k = &want->tok[i];
                if (k->parent != 0)
                        continue;
                const jsmntok_t *v = &want->tok[i + 1];
                int g = jobj_find(got, want->js + k->start, k->end - k->start);
                if (g < 0)
                        return false;
                const jsmntok_t *gv = &got->tok[g];
                static char a[PG_JSON_OUT_MAX], b[PG_JSON_OUT_MAX];
                canon(want->js + v->start, v->end - v->start, a, sizeof(a));
                canon(got->js + gv->start, gv->end - gv->start, b, sizeof(b));
                /* a string token excludes its quotes: compare kinds too */
                if (v->type != gv->type || strcmp(a, b))
                        return false;
        }
        return true;
}

static bool is_file(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool is_dir(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

typedef struct test_opts {
        const char *rules; /* --rules: for fixtures without their own */
        bool verbose;
        int passed, failed;
} test_opts_t;

/* The rule file of a fixture: its own rules.yaml, else the nearest one in
 * a parent directory up to root, else --rules. */
static bool fixture_rules(const char *dir, const char *root,
                          const test_opts_t *t, char *out, size_t size)
{
        char d[1024];
        snprintf(d, sizeof(d), "%s", dir);
        for (;;) {
                snprintf(out, size, "%s/rules.yaml", d);
                if (is_file(out))
                        return true;
                if (!strcmp(d, root))
                        break;
                char *slash = strrchr(d, '/');
                if (!slash)
                        break;
                *slash = '\0';
        }
        if (t->rules) {
                snprintf(out, size, "%s", t->rules);
                return true;
        }
        return false;
}

/* Read the lines of a JSON-lines file (blank lines and lines starting with
 * '#' or '//' skipped). */
static char **read_lines(const char *path, int *n, char *err, size_t errsz)
{
        FILE *f = fopen(path, "r");
        if (!f) {
                snprintf(err, errsz, "%.900s: %s", path, strerror(errno));
                return NULL;
        }
        char **v = NULL;
        int cap = 0;
        *n = 0;
        char line[PG_JSON_OUT_MAX];
        while (fgets(line, sizeof(line), f)) {
                size_t l = strlen(line);
                while (l && (line[l - 1] == '\n' || line[l - 1] == '\r'))
                        line[--l] = '\0';
                const char *p = line;
                while (*p == ' ' || *p == '\t')
                        p++;
                if (!*p || *p == '#' || !strncmp(p, "//", 2))
                        continue;
                if (*n == cap) {
                        cap = cap ? 2 * cap : 16;
                        v = pg_xrealloc(v, (size_t)cap * sizeof(*v));
                }
                v[(*n)++] = strdup(p);
        }
        fclose(f);
        return v;
}

static void free_lines(char **v, int n)
{
        for (int i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void run_fixture(const char *dir, const char *root, test_opts_t *t)
{
        char rules[1200], input[1200], expected[1200], err[1024];
        const char *name = dir + strlen(root);
        while (*name == '/')
                name++;
        if (!*name)
                name = dir;
        snprintf(input, sizeof(input), "%s/input.jsonl", dir);
        snprintf(expected, sizeof(expected), "%s/expected.jsonl", dir);
        if (!fixture_rules(dir, root, t, rules, sizeof(rules))) {
                printf("FAIL %s: no rules.yaml here or above, and no "
                       "--rules\n",
                       name);
                t->failed++;
                return;
        }
        pg_ruleset_t *rs = pg_rules_load_file(rules, err, sizeof(err));
        if (!rs) {
                printf("FAIL %s: %s\n", name, err);
                t->failed++;
                return;
        }
        int nexp = 0;
        char **exp = read_lines(expected, &nexp, err, sizeof(err));
        if (!exp && nexp == 0 && !is_file(expected)) {
                printf("FAIL %s: %s\n", name, err);
                pg_rules_free(rs);
                t->failed++;
                return;
        }
        outs_t o = {0};
        pg_replay_counts_t cnt;
        pg_engine_conf_t conf = {0};
        if (replay_into(rs, &conf, input, &o, &cnt, err, sizeof(err))) {
                printf("FAIL %s: %s\n", name, err);
                goto done;
        }
        /* greedy: each expected line takes the first unused output it
         * matches */
        bool *used = pg_xcalloc(o.n ? o.n : 1, sizeof(bool));
        int missing = 0;
        static jobj_t want, got;
        char *miss_txt[16];
        for (int i = 0; i < nexp; i++) {
                if (jobj_parse(&want, exp[i])) {
                        printf("FAIL %s: expected.jsonl: not a JSON object: "
                               "%.120s\n",
                               name, exp[i]);
                        missing = -1;
                        break;
                }
                bool found = false;
                for (size_t k = 0; k < o.n && !found; k++) {
                        if (used[k] || jobj_parse(&got, o.v[k].json))
                                continue;
                        if (matches(&want, &got))
                                used[k] = found = true;
                }
                if (!found && missing < 16)
                        miss_txt[missing++] = exp[i];
                else if (!found)
                        missing++;
        }
        int extra = 0;
        for (size_t k = 0; k < o.n; k++)
                extra += !used[k];
        if (missing == 0 && extra == 0) {
                printf("ok   %s (%d expected outputs, %" PRIu64
                       " records, %" PRIu64 " rejected)\n",
                       name, nexp, cnt.lines - cnt.rejected, cnt.rejected);
                t->passed++;
        } else if (missing >= 0) {
                printf("FAIL %s: %d expected outputs not produced, %d "
                       "produced but not expected\n",
                       name, missing, extra);
                for (int i = 0; i < missing && i < 16; i++)
                        printf("  missing:    %s\n", miss_txt[i]);
                for (size_t k = 0; k < o.n; k++)
                        if (!used[k])
                                printf("  unexpected: %s\n", o.v[k].json);
        }
        if (missing != 0 || extra != 0)
                t->failed++;
        free(used);
done:
        outs_free(&o);
        free_lines(exp, nexp);
        pg_rules_free(rs);
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every directory at or under dir holding an input.jsonl is a fixture;
 * visited in name order so that the report is stable. */
static void walk(const char *dir, const char *root, test_opts_t *t, int depth)
{
        char p[1200];
        snprintf(p, sizeof(p), "%s/input.jsonl", dir);
        if (is_file(p)) {
                run_fixture(dir, root, t);
                return;
        }
        if (depth > 8)
                return;
        DIR *d = opendir(dir);
        if (!d)
                return;
        char **names = NULL;
        int n = 0, cap = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                if (n == cap) {
                        cap = cap ? 2 * cap : 16;
                        names =
                            pg_xrealloc(names, (size_t)cap * sizeof(char *));
                }
                names[n++] = strdup(de->d_name);
        }
        closedir(d);
        if (n)
                qsort(names, (size_t)n, sizeof(char *), name_cmp);
        for (int i = 0; i < n; i++) {
                snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
                if (is_dir(p))
                        walk(p, root, t, depth + 1);
                free(names[i]);
        }
        free(names);
}

static const char test_usage[] =
    "usage: posguard test [--rules FILE] DIR...\n"
    "  Runs rule fixtures. A fixture is a directory with input.jsonl\n"
    "  (records) and expected.jsonl (the alerts and refund commands it must\n"
    "  produce, one JSON object per line, matched on the fields present;\n"
    "  lines starting with # are comments). Its rule file is rules.yaml in\n"
    "  the fixture or the nearest parent directory, else --rules. A\n"
    "  fixture passes when every expected line matches one output and every\n"
    "  output is expected. Exit status 1 if any fixture fails.\n";

int pg_cmd_test(int argc, char **argv)
{
        static const struct option opts[] = {
            {"rules", required_argument, NULL, 'r'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        test_opts_t t = {0};
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                if (c == 'r') {
                        t.rules = optarg;
                } else if (c == 'h') {
                        fputs(test_usage, stdout);
                        return 0;
                } else {
                        fputs(test_usage, stderr);
                        return 2;
                }
        }
        if (optind >= argc) {
                fputs(test_usage, stderr);
                return 2;
        }
        for (int i = optind; i < argc; i++) {
                char root[1024];
                snprintf(root, sizeof(root), "%s", argv[i]);
                size_t l = strlen(root);
                while (l > 1 && root[l - 1] == '/')
                        root[--l] = '\0';
                if (!is_dir(root)) {
                        fprintf(stderr, "posguard test: %s: not a directory\n",
                                root);
                        return 2;
                }
                walk(root, root, &t, 0);
        }
        if (t.passed + t.failed == 0) {
                fprintf(stderr, "posguard test: no fixture found (a fixture "
                                "is a directory with input.jsonl)\n");
                return 2;
        }
        printf("%d fixtures: %d passed, %d failed\n", t.passed + t.failed,
               t.passed, t.failed);
        return t.failed ? 1 : 0;
}

/* ---------------------------------------------------------------------
 * posguard backtest
 * ------------------------------------------------------------------- */

static int out_cmp(const void *a, const void *b)
{
        return strcmp(((const out_t *)a)->id, ((const out_t *)b)->id);
}

#define MAX_RULE_ROWS 256
#define MAX_CUR 16
#define EXAMPLES 3

typedef struct cur_sum {
        char cur[4];
        int64_t base, new_;
} cur_sum_t;

typedef struct row {
        char rule[PG_RULE_ID_MAX + 1];
        char mode[8];     /* in the new rule set ("" if only in baseline) */
        char old_mode[8]; /* in the baseline */
        int64_t alerts[2], refunds[2];
        int64_t a_added, a_removed, r_added, r_removed;
        cur_sum_t money[MAX_CUR];
        int nmoney;
        int nex;
        const out_t *ex[EXAMPLES];
        char exsign[EXAMPLES];
} row_t;

typedef struct report {
        row_t rows[MAX_RULE_ROWS];
        int n;
} report_t;

static row_t *row_of(report_t *rp, const char *rule)
{
        for (int i = 0; i < rp->n; i++)
                if (!strcmp(rp->rows[i].rule, rule))
                        return &rp->rows[i];
        if (rp->n == MAX_RULE_ROWS)
                return &rp->rows[MAX_RULE_ROWS - 1];
        row_t *r = &rp->rows[rp->n++];
        memset(r, 0, sizeof(*r));
        snprintf(r->rule, sizeof(r->rule), "%s", rule);
        return r;
}

static void money_add(row_t *r, const char *cur, int side, int64_t amt)
{
        for (int i = 0; i < r->nmoney; i++)
                if (!strcmp(r->money[i].cur, cur)) {
                        if (side)
                                r->money[i].new_ += amt;
                        else
                                r->money[i].base += amt;
                        return;
                }
        if (r->nmoney == MAX_CUR)
                return;
        cur_sum_t *m = &r->money[r->nmoney++];
        snprintf(m->cur, sizeof(m->cur), "%s", cur);
        m->base = side ? 0 : amt;
        m->new_ = side ? amt : 0;
}

static void count(report_t *rp, const out_t *x, int side)
{
        row_t *r = row_of(rp, x->rule);
        if (x->type == 'a')
                r->alerts[side]++;
        else {
                r->refunds[side]++;
                money_add(r, x->currency, side, x->amount);
        }
}

static void changed(report_t *rp, const out_t *x, char sign)
{
        row_t *r = row_of(rp, x->rule);
        if (x->type == 'a') {
                if (sign == '+')
                        r->a_added++;
                else
                        r->a_removed++;
        } else {
                if (sign == '+')
                        r->r_added++;
                else
                        r->r_removed++;
        }
        if (r->nex < EXAMPLES) {
                r->ex[r->nex] = x;
                r->exsign[r->nex++] = sign;
        }
}

static void write_json(FILE *f, const report_t *rp, const char *base_path,
                       const pg_ruleset_t *base, const char *new_path,
                       const pg_ruleset_t *nrs, const char *input,
                       const pg_replay_counts_t *cnt)
{
        fprintf(f, "{\"input\":");
        pg_json_str_write(f, input);
        fprintf(f, ",\"records\":%" PRIu64 ",\"rejected\":%" PRIu64,
                cnt->lines - cnt->rejected, cnt->rejected);
        fprintf(f, ",\"baseline\":");
        if (base) {
                fprintf(f, "{\"path\":");
                pg_json_str_write(f, base_path);
                fprintf(f, ",\"version\":");
                pg_json_str_write(f, base->version);
                fprintf(f, "}");
        } else {
                fprintf(f, "null");
        }
        fprintf(f, ",\"new\":{\"path\":");
        pg_json_str_write(f, new_path);
        fprintf(f, ",\"version\":");
        pg_json_str_write(f, nrs->version);
        fprintf(f, "},\"rules\":[");
        for (int i = 0; i < rp->n; i++) {
                const row_t *r = &rp->rows[i];
                fprintf(f, "%s{\"rule_id\":", i ? "," : "");
                pg_json_str_write(f, r->rule);
                fprintf(f, ",\"mode\":");
                pg_json_str_write(f, r->mode);
                fprintf(f, ",\"baseline_mode\":");
                pg_json_str_write(f, r->old_mode);
                fprintf(f,
                        ",\"alerts\":{\"baseline\":%" PRId64 ",\"new\":%" PRId64
                        ",\"added\":%" PRId64 ",\"removed\":%" PRId64 "}",
                        r->alerts[0], r->alerts[1], r->a_added, r->a_removed);
                fprintf(f,
                        ",\"refunds\":{\"baseline\":%" PRId64
                        ",\"new\":%" PRId64 ",\"added\":%" PRId64
                        ",\"removed\":%" PRId64 "}",
                        r->refunds[0], r->refunds[1], r->r_added, r->r_removed);
                fprintf(f, ",\"refunded\":{");
                for (int m = 0; m < r->nmoney; m++) {
                        fprintf(f, "%s", m ? "," : "");
                        pg_json_str_write(f, r->money[m].cur);
                        fprintf(f,
                                ":{\"baseline\":%" PRId64 ",\"new\":%" PRId64
                                ",\"difference\":%" PRId64 "}",
                                r->money[m].base, r->money[m].new_,
                                r->money[m].new_ - r->money[m].base);
                }
                fprintf(f, "},\"examples\":[");
                for (int k = 0; k < r->nex; k++) {
                        fprintf(f, "%s{\"change\":\"%s\",\"output\":%s}",
                                k ? "," : "",
                                r->exsign[k] == '+' ? "added" : "removed",
                                r->ex[k]->json);
                }
                fprintf(f, "]}");
        }
        fprintf(f, "]}\n");
}

static const char backtest_usage[] =
    "usage: posguard backtest --rules NEW [--baseline OLD] --input FILE|-\n"
    "                         [--json FILE]\n"
    "       posguard backtest --rules NEW [--baseline OLD] --topic T\n"
    "                         --from TIME --to TIME --config FILE [-X k=v]...\n"
    "                         [--json FILE]\n"
    "  (TIME: RFC 3339 or ms since the epoch; the topic's messages with\n"
    "  from <= timestamp < to, read_committed, in input.format, replayed\n"
    "  per partition as posguard run keeps them)\n"
    "  Replays the records through both rule sets (event clock, as replay)\n"
    "  and reports, per rule, the alerts and refund commands each produces,\n"
    "  what the new rules add and remove, and the refunded amount per\n"
    "  currency. Without --baseline every output of NEW counts as added.\n"
    "  --json FILE also writes the report as JSON (\"-\": stdout).\n";

int pg_cmd_backtest(int argc, char **argv)
{
        static const struct option opts[] = {
            {"rules", required_argument, NULL, 'r'},
            {"baseline", required_argument, NULL, 'b'},
            {"input", required_argument, NULL, 'i'},
            {"json", required_argument, NULL, 'j'},
            {"topic", required_argument, NULL, 't'},
            {"from", required_argument, NULL, 'f'},
            {"to", required_argument, NULL, 'T'},
            {"config", required_argument, NULL, 'c'},
            {"help", no_argument, NULL, 'h'},
            {NULL, 0, NULL, 0}};
        const char *new_path = NULL, *base_path = NULL, *input = NULL,
                   *json = NULL, *topic = NULL, *from = NULL, *to = NULL,
                   *config = NULL;
        const char *xs[64];
        int nx = 0;
        int c;
        optind = 1;
        while ((c = getopt_long(argc, argv, "X:", opts, NULL)) != -1) {
                switch (c) {
                case 'r':
                        new_path = optarg;
                        break;
                case 't':
                        topic = optarg;
                        break;
                case 'f':
                        from = optarg;
                        break;
                case 'T':
                        to = optarg;
                        break;
                case 'c':
                        config = optarg;
                        break;
                case 'X':
                        if (nx < 64)
                                xs[nx++] = optarg;
                        break;
                case 'b':
                        base_path = optarg;
                        break;
                case 'i':
                        input = optarg;
                        break;
                case 'j':
                        json = optarg;
                        break;
                case 'h':
                        fputs(backtest_usage, stdout);
                        return 0;
                default:
                        fputs(backtest_usage, stderr);
                        return 2;
                }
        }
        int64_t from_ms = 0, to_ms = INT64_MAX;
        if (!new_path || optind != argc || !input == !topic ||
            (topic && (!from || !to || parse_when(from, &from_ms) ||
                       parse_when(to, &to_ms) || from_ms >= to_ms))) {
                fputs(backtest_usage, stderr);
                return 2;
        }
        if (input && !strcmp(input, "-") && base_path) {
                fprintf(stderr, "posguard backtest: the input is read twice: "
                                "give a file, not stdin\n");
                return 2;
        }
        char err[1024];
        pg_ruleset_t *nrs = pg_rules_load_file(new_path, err, sizeof(err));
        if (!nrs) {
                fprintf(stderr, "posguard backtest: %s\n", err);
                return 1;
        }
        pg_ruleset_t *brs = NULL;
        if (base_path &&
            !(brs = pg_rules_load_file(base_path, err, sizeof(err)))) {
                fprintf(stderr, "posguard backtest: %s\n", err);
                pg_rules_free(nrs);
                return 1;
        }
        outs_t o[2] = {{0}, {0}};
        pg_replay_counts_t cnt;
        pg_engine_conf_t conf = {0};
        int rc = 0;
        pg_history_t *hist = NULL;
        pg_kconf_t kc;
        pg_kconf_init(&kc);
        char where[600];
        if (topic) {
                static const char *const fmts[] = {"protobuf", "json", NULL};
                int fmt = 0;
                char key[300];
                snprintf(key, sizeof(key), "input.format.%s", topic);
                int bad = pg_kconf_build(&kc, config, xs, nx, err, sizeof(err));
                if (!bad)
                        bad = pg_kconf_choice(&kc, "input.format", fmts, 0,
                                              &fmt, err, sizeof(err)) ||
                              pg_kconf_choice(&kc, key, fmts, fmt, &fmt, err,
                                              sizeof(err));
                if (!bad && !(hist = pg_history_read(&kc, topic, from_ms, to_ms,
                                                     err, sizeof(err))))
                        bad = 1;
                if (!bad &&
                    ((brs && replay_history_into(brs, hist, fmt, &o[0], &cnt,
                                                 err, sizeof(err))) ||
                     replay_history_into(nrs, hist, fmt, &o[1], &cnt, err,
                                         sizeof(err))))
                        bad = 1;
                if (bad) {
                        fprintf(stderr, "posguard backtest: %s\n", err);
                        rc = 1;
                        goto out;
                }
                char a[40], b[40];
                snprintf(where, sizeof(where),
                         "topic %s [%s, %s), %d partitions", topic,
                         pg_time_format(from_ms, a, sizeof(a)),
                         pg_time_format(to_ms, b, sizeof(b)),
                         pg_history_partitions(hist));
                input = where;
        } else if ((brs && replay_into(brs, &conf, input, &o[0], &cnt, err,
                                       sizeof(err))) ||
                   replay_into(nrs, &conf, input, &o[1], &cnt, err,
                               sizeof(err))) {
                fprintf(stderr, "posguard backtest: %s\n", err);
                rc = 1;
                goto out;
        }
        static report_t rp;
        memset(&rp, 0, sizeof(rp));
        /* rows in the new file's order, then rules only in the baseline */
        for (int i = 0; i < nrs->n_rules; i++)
                snprintf(row_of(&rp, nrs->rules[i].id)->mode, 8, "%s",
                         pg_mode_name(nrs->rules[i].mode));
        for (int i = 0; brs && i < brs->n_rules; i++)
                snprintf(row_of(&rp, brs->rules[i].id)->old_mode, 8, "%s",
                         pg_mode_name(brs->rules[i].mode));
        for (int s = 0; s < 2; s++) {
                if (o[s].n) /* no baseline: nothing to sort */
                        qsort(o[s].v, o[s].n, sizeof(out_t), out_cmp);
                for (size_t i = 0; i < o[s].n; i++)
                        count(&rp, &o[s].v[i], s);
        }
        /* the difference, by output id (alert_id / refund_id depend on the
         * rule id, the finding and the transaction, not on the version) */
        size_t i = 0, j = 0;
        while (i < o[0].n || j < o[1].n) {
                int d = i == o[0].n   ? 1
                        : j == o[1].n ? -1
                                      : strcmp(o[0].v[i].id, o[1].v[j].id);
                if (d < 0)
                        changed(&rp, &o[0].v[i++], '-');
                else if (d > 0)
                        changed(&rp, &o[1].v[j++], '+');
                else
                        i++, j++;
        }

        printf("backtest of %s (version %s)\n", new_path, nrs->version);
        if (brs)
                printf("against     %s (version %s)\n", base_path,
                       brs->version);
        else
                printf("against     no rules (every output is added)\n");
        printf("on          %s: %" PRIu64 " records, %" PRIu64 " rejected\n\n",
               input, cnt.lines - cnt.rejected, cnt.rejected);
        printf("%-24s %-15s %8s %8s %7s %7s %8s %8s %7s %7s\n", "rule", "mode",
               "alerts", "(base)", "+added", "-remov", "refunds", "(base)",
               "+added", "-remov");
        int64_t tot[8] = {0};
        for (int k = 0; k < rp.n; k++) {
                const row_t *r = &rp.rows[k];
                char mode[20];
                if (brs && strcmp(r->mode, r->old_mode))
                        snprintf(mode, sizeof(mode), "%s<-%s",
                                 r->mode[0] ? r->mode : "(gone)",
                                 r->old_mode[0] ? r->old_mode : "new");
                else
                        snprintf(mode, sizeof(mode), "%s", r->mode);
                printf("%-24s %-15s %8" PRId64 " %8" PRId64 " %7" PRId64
                       " %7" PRId64 " %8" PRId64 " %8" PRId64 " %7" PRId64
                       " %7" PRId64 "\n",
                       r->rule, mode, r->alerts[1], r->alerts[0], r->a_added,
                       r->a_removed, r->refunds[1], r->refunds[0], r->r_added,
                       r->r_removed);
                int64_t v[8] = {r->alerts[1], r->alerts[0],  r->a_added,
                                r->a_removed, r->refunds[1], r->refunds[0],
                                r->r_added,   r->r_removed};
                for (int q = 0; q < 8; q++)
                        tot[q] += v[q];
        }
        printf("%-24s %-15s %8" PRId64 " %8" PRId64 " %7" PRId64 " %7" PRId64
               " %8" PRId64 " %8" PRId64 " %7" PRId64 " %7" PRId64 "\n",
               "TOTAL", "", tot[0], tot[1], tot[2], tot[3], tot[4], tot[5],
               tot[6], tot[7]);
        printf("\nrefunded amount (new vs baseline):\n");
        cur_sum_t all[MAX_CUR];
        int nall = 0;
        for (int k = 0; k < rp.n; k++)
                for (int m = 0; m < rp.rows[k].nmoney; m++) {
                        const cur_sum_t *cs = &rp.rows[k].money[m];
                        int q = 0;
                        while (q < nall && strcmp(all[q].cur, cs->cur))
                                q++;
                        if (q == nall) {
                                if (nall == MAX_CUR)
                                        continue;
                                all[nall++] = (cur_sum_t){{0}, 0, 0};
                                snprintf(all[q].cur, 4, "%s", cs->cur);
                        }
                        all[q].base += cs->base;
                        all[q].new_ += cs->new_;
                }
        if (nall == 0)
                printf("  none on either side\n");
        for (int q = 0; q < nall; q++) {
                char a[48], b[48], d[48];
                pg_fmt_amount(a, sizeof(a), all[q].new_, all[q].cur);
                pg_fmt_amount(b, sizeof(b), all[q].base, all[q].cur);
                pg_fmt_amount(d, sizeof(d), all[q].new_ - all[q].base,
                              all[q].cur);
                printf("  %s: %s (baseline %s), difference %s%s\n", all[q].cur,
                       a, b, all[q].new_ - all[q].base > 0 ? "+" : "", d);
        }
        bool any = false;
        for (int k = 0; k < rp.n; k++) {
                const row_t *r = &rp.rows[k];
                if (!r->nex)
                        continue;
                if (!any)
                        printf("\nexamples of changes (up to %d per rule):\n",
                               EXAMPLES);
                any = true;
                for (int q = 0; q < r->nex; q++) {
                        const out_t *x = r->ex[q];
                        char amt[48];
                        pg_fmt_amount(amt, sizeof(amt), x->amount, x->currency);
                        printf("  %c %-6s %-24s %-24s txn %-20s %s%s\n",
                               r->exsign[q],
                               x->type == 'a' ? "alert" : "refund", r->rule,
                               x->finding, x->txn, amt,
                               strcmp(x->mode, "shadow") ? "" : " [shadow]");
                }
        }
        if (!any)
                printf("\nno change: both rule sets produce the same "
                       "outputs on this input\n");
        if (json) {
                FILE *f = strcmp(json, "-") ? fopen(json, "w") : stdout;
                if (!f) {
                        fprintf(stderr, "posguard backtest: %s: %s\n", json,
                                strerror(errno));
                        rc = 1;
                } else {
                        write_json(f, &rp, base_path, brs, new_path, nrs, input,
                                   &cnt);
                        if (f != stdout)
                                fclose(f);
                }
        }
out:
        pg_history_free(hist);
        pg_kconf_free(&kc);
        outs_free(&o[0]);
        outs_free(&o[1]);
        pg_rules_free(nrs);
        pg_rules_free(brs);
        return rc;
}
