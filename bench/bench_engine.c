/*
 * bench_engine.c - the engine in process, without JSON and without Kafka:
 * records/s and ns/record of protobuf decoding, of the engine with no rules
 * and of each rule of a rule file on its own, so the cost of one detector
 * is visible. bench/engine.sh runs it on a generated stream.
 *
 *   bench_engine --rules FILE --input JSONL [--out JSON] [--repeat K]
 *                [--commit REV] [--in-process]
 *
 * Set-up (not timed): every line of JSONL is parsed with
 * pg_codec_json_parse (rejected lines are counted and skipped, blank lines
 * ignored, as replay does) and every accepted record is encoded with
 * pg_codec_pb_record into one contiguous buffer with an offset per record,
 * so each measurement starts from protobuf records in memory, as they
 * arrive from Kafka.
 *
 * Measurements, each over all records, best (least time) of K repeats:
 *   decode             pg_codec_pb_parse of every record: the decode cost
 *                      alone.
 *   engine_no_rules    decode + pg_engine_push + pg_engine_flush on a rule
 *                      set with the file's settings and no active rule:
 *                      transport dedupe, reorder buffer, facts, refund heap.
 *   rule:ID            the same with only rule ID (one row per active rule,
 *                      in file order).
 *   engine_all_rules   the same with the whole rule file.
 *   engine_all_rules_sized
 *                      the same with the engine sized for the input's
 *                      records (pg_engine_conf_t.expect_records = records,
 *                      all within the dedupe horizon): no table doubles
 *                      while it runs. Its arrays are made and faulted in
 *                      by pg_engine_new, outside the timed part; "setup_ms"
 *                      in the JSON says how long that took.
 *   pipeline:Pp:Tt     the parallel engine (pipeline.h), all rules.
 *   decode_protobuf_c  pg_codec_pb_parse_reference (numbers from
 *                      protobuf-c's unpacking, one arena reset per record):
 *                      what decode cost before the wire-only decoder.
 * The timed part of an engine run is decode, push and flush; pg_engine_new
 * and pg_engine_free are outside it. The sink only counts alerts and
 * refunds, so no output is formatted. pg_engine_conf_t: defaults plus
 * event_clock (detected_at from event time: no clock read per output).
 * "marginal" is ns/record minus engine_no_rules' (for engine_no_rules
 * itself: minus decode's), i.e. the cost one detector adds.
 *
 * Each run is done in a child process (fork; the encoded input is shared,
 * read-only), so that every run starts from the same allocator state. In
 * one process the order of the rows shows in the figures: glibc's dynamic
 * mmap threshold lets a run after a large one reuse the freed heap instead
 * of faulting in fresh pages, and engine_no_rules, measured first, came out
 * slower than a one-rule run. Page faults of growing tables count, as in a
 * replay. --in-process runs everything in this process instead (decode
 * alone is about 15 % faster there; the engine rows are within the noise).
 * Repeats go round robin (repeat k of every row, then k + 1), so that a
 * slow spell of the machine spreads over all rows.
 *
 * How the rule sets are built (all with pg_rules_load_buffer):
 *   - The loader refuses an empty rule list ("expected 1 to 256 rules"), but
 *     drops rules with `mode: off` after checking them; so the no-rules set
 *     is a generated file with the loaded settings and one rule that is off:
 *       version: '...'
 *       settings: {allowed_lateness: Nms, dedupe_horizon: Nms,
 *                  refund_delay: Nms}
 *       rules:
 *         - {id: bench-no-rules, detector: retry_duplicate, mode: off}
 *     Its n_rules is 0, and its settings are checked against the file's.
 *   - One-rule sets come from the file's text: it must have the block
 *     layout of rules/default.yaml (a top-level `rules:` line, then list
 *     items `- ...` at one indentation up to the next top-level key). Each
 *     item is kept with everything outside the rules list (version,
 *     settings, lists, include) and loaded under the file's own name (so
 *     includes resolve alike). Each result must hold exactly the rule the
 *     whole file holds at that position (same id, same settings). A file
 *     without that layout (a flow-style list, say) falls back to views:
 *     a copy of the loaded pg_ruleset_t with rules/n_rules pointing at one
 *     rule; the program says so.
 *   Rules that are off in the file have no row. An aggregate rule with
 *   on_findings counts other rules' findings, so alone it sees none.
 *
 * Threads: every engine row goes through run_pipeline(), one engine on
 * this thread for the single-engine rows, P partition engines on 1..N
 * threads for the pipeline rows (--partitions, --threads-max).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec_json.h"
#include "codec_pb.h"
#include "engine.h"
#include "pipeline.h"
#include "rules.h"
#include "util_progress.h"
#include "util_text.h"

/* ---- timing ---- */

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "bench_engine: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
        exit(1);
}

static void *xrealloc(void *p, size_t n)
{
        void *q = realloc(p, n ? n : 1);
        if (!q)
                die("out of memory (%zu bytes)", n);
        return q;
}

/* ---- the encoded input ---- */

typedef struct encoded {
        unsigned char *data; /* every record's protobuf, back to back */
        size_t len, cap;
        size_t *off; /* record i is data[off[i] .. off[i] + size[i]) */
        uint32_t *size;
        size_t n, ncap;
        uint64_t lines, rejected; /* of the JSON input */
} encoded_t;

static void enc_add(encoded_t *e, const unsigned char *p, size_t n)
{
        if (e->n == e->ncap) {
                e->ncap = e->ncap ? e->ncap * 2 : 65536;
                e->off = xrealloc(e->off, e->ncap * sizeof(*e->off));
                e->size = xrealloc(e->size, e->ncap * sizeof(*e->size));
        }
        if (e->cap - e->len < n) {
                while (e->cap - e->len < n)
                        e->cap = e->cap ? e->cap * 2 : (size_t)1 << 24;
                e->data = xrealloc(e->data, e->cap);
        }
        memcpy(e->data + e->len, p, n);
        e->off[e->n] = e->len;
        e->size[e->n] = (uint32_t)n;
        e->n++;
        e->len += n;
}

static void load_input(const char *path, encoded_t *e)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                die("%s: %s", path, strerror(errno));
        char *line = NULL;
        size_t lcap = 0;
        ssize_t got;
        pg_record_t rec;
        unsigned char pb[PG_PB_OUT_MAX];
        char err[256];
        const char *field;
        while ((got = getline(&line, &lcap, f)) > 0) {
                size_t len = (size_t)got;
                if (line[len - 1] == '\n')
                        len--;
                size_t k = 0;
                while (k < len &&
                       (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
                        k++;
                if (k == len)
                        continue; /* blank: not a record, as in replay */
                e->lines++;
                if (len > PG_JSON_MAX_LINE ||
                    pg_codec_json_parse(line, len, &rec, &field, err,
                                        sizeof(err)) != PG_REJ_NONE) {
                        e->rejected++;
                        continue;
                }
                int n = pg_codec_pb_record(pb, sizeof(pb), &rec);
                if (n < 0)
                        die("%s: record %llu does not fit %d bytes of "
                            "protobuf",
                            path, (unsigned long long)e->lines, PG_PB_OUT_MAX);
                enc_add(e, pb, (size_t)n);
        }
        if (ferror(f))
                die("%s: %s", path, strerror(errno));
        free(line);
        fclose(f);
}

/* ---- runs ---- */

typedef struct run_counts {
        uint64_t records;        /* decoded and (engine runs) pushed */
        uint64_t decode_rejects; /* should be 0: the input was valid */
        uint64_t alerts, refunds;
        uint64_t duplicates, late;
        size_t state_bytes_peak;
        double seconds; /* decode + push + flush */
        /* the longest time 1,024 consecutive records took (engine rows):
         * a stall, such as a table growing, shows here and not in the
         * mean */
        double worst_1k_s;
        double setup_s; /* pg_pipeline_new: the engines and their tables */
} run_counts_t;

/* One arena for the reference decoder; a record never needs more than
 * PG_PB_ARENA_MIN (codec_pb.h), the rest is alignment slack. */
typedef struct arena_buf {
        _Alignas(max_align_t) unsigned char b[PG_PB_ARENA_MIN + 64];
} arena_buf_t;

/* Decode record i of in into rec; with an arena, by the reference decoder
 * (the arena reset first). */
static bool decode_at(const encoded_t *in, size_t i, pg_pb_arena_t *arena,
                      pg_record_t *rec)
{
        const char *field;
        char why[256];
        const unsigned char *p = in->data + in->off[i];
        if (!arena)
                return pg_codec_pb_parse(p, in->size[i], rec, &field, why,
                                         sizeof(why)) == PG_REJ_NONE;
        pg_pb_arena_reset(arena);
        return pg_codec_pb_parse_reference(arena, p, in->size[i], rec, &field,
                                           why, sizeof(why)) == PG_REJ_NONE;
}

/* Decode records [from, to) only, by the reference decoder when ref. */
static void run_decode(const encoded_t *in, size_t from, size_t to, bool ref,
                       run_counts_t *out)
{
        static arena_buf_t abuf;
        pg_pb_arena_t arena;
        pg_pb_arena_init(&arena, abuf.b, sizeof(abuf.b));
        pg_record_t rec;
        memset(out, 0, sizeof(*out));
        uint64_t sum = 0;
        double t0 = now_s();
        for (size_t i = from; i < to; i++) {
                if (decode_at(in, i, ref ? &arena : NULL, &rec)) {
                        out->records++;
                        sum += (uint64_t)rec.event_time; /* use the result */
                } else {
                        out->decode_rejects++;
                }
        }
        out->seconds = now_s() - t0;
        if (sum == 42)
                fprintf(stderr, " "); /* keeps sum alive */
}

/* The engine as replay drives it (pipeline.h): decode here, P partition
 * engines on T worker threads; P = T = 1 is one engine on this thread
 * (the pipeline's inline path, no copies and no threads). Outputs are
 * counted from one byte each encoder writes, in the caller's thread (the
 * merge), so nothing here is shared. Returns 0, or -1 with err set when
 * the engines cannot be built. */
static int enc_alert(char *buf, size_t size, const pg_alert_t *a)
{
        (void)a;
        buf[0] = 'a';
        return 1;
}

static int enc_refund(char *buf, size_t size, const pg_refund_t *r)
{
        (void)r;
        buf[0] = 'r';
        return 1;
}

static void count_out(void *opaque, const char *buf, size_t len)
{
        run_counts_t *c = opaque;
        if (len && buf[0] == 'a')
                c->alerts++;
        else if (len)
                c->refunds++;
}

static int run_pipeline(const encoded_t *in, const pg_ruleset_t *rs,
                        int partitions, int threads, size_t expect,
                        run_counts_t *out, char *err, size_t errsz)
{
        memset(out, 0, sizeof(*out));
        pg_engine_conf_t conf;
        memset(&conf, 0, sizeof(conf));
        conf.event_clock = true;
        conf.expect_records = expect;
        pg_pipeline_conf_t pc = {partitions, threads,   enc_alert,
                                 enc_refund, count_out, out};
        double t_setup = now_s();
        pg_pipeline_t *pl = pg_pipeline_new(rs, &conf, &pc, err, errsz);
        if (!pl)
                return -1;
        pg_record_t rec;
        double t0 = now_s(), mark = t0;
        out->setup_s = t0 - t_setup;
        for (size_t i = 0; i < in->n; i++) {
                if (!decode_at(in, i, NULL, &rec)) {
                        out->decode_rejects++;
                        continue;
                }
                pg_pipeline_push(pl, &rec);
                out->records++;
                if (out->records % 65536 == 0)
                        pg_pipeline_sync(pl);
                if (out->records % 1024 == 0) {
                        double t = now_s();
                        if (t - mark > out->worst_1k_s)
                                out->worst_1k_s = t - mark;
                        mark = t;
                }
        }
        pg_pipeline_flush(pl);
        out->seconds = now_s() - t0;
        pg_engine_stats_t st;
        pg_pipeline_stats(pl, &st);
        out->duplicates = st.duplicates;
        out->late = st.late;
        out->state_bytes_peak = st.state_bytes_peak;
        pg_pipeline_free(pl);
        return 0;
}

/* ---- rule sets ---- */

typedef struct text {
        char *s;
        size_t len, cap;
} text_t;

static void text_add(text_t *t, const char *s, size_t n)
{
        if (t->cap - t->len < n + 1) {
                while (t->cap - t->len < n + 1)
                        t->cap = t->cap ? t->cap * 2 : 4096;
                t->s = xrealloc(t->s, t->cap);
        }
        memcpy(t->s + t->len, s, n);
        t->len += n;
        t->s[t->len] = '\0';
}

static void text_printf(text_t *t, const char *fmt, ...)
{
        char b[1024];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b, sizeof(b), fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(b))
                die("internal: rule text line too long");
        text_add(t, b, (size_t)n);
}

static char *read_all(const char *path, size_t *len)
{
        FILE *f = fopen(path, "rb");
        if (!f)
                die("%s: %s", path, strerror(errno));
        text_t t = {0};
        char b[65536];
        size_t n;
        while ((n = fread(b, 1, sizeof(b), f)) > 0)
                text_add(&t, b, n);
        if (ferror(f))
                die("%s: %s", path, strerror(errno));
        fclose(f);
        if (!t.s)
                text_add(&t, "", 0);
        *len = t.len;
        return t.s;
}

static bool same_settings(const pg_ruleset_t *a, const pg_ruleset_t *b)
{
        return a->allowed_lateness_ms == b->allowed_lateness_ms &&
               a->dedupe_horizon_ms == b->dedupe_horizon_ms &&
               a->refund_delay_ms == b->refund_delay_ms;
}

/* The file's settings and no active rule (see the top comment). */
static pg_ruleset_t *no_rules_set(const pg_ruleset_t *full)
{
        text_t t = {0};
        text_add(&t, "version: '", 10);
        for (const char *p = full->version; *p; p++) {
                text_add(&t, p, 1);
                if (*p == '\'') /* single-quoted YAML: '' is one ' */
                        text_add(&t, p, 1);
        }
        text_printf(&t,
                    "'\nsettings:\n"
                    "  allowed_lateness: %lldms\n"
                    "  dedupe_horizon: %lldms\n"
                    "  refund_delay: %lldms\n"
                    "rules:\n"
                    "  - id: bench-no-rules\n"
                    "    detector: retry_duplicate\n"
                    "    mode: off\n",
                    (long long)full->allowed_lateness_ms,
                    (long long)full->dedupe_horizon_ms,
                    (long long)full->refund_delay_ms);
        char err[1024];
        pg_ruleset_t *rs =
            pg_rules_load_buffer("<no rules>", t.s, t.len, err, sizeof(err));
        if (!rs)
                die("the no-rules set was refused: %s\n%s", err, t.s);
        if (rs->n_rules != 0 || !same_settings(rs, full))
                die("the no-rules set has %d rules or other settings",
                    rs->n_rules);
        free(t.s);
        return rs;
}

/* A line of the file: [b, e) without its newline, next at e + 1. */
static bool line_blank_or_comment(const char *b, const char *e)
{
        while (b < e && (*b == ' ' || *b == '\t' || *b == '\r'))
                b++;
        return b == e || *b == '#';
}

/* Is [b, e) a list item "- ..." ("-" then space or end)? *indent: its
 * column. */
static bool line_item(const char *b, const char *e, size_t *indent)
{
        const char *p = b;
        while (p < e && *p == ' ')
                p++;
        if (p == e || *p != '-')
                return false;
        if (p + 1 < e && p[1] != ' ' && p[1] != '\t' && p[1] != '\r')
                return false;
        *indent = (size_t)(p - b);
        return true;
}

/* A top-level `rules:` line (block style: nothing but a comment after). */
static bool line_rules_key(const char *b, const char *e)
{
        if (e - b < 6 || memcmp(b, "rules:", 6) != 0)
                return false;
        return line_blank_or_comment(b + 6, e);
}

/* Split the file's text into one-rule files, load each, and check them
 * against full. Returns the number of sets written to out (full->n_rules),
 * or -1 when the layout does not fit (then out holds nothing). */
static int split_rules(const char *name, const char *buf, size_t len,
                       const pg_ruleset_t *full, pg_ruleset_t **out)
{
        const char *end = buf + len;
        /* find `rules:` at column 0 */
        const char *p = buf, *rules_line = NULL, *sect = NULL;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *le = nl ? nl : end;
                if (line_rules_key(p, le)) {
                        rules_line = p;
                        sect = nl ? nl + 1 : end;
                        break;
                }
                p = nl ? nl + 1 : end;
        }
        if (!rules_line)
                return -1;
        /* the items, up to the next top-level key */
        enum { MAX_ITEMS = 256 };
        const char *item[MAX_ITEMS + 1];
        int nitems = 0;
        size_t indent = 0;
        const char *post = end;
        for (p = sect; p < end;) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *le = nl ? nl : end;
                size_t ind;
                bool is_item = line_item(p, le, &ind);
                if (!is_item && !line_blank_or_comment(p, le) && *p != ' ' &&
                    *p != '\t') {
                        post = p; /* a top-level key or document marker */
                        break;
                }
                if (is_item && nitems == 0)
                        indent = ind;
                if (is_item && ind == indent) {
                        if (nitems == MAX_ITEMS)
                                return -1;
                        item[nitems++] = p;
                } else if (nitems == 0 && !line_blank_or_comment(p, le)) {
                        return -1; /* not a block list */
                }
                p = nl ? nl + 1 : end;
        }
        item[nitems] = post;
        int k = 0;
        for (int i = 0; i < nitems; i++) {
                text_t t = {0};
                text_add(&t, buf, (size_t)(sect - buf)); /* up to rules: */
                if (sect > buf && sect[-1] != '\n')
                        text_add(&t, "\n", 1);
                text_add(&t, item[i], (size_t)(item[i + 1] - item[i]));
                if (t.s[t.len - 1] != '\n')
                        text_add(&t, "\n", 1);
                text_add(&t, post, (size_t)(end - post));
                char err[1024];
                pg_ruleset_t *rs =
                    pg_rules_load_buffer(name, t.s, t.len, err, sizeof(err));
                free(t.s);
                bool ok = rs && same_settings(rs, full) && rs->n_rules <= 1 &&
                          (rs->n_rules == 0 ||
                           (k < full->n_rules &&
                            strcmp(rs->rules[0].id, full->rules[k].id) == 0));
                if (!ok) {
                        pg_rules_free(rs);
                        for (int j = 0; j < k; j++)
                                pg_rules_free(out[j]);
                        return -1;
                }
                if (rs->n_rules == 0) { /* off in the file: no row */
                        pg_rules_free(rs);
                        continue;
                }
                out[k++] = rs;
        }
        if (k != full->n_rules) {
                for (int j = 0; j < k; j++)
                        pg_rules_free(out[j]);
                return -1;
        }
        return k;
}

/* ---- machine ---- */

typedef struct machine {
        long cores;
        char cpu[256];
        double mem_gib;
        char host[256];
        char os[512];
        char commit[64];
} machine_t;

static void machine_info(machine_t *m, const char *commit)
{
        memset(m, 0, sizeof(*m));
        m->cores = sysconf(_SC_NPROCESSORS_ONLN);
        snprintf(m->cpu, sizeof(m->cpu), "unknown");
        char line[1024];
        FILE *f = fopen("/proc/cpuinfo", "r");
        while (f && fgets(line, sizeof(line), f)) {
                if (strncmp(line, "model name", 10) != 0)
                        continue;
                char *c = strchr(line, ':');
                if (!c)
                        continue;
                c++;
                while (*c == ' ' || *c == '\t')
                        c++;
                c[strcspn(c, "\n")] = '\0';
                snprintf(m->cpu, sizeof(m->cpu), "%.*s",
                         (int)sizeof(m->cpu) - 1, c);
                break;
        }
        if (f)
                fclose(f);
        f = fopen("/proc/meminfo", "r");
        while (f && fgets(line, sizeof(line), f)) {
                unsigned long long kb;
                if (sscanf(line, "MemTotal: %llu kB", &kb) == 1) {
                        m->mem_gib = (double)kb / (1024.0 * 1024.0);
                        break;
                }
        }
        if (f)
                fclose(f);
        if (gethostname(m->host, sizeof(m->host) - 1) != 0)
                snprintf(m->host, sizeof(m->host), "unknown");
        struct utsname u;
        if (uname(&u) == 0)
                snprintf(m->os, sizeof(m->os), "%s %s %s", u.sysname, u.release,
                         u.machine);
        if (commit) {
                snprintf(m->commit, sizeof(m->commit), "%s", commit);
        } else {
                snprintf(m->commit, sizeof(m->commit), "unknown");
                FILE *g = popen("git rev-parse --short HEAD 2>/dev/null", "r");
                if (g) {
                        if (fgets(line, sizeof(line), g) && line[0] != '\n') {
                                line[strcspn(line, "\n")] = '\0';
                                snprintf(m->commit, sizeof(m->commit), "%.*s",
                                         (int)sizeof(m->commit) - 1, line);
                        }
                        pclose(g);
                }
        }
}

/* ---- measurements ---- */

enum {
        KIND_DECODE,
        KIND_BASE,
        KIND_RULE,
        KIND_ALL,
        KIND_SIZED,
        KIND_PIPE,
        KIND_DECODE_REF
};

typedef struct row {
        char name[PG_RULE_ID_MAX + 16];
        int kind;
        const char *rule_id;     /* KIND_RULE */
        const char *detector;    /* KIND_RULE */
        int partitions, threads; /* KIND_PIPE */
        run_counts_t best;
        double *secs; /* every repeat */
        double ns, marginal;
        bool unstable; /* counts differed between repeats */
        bool skip;     /* not run (--only another row) */
} row_t;

/* One repeat of a row, in this process. */
static void run_row(const row_t *r, const encoded_t *in, const pg_ruleset_t *rs,
                    run_counts_t *c)
{
        char err[512];
        if (r->kind == KIND_DECODE || r->kind == KIND_DECODE_REF)
                run_decode(in, 0, in->n, r->kind == KIND_DECODE_REF, c);
        else if (r->kind == KIND_PIPE) {
                if (run_pipeline(in, rs, r->partitions, r->threads, 0, c, err,
                                 sizeof(err)))
                        die("%s: cannot build the pipeline: %s", r->name, err);
        } else if (run_pipeline(in, rs, 1, 1, r->kind == KIND_SIZED ? in->n : 0,
                                c, err, sizeof(err)))
                die("%s: cannot build the engine: %s", r->name, err);
}

/* The same in a child process, so that every run starts from the same
 * allocator state (see the top comment); the counts come back by pipe. */
static void run_row_forked(const row_t *r, const encoded_t *in,
                           const pg_ruleset_t *rs, run_counts_t *c)
{
        int fd[2];
        if (pipe(fd) != 0)
                die("pipe: %s", strerror(errno));
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0)
                die("fork: %s", strerror(errno));
        if (pid == 0) {
                close(fd[0]);
                run_counts_t mine;
                run_row(r, in, rs, &mine);
                ssize_t w = write(fd[1], &mine, sizeof(mine));
                _exit(w == (ssize_t)sizeof(mine) ? 0 : 1);
        }
        close(fd[1]);
        size_t got = 0;
        while (got < sizeof(*c)) {
                ssize_t n = read(fd[0], (char *)c + got, sizeof(*c) - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fd[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (got != sizeof(*c) || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("%s: the measuring child failed", r->name);
}

/* Repeat k of row r. */
static void measure(row_t *r, int k, const encoded_t *in,
                    const pg_ruleset_t *rs, bool forked)
{
        run_counts_t c;
        if (forked)
                run_row_forked(r, in, rs, &c);
        else
                run_row(r, in, rs, &c);
        r->secs[k] = c.seconds;
        if (k > 0 &&
            (c.alerts != r->best.alerts || c.refunds != r->best.refunds ||
             c.records != r->best.records))
                r->unstable = true;
        if (k == 0 || c.seconds < r->best.seconds)
                r->best = c;
        r->ns = r->best.records
                    ? r->best.seconds * 1e9 / (double)r->best.records
                    : 0;
}

static void usage(void)
{
        fprintf(stderr, "usage: bench_engine --rules FILE --input JSONL "
                        "[--out JSON] [--repeat K] [--commit REV] "
                        "[--in-process] [--partitions P] [--threads-max N] "
                        "[--only NAME]\n"
                        "  --only NAME: run the row NAME alone (decode, "
                        "engine_no_rules, rule:ID, engine_all_rules, "
                        "engine_all_rules_sized, "
                        "pipeline:P16:T2), for a profiler; no --out, no "
                        "marginals\n");
        exit(2);
}

int main(int argc, char **argv)
{
        const char *rules_path = NULL, *input = NULL, *out_path = NULL,
                   *commit = NULL, *only = NULL;
        int repeat = 3, max_threads = 0, partitions = 16;
        bool forked = true;
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i];
                if (strcmp(a, "--in-process") == 0) {
                        forked = false;
                        continue;
                }
                if (i + 1 >= argc)
                        usage();
                if (strcmp(a, "--rules") == 0)
                        rules_path = argv[++i];
                else if (strcmp(a, "--input") == 0)
                        input = argv[++i];
                else if (strcmp(a, "--out") == 0)
                        out_path = argv[++i];
                else if (strcmp(a, "--commit") == 0)
                        commit = argv[++i];
                else if (strcmp(a, "--only") == 0)
                        only = argv[++i];
                else if (strcmp(a, "--threads-max") == 0 ||
                         strcmp(a, "--partitions") == 0) {
                        char *e;
                        long v = strtol(argv[++i], &e, 10);
                        if (*e || v < 1 || v > PG_PIPELINE_MAX_THREADS)
                                usage();
                        if (a[2] == 't')
                                max_threads = (int)v;
                        else
                                partitions = (int)v;
                } else if (strcmp(a, "--repeat") == 0) {
                        char *e;
                        long v = strtol(argv[++i], &e, 10);
                        if (*e || v < 1 || v > 1000)
                                usage();
                        repeat = (int)v;
                } else
                        usage();
        }
        if (!rules_path || !input || (only && out_path))
                usage();

        machine_t m;
        machine_info(&m, commit);
        printf("machine: %ld cores, %s, %.1f GiB, %s (%s)\n", m.cores, m.cpu,
               m.mem_gib, m.os, m.host);
        printf("commit: %s\n", m.commit);

        /* rule sets */
        size_t rlen;
        char *rtext = read_all(rules_path, &rlen);
        char err[4096];
        pg_ruleset_t *full =
            pg_rules_load_buffer(rules_path, rtext, rlen, err, sizeof(err));
        if (!full)
                die("%s", err);
        pg_ruleset_t *none = no_rules_set(full);
        int nr = full->n_rules;
        pg_ruleset_t **one =
            xrealloc(NULL, (size_t)(nr ? nr : 1) * sizeof(*one));
        pg_ruleset_t *views = NULL;
        bool split = split_rules(rules_path, rtext, rlen, full, one) == nr;
        if (!split) {
                fprintf(stderr,
                        "bench_engine: %s does not have the layout of "
                        "rules/default.yaml; one-rule sets are views of the "
                        "loaded set\n",
                        rules_path);
                views = xrealloc(NULL, (size_t)(nr ? nr : 1) * sizeof(*views));
                for (int i = 0; i < nr; i++) {
                        views[i] = *full;
                        views[i].rules = &full->rules[i];
                        views[i].n_rules = 1;
                        one[i] = &views[i];
                }
        }

        /* input */
        encoded_t in;
        memset(&in, 0, sizeof(in));
        double t0 = now_s();
        load_input(input, &in);
        printf("input: %s: %llu lines, %zu records accepted, %llu rejected; "
               "%.1f MB protobuf (%.0f bytes/record), encoded in %.1f s\n",
               input, (unsigned long long)in.lines, in.n,
               (unsigned long long)in.rejected, (double)in.len / 1e6,
               in.n ? (double)in.len / (double)in.n : 0.0, now_s() - t0);
        printf("rules: %s, %d active rules (%s), best of %d, %s\n", rules_path,
               nr, split ? "one-rule files split from the text" : "views",
               repeat, forked ? "one process per run" : "in process");
        if (in.n == 0)
                die("%s: no accepted records", input);

        /* measurements */
        if (!max_threads)
                max_threads = m.cores > 1 ? (int)m.cores : 1;
        int nthr = 0, thr[8];
        for (int t = 1; t <= max_threads && nthr < 8; t *= 2)
                thr[nthr++] = t;
        if (thr[nthr - 1] != max_threads && nthr < 8)
                thr[nthr++] = max_threads;
        int nrows = nr + 5 + nthr;
        row_t *rows = xrealloc(NULL, (size_t)nrows * sizeof(*rows));
        memset(rows, 0, (size_t)nrows * sizeof(*rows));
        snprintf(rows[0].name, sizeof(rows[0].name), "decode");
        rows[0].kind = KIND_DECODE;
        snprintf(rows[1].name, sizeof(rows[1].name), "engine_no_rules");
        rows[1].kind = KIND_BASE;
        for (int i = 0; i < nr; i++) {
                row_t *r = &rows[2 + i];
                snprintf(r->name, sizeof(r->name), "rule:%s",
                         full->rules[i].id);
                r->kind = KIND_RULE;
                r->rule_id = full->rules[i].id;
                r->detector = pg_detector_name(full->rules[i].detector);
        }
        int all = nr + 2;
        snprintf(rows[all].name, sizeof(rows[all].name), "engine_all_rules");
        rows[all].kind = KIND_ALL;
        snprintf(rows[all + 1].name, sizeof(rows[all + 1].name),
                 "engine_all_rules_sized");
        rows[all + 1].kind = KIND_SIZED;
        for (int i = 0; i < nthr; i++) {
                row_t *r = &rows[all + 2 + i];
                snprintf(r->name, sizeof(r->name), "pipeline:P%d:T%d",
                         partitions, thr[i]);
                r->kind = KIND_PIPE;
                r->partitions = partitions;
                r->threads = thr[i];
        }
        snprintf(rows[nrows - 1].name, sizeof(rows[nrows - 1].name),
                 "decode_protobuf_c");
        rows[nrows - 1].kind = KIND_DECODE_REF;
        if (only) {
                int keep = -1;
                for (int i = 0; i < nrows; i++)
                        if (strcmp(rows[i].name, only) == 0)
                                keep = i;
                if (keep < 0)
                        die("--only %s: no such row", only);
                /* every other row is left out (and so are the marginals,
                 * which need rows 0 and 1) */
                for (int i = 0; i < nrows; i++)
                        rows[i].skip = i != keep;
        }

        /* Round robin: repeat k of every row, then k + 1, so that a slow
         * spell of the machine spreads over the rows instead of hitting
         * one of them. */
        const pg_ruleset_t **sets =
            xrealloc(NULL, (size_t)nrows * sizeof(*sets));
        sets[0] = NULL;
        sets[1] = none;
        for (int i = 0; i < nr; i++)
                sets[2 + i] = one[i];
        for (int i = all; i < nrows - 1; i++)
                sets[i] = full;
        sets[nrows - 1] = NULL;
        for (int i = 0; i < nrows; i++)
                rows[i].secs = xrealloc(NULL, (size_t)repeat * sizeof(double));
        fflush(stdout);
        /* on a terminal, which run is going (the timings line of each
         * repeat is printed when it is complete) */
        pg_progress_t prog;
        pg_progress_start(&prog, "bench_engine",
                          (uint64_t)repeat * (uint64_t)nrows);
        for (int k = 0; k < repeat; k++) {
                char line[2048];
                int len = snprintf(line, sizeof(line), "repeat %d/%d:", k + 1,
                                   repeat);
                for (int i = 0; i < nrows; i++) {
                        char note[200];
                        int w = snprintf(note, sizeof(note), "repeat %d, %s",
                                         k + 1, rows[i].name);
                        if (i > 0 && rows[i - 1].secs[k] > 0 && w > 0)
                                snprintf(note + w, sizeof(note) - (size_t)w,
                                         " (the last: %.0f records/s)",
                                         (double)in.n / rows[i - 1].secs[k]);
                        pg_progress_step(&prog, (uint64_t)(k * nrows + i),
                                         note);
                        if (!rows[i].skip)
                                measure(&rows[i], k, &in, sets[i], forked);
                        if (len > 0 && (size_t)len < sizeof(line))
                                len += snprintf(line + len,
                                                sizeof(line) - (size_t)len,
                                                " %.3f", rows[i].secs[k]);
                }
                if (prog.on) /* the progress line gives way */
                        fprintf(stderr, "\r\033[K");
                fprintf(stderr, "%s s\n", line);
        }
        pg_progress_end(&prog);
        free(sets);

        double sum_marginal = 0;
        rows[1].marginal = rows[1].ns - rows[0].ns;
        for (int i = 2; i < nrows; i++) {
                rows[i].marginal =
                    rows[i].ns -
                    rows[rows[i].kind == KIND_DECODE_REF ? 0 : 1].ns;
                if (rows[i].kind == KIND_RULE)
                        sum_marginal += rows[i].marginal;
        }

        printf("\n%-28s %9s %9s %12s %10s %10s %8s %8s %9s\n", "name",
               "records", "seconds", "records/s", "ns/record", "marginal",
               "alerts", "refunds", "worst 1k");
        for (int i = 0; i < nrows; i++) {
                const row_t *r = &rows[i];
                char marg[32] = "-", al[32] = "-", rf[32] = "-", w[32] = "-";
                if (r->skip)
                        continue;
                if (r->kind != KIND_DECODE && !only)
                        snprintf(marg, sizeof(marg), "%+.1f", r->marginal);
                if (r->kind != KIND_DECODE && r->kind != KIND_DECODE_REF) {
                        snprintf(al, sizeof(al), "%llu",
                                 (unsigned long long)r->best.alerts);
                        snprintf(rf, sizeof(rf), "%llu",
                                 (unsigned long long)r->best.refunds);
                        snprintf(w, sizeof(w), "%.2f ms",
                                 r->best.worst_1k_s * 1e3);
                }
                printf("%-28s %9llu %9.3f %12.0f %10.1f %10s %8s %8s %9s%s\n",
                       r->name, (unsigned long long)r->best.records,
                       r->best.seconds,
                       (double)r->best.records / r->best.seconds, r->ns, marg,
                       al, rf, w,
                       r->best.decode_rejects || r->unstable ? " (!)" : "");
        }
        printf("marginal: ns/record minus engine_no_rules' (engine_no_rules "
               "and decode_protobuf_c: minus decode's)\n");
        printf("worst 1k: the longest that 1,024 consecutive records took "
               "(a stall, such as a table growing)\n");
        printf("sum of per-rule marginals: %.1f ns/record; engine_all_rules "
               "marginal: %.1f ns/record\n",
               sum_marginal, rows[all].marginal);
        printf("pipeline:P%d:Tn: the parallel engine, all rules, %d "
               "partition engines on n worker threads, decode in the "
               "caller's thread\n",
               partitions, partitions);
        for (int i = 0; i < nrows; i++)
                if (rows[i].best.decode_rejects || rows[i].unstable)
                        printf("(!) %s: %llu decode rejects, counts %s "
                               "between repeats\n",
                               rows[i].name,
                               (unsigned long long)rows[i].best.decode_rejects,
                               rows[i].unstable ? "differed" : "equal");

        if (out_path) {
                FILE *f = fopen(out_path, "w");
                if (!f)
                        die("%s: %s", out_path, strerror(errno));
                fprintf(
                    f, "{\n  \"machine\": {\"cores\": %ld, \"cpu\": ", m.cores);
                pg_json_str_write(f, m.cpu);
                fprintf(f, ", \"memory_gib\": %.1f, \"host\": ", m.mem_gib);
                pg_json_str_write(f, m.host);
                fprintf(f, ", \"os\": ");
                pg_json_str_write(f, m.os);
                fprintf(f, ", \"compiler\": ");
                pg_json_str_write(f, __VERSION__);
                fprintf(f, "},\n  \"commit\": ");
                pg_json_str_write(f, m.commit);
                fprintf(f, ",\n  \"rules\": ");
                pg_json_str_write(f, rules_path);
                fprintf(f, ",\n  \"rule_sets\": \"%s\"",
                        split ? "split" : "views");
                fprintf(f, ",\n  \"runs\": \"%s\"",
                        forked ? "one process per run" : "in process");
                fprintf(f, ",\n  \"input\": ");
                pg_json_str_write(f, input);
                fprintf(f,
                        ",\n  \"lines\": %llu, \"rejected\": %llu, "
                        "\"records\": %zu, \"protobuf_bytes\": %zu, "
                        "\"repeat\": %d,\n  \"results\": [\n",
                        (unsigned long long)in.lines,
                        (unsigned long long)in.rejected, in.n, in.len, repeat);
                for (int i = 0; i < nrows; i++) {
                        const row_t *r = &rows[i];
                        fprintf(f, "    {\"name\": ");
                        pg_json_str_write(f, r->name);
                        if (r->kind == KIND_PIPE)
                                fprintf(f,
                                        ", \"partitions\": %d, \"threads\": "
                                        "%d",
                                        r->partitions, r->threads);
                        if (r->kind == KIND_RULE) {
                                fprintf(f, ", \"rule_id\": ");
                                pg_json_str_write(f, r->rule_id);
                                fprintf(f, ", \"detector\": ");
                                pg_json_str_write(f, r->detector);
                        }
                        fprintf(f,
                                ", \"records\": %llu, \"seconds\": %.6f, "
                                "\"records_per_second\": %.1f, "
                                "\"ns_per_record\": %.2f, ",
                                (unsigned long long)r->best.records,
                                r->best.seconds,
                                (double)r->best.records / r->best.seconds,
                                r->ns);
                        if (r->kind == KIND_DECODE ||
                            r->kind == KIND_DECODE_REF)
                                fprintf(f, "\"marginal_ns_per_record\": null, "
                                           "\"alerts\": null, \"refunds\": "
                                           "null");
                        else
                                fprintf(f,
                                        "\"marginal_ns_per_record\": %.2f, "
                                        "\"alerts\": %llu, \"refunds\": %llu, "
                                        "\"duplicates\": %llu, \"late\": "
                                        "%llu, \"state_bytes_peak\": %zu, "
                                        "\"worst_1024_records_ms\": %.3f, "
                                        "\"setup_ms\": %.3f",
                                        r->marginal,
                                        (unsigned long long)r->best.alerts,
                                        (unsigned long long)r->best.refunds,
                                        (unsigned long long)r->best.duplicates,
                                        (unsigned long long)r->best.late,
                                        r->best.state_bytes_peak,
                                        r->best.worst_1k_s * 1e3,
                                        r->best.setup_s * 1e3);
                        fprintf(f,
                                ", \"decode_rejects\": %llu, "
                                "\"repeat_seconds\": [",
                                (unsigned long long)r->best.decode_rejects);
                        for (int k = 0; k < repeat; k++)
                                fprintf(f, "%s%.6f", k ? ", " : "", r->secs[k]);
                        fprintf(f, "]}%s\n", i + 1 < nrows ? "," : "");
                }
                fprintf(f, "  ]\n}\n");
                if (fclose(f) != 0)
                        die("%s: write failed", out_path);
                printf("written: %s\n", out_path);
        }

        for (int i = 0; i < nrows; i++)
                free(rows[i].secs);
        free(rows);
        if (split)
                for (int i = 0; i < nr; i++)
                        pg_rules_free(one[i]);
        free(one);
        free(views);
        pg_rules_free(none);
        pg_rules_free(full);
        free(rtext);
        free(in.data);
        free(in.off);
        free(in.size);
        return 0;
}
