/*
 * rules_load.c - rule files: YAML in, one immutable pg_ruleset_t out.
 *
 * The file is parsed with libyaml's document API into a node graph, and the
 * graph is then checked against the schema of docs/RULES.md by walking only
 * the places the schema names (top level, settings, each rule, its params,
 * group_by). That walk never recurses on its own, so the depth of the YAML
 * does not matter, and anchors and aliases (even cyclic ones) cost nothing:
 * the work is bounded by 256 rules times a fixed number of keys each.
 *
 * The schema is strict because a rule file moves money: an unknown key (a
 * typo such as `windw`), a value of the wrong type or out of range, a key
 * given twice in one mapping (YAML keeps the last silently) and a duplicate
 * rule id are all errors, and a file with any error is refused as a whole.
 * Every message starts with FILE:LINE:COLUMN (1-based, from libyaml's node
 * marks, or the parser's problem mark for syntax errors) and says what was
 * found and what was expected.
 *
 * Scalars are typed as in the YAML 1.2 core schema: plain `true`/`false`
 * are booleans, plain decimal numbers are integers or floats, plain `~`,
 * `null` or nothing is null, and everything else, including every quoted
 * scalar, is a string. So `mode: off` is the string "off" (YAML 1.1 would
 * read a boolean), and `enabled: no` is refused rather than guessed.
 *
 * The result is one heap block, the pg_ruleset_t followed by its rules, plus
 * the compiled `where` expressions it owns; pg_rules_free releases all of
 * it. Loading runs on one thread; the result is read-only afterwards and may
 * be shared by any number of threads.
 */
#include "rules.h"
#include "util_hash.h"
#include "util_text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "rules_expr.h"

#define MAX_RULES 256
/* Rule files are small; a cap keeps a wrong path (a log, a device) from
 * being read into memory. */
#define MAX_FILE_BYTES (16 * 1024 * 1024)

#define MS_SECOND INT64_C(1000)
#define MS_MINUTE (60 * MS_SECOND)
#define MS_HOUR (60 * MS_MINUTE)
#define MS_DAY (24 * MS_HOUR)

/* A ruleset and its rules in one allocation: rs must stay the first member,
 * so that pg_rules_free can free the block through the ruleset pointer. */
typedef struct rs_block {
        pg_ruleset_t rs;
        pg_rule_t rules[];
} rs_block_t;

typedef struct ld {
        const char *name; /* for messages */
        const char *buf;  /* the source, to place errors inside scalars */
        size_t len;
        yaml_document_t *doc;
        char *err;
        size_t err_size;
        bool failed;
        /* Errors are collected one per rule: within a rule the first error
         * wins (what follows is usually a consequence); the next rule is
         * checked afresh, so `check` lists every broken rule at once. */
        bool rule_failed;
        int nerr;
        yaml_node_t *lists; /* top-level `lists:` (checked), or NULL */
        /* files named by `include:` (lists only), each with its document */
        struct ld *inc[8];
        int ninc;
        char *inc_buf[8];
        yaml_document_t inc_doc[8];
} ld_t;

#define MAX_INCLUDES 8

static yaml_node_t *find_own_list(ld_t *l, const char *name, size_t len);
static char *read_file(const char *path, size_t *len_out, const char **why,
                       bool *opened);
static void yaml_fail(ld_t *l, const yaml_parser_t *parser);

/* Items of a sequence node; -1 for anything else. */
static ptrdiff_t seq_len(const yaml_node_t *v)
{
        return v->type == YAML_SEQUENCE_NODE
                   ? v->data.sequence.items.top - v->data.sequence.items.start
                   : -1;
}

#define MAX_ERRORS 20

static const char *const detector_names[PG_DET__COUNT] = {
    "retry_duplicate", "repeated_swipe", "amount_mismatch", "refund_anomaly",
    "aggregate"};
static const char *const default_severity[PG_DET__COUNT] = {
    "high", "medium", "high", "high", "medium"};
static const char *const severity_names[] = {"low", "medium", "high",
                                             "critical"};
static const char *const action_names[] = {"alert", "refund"};
static const char *const mode_names[] = {"enforce", "shadow", "off"};
static const char *const fn_names[] = {"count", "sum", "distinct"};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

const char *pg_detector_name(pg_detector_t d)
{
        return (unsigned)d < PG_DET__COUNT ? detector_names[d] : "unknown";
}

const char *pg_mode_name(pg_mode_t m)
{
        return (unsigned)m < (unsigned)N_OF(mode_names) ? mode_names[m]
                                                        : "unknown";
}

/* ---- durations ---- */

/* "<digits><unit>" -> ms. Returns NULL, or why the text is not a duration
 * (a static string). */
static const char *duration_check(const char *s, size_t len, int64_t *ms)
{
        size_t i = 0;
        int64_t v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
                int d = s[i] - '0';
                if (v > (INT64_MAX - d) / 10)
                        return "duration is too large";
                v = v * 10 + d;
                i++;
        }
        if (i == 0)
                return "expected a duration: digits and a unit (ms, s, m, h, "
                       "d) such as 90s, 15m, 500ms";
        if (i == len)
                return "duration needs a unit (ms, s, m, h, d)";
        const char *u = s + i;
        size_t ul = len - i;
        int64_t mult;
        if (ul == 2 && u[0] == 'm' && u[1] == 's')
                mult = 1;
        else if (ul == 1 && u[0] == 's')
                mult = MS_SECOND;
        else if (ul == 1 && u[0] == 'm')
                mult = MS_MINUTE;
        else if (ul == 1 && u[0] == 'h')
                mult = MS_HOUR;
        else if (ul == 1 && u[0] == 'd')
                mult = MS_DAY;
        else
                return "unknown duration unit, expected ms, s, m, h or d";
        if (v > INT64_MAX / mult)
                return "duration is too large";
        *ms = v * mult;
        return NULL;
}

int pg_duration_parse(const char *s, size_t len, int64_t *ms)
{
        int64_t v;
        if (!s || !ms || duration_check(s, len, &v))
                return -1;
        *ms = v;
        return 0;
}

/* ms as the shortest exact duration text ("90s", "2m", "0"). */
static const char *fmt_ms(int64_t ms, char *buf, size_t size)
{
        static const struct {
                int64_t mult;
                const char *unit;
        } units[] = {
            {MS_DAY, "d"}, {MS_HOUR, "h"}, {MS_MINUTE, "m"}, {MS_SECOND, "s"}};
        if (ms == 0) {
                snprintf(buf, size, "0");
                return buf;
        }
        for (int i = 0; i < N_OF(units); i++) {
                if (ms % units[i].mult == 0) {
                        snprintf(buf, size, "%lld%s",
                                 (long long)(ms / units[i].mult),
                                 units[i].unit);
                        return buf;
                }
        }
        snprintf(buf, size, "%lldms", (long long)ms);
        return buf;
}

/* ---- messages ---- */

static bool vfail(ld_t *l, size_t line, size_t col, const char *fmt, va_list ap)
{
        if (l->rule_failed || l->nerr >= MAX_ERRORS)
                return false;
        l->failed = l->rule_failed = true;
        l->nerr++;
        if (!l->err || !l->err_size)
                return false;
        size_t o = strlen(l->err);
        if (o && o + 1 < l->err_size)
                l->err[o++] = '\n';
        if (o + 1 >= l->err_size)
                return false;
        int w = snprintf(l->err + o, l->err_size - o, "%s:%zu:%zu: ", l->name,
                         line, col);
        if (w >= 0 && (size_t)w < l->err_size - o)
                vsnprintf(l->err + o + (size_t)w, l->err_size - o - (size_t)w,
                          fmt, ap);
        return false;
}

/* line and col are 1-based. Always returns false. */
static bool fail_pos(ld_t *l, size_t line, size_t col, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vfail(l, line, col, fmt, ap);
        va_end(ap);
        return false;
}

static bool fail_at(ld_t *l, const yaml_node_t *n, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vfail(l, n->start_mark.line + 1, n->start_mark.column + 1, fmt, ap);
        va_end(ap);
        return false;
}

static const char *show(char *buf, size_t size, const char *s, size_t len)
{
        return pg_show(buf, size, s, len, 64);
}

/* "a, b, c" from a table of names. */
static const char *join(char *buf, size_t size, const char *const *names, int n)
{
        size_t o = 0;
        buf[0] = '\0';
        for (int i = 0; i < n; i++) {
                int w = snprintf(buf + o, size - o, "%s%s", i ? ", " : "",
                                 names[i]);
                if (w < 0 || (size_t)w >= size - o)
                        break;
                o += (size_t)w;
        }
        return buf;
}

static const char *field_names(char *buf, size_t size)
{
        const char *names[PG_F__COUNT];
        for (int f = 0; f < PG_F__COUNT; f++) {
                names[f] = pg_record_field_name((pg_field_t)f);
                if (!names[f])
                        names[f] = "?";
        }
        return join(buf, size, names, PG_F__COUNT);
}

/* ---- nodes and scalar types ---- */

enum skind { SK_NULL, SK_BOOL, SK_INT, SK_FLOAT, SK_STR };

static const char *stext(const yaml_node_t *n)
{
        return (const char *)n->data.scalar.value;
}

static size_t slen(const yaml_node_t *n)
{
        return n->data.scalar.length;
}

static bool text_is(const char *s, size_t len, const char *w)
{
        return strlen(w) == len && memcmp(s, w, len) == 0;
}

static bool all_digits(const char *s, size_t len)
{
        if (!len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

static bool is_float(const char *s, size_t len)
{
        size_t i = 0;
        if (i < len && (s[i] == '+' || s[i] == '-'))
                i++;
        const char *r = s + i;
        size_t rl = len - i;
        if (text_is(r, rl, ".inf") || text_is(r, rl, ".Inf") ||
            text_is(r, rl, ".INF"))
                return true;
        if (i == 0 && (text_is(s, len, ".nan") || text_is(s, len, ".NaN") ||
                       text_is(s, len, ".NAN")))
                return true;
        size_t d0 = i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
                i++;
        size_t ndig = i - d0;
        if (i < len && s[i] == '.') {
                i++;
                size_t f0 = i;
                while (i < len && s[i] >= '0' && s[i] <= '9')
                        i++;
                ndig += i - f0;
        } else if (i == len || (s[i] != 'e' && s[i] != 'E')) {
                return false; /* an integer or not a number */
        }
        if (!ndig)
                return false;
        if (i < len && (s[i] == 'e' || s[i] == 'E')) {
                i++;
                if (i < len && (s[i] == '+' || s[i] == '-'))
                        i++;
                if (!all_digits(s + i, len - i))
                        return false;
                i = len;
        }
        return i == len;
}

/* The YAML 1.2 core schema type of a scalar: only plain scalars can be
 * anything but a string. */
static enum skind scalar_kind(const yaml_node_t *n)
{
        if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                return SK_STR;
        const char *s = stext(n);
        size_t len = slen(n);
        if (len == 0 || text_is(s, len, "~") || text_is(s, len, "null") ||
            text_is(s, len, "Null") || text_is(s, len, "NULL"))
                return SK_NULL;
        if (text_is(s, len, "true") || text_is(s, len, "True") ||
            text_is(s, len, "TRUE") || text_is(s, len, "false") ||
            text_is(s, len, "False") || text_is(s, len, "FALSE"))
                return SK_BOOL;
        size_t i = (s[0] == '+' || s[0] == '-') ? 1 : 0;
        if (all_digits(s + i, len - i))
                return SK_INT;
        if (is_float(s, len))
                return SK_FLOAT;
        return SK_STR;
}

static bool is_null(const yaml_node_t *n)
{
        return n->type == YAML_SCALAR_NODE && scalar_kind(n) == SK_NULL;
}

/* What a node is, for "found ..." in messages. */
static const char *node_desc(const yaml_node_t *n, char *buf, size_t size)
{
        char tmp[300];
        switch (n->type) {
        case YAML_MAPPING_NODE:
                return "a mapping";
        case YAML_SEQUENCE_NODE:
                return "a list";
        case YAML_SCALAR_NODE:
                break;
        default:
                return "nothing";
        }
        const char *what;
        switch (scalar_kind(n)) {
        case SK_NULL:
                return "null (an empty value)";
        case SK_BOOL:
                what = "the boolean";
                break;
        case SK_INT:
                what = "the integer";
                break;
        case SK_FLOAT:
                what = "the number";
                break;
        default:
                what = "the string";
                break;
        }
        snprintf(buf, size, "%s '%s'", what,
                 show(tmp, sizeof(tmp), stext(n), slen(n)));
        return buf;
}

/* Tags change what a node means; the schema has no use for them, so any
 * tag other than the default of the node's kind is refused. (libyaml
 * gives untagged nodes the default tag, so `!!str` cannot be told apart.) */
static bool check_tag(ld_t *l, const yaml_node_t *n)
{
        const char *def = n->type == YAML_MAPPING_NODE    ? YAML_MAP_TAG
                          : n->type == YAML_SEQUENCE_NODE ? YAML_SEQ_TAG
                                                          : YAML_STR_TAG;
        const char *tag = (const char *)n->tag;
        if (!tag || strcmp(tag, def) == 0)
                return true;
        char b[300];
        return fail_at(l, n, "found the YAML tag '%s', expected no tag",
                       show(b, sizeof(b), tag, strlen(tag)));
}

static yaml_node_t *get_node(ld_t *l, int idx)
{
        return yaml_document_get_node(l->doc, idx);
}

/*
 * Check that map is a mapping whose keys are among keys[0..n), each at most
 * once, and set vals[i] to the value of keys[i] (NULL when absent). ctx
 * names the mapping in messages ("params of rule 'x'"). The walk stops at
 * the first unknown or repeated key, so it looks at most n + 1 pairs
 * however large the mapping is.
 */
static bool scan_map(ld_t *l, yaml_node_t *map, const char *ctx,
                     const char *const *keys, int n, yaml_node_t **vals)
{
        char b1[300], b2[300];
        yaml_node_t *knodes[16];
        for (int i = 0; i < n; i++)
                vals[i] = knodes[i] = NULL;
        if (!check_tag(l, map))
                return false;
        if (map->type != YAML_MAPPING_NODE)
                return fail_at(l, map, "found %s for %s, expected a mapping",
                               node_desc(map, b1, sizeof(b1)), ctx);
        for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
             p < map->data.mapping.pairs.top; p++) {
                yaml_node_t *k = get_node(l, p->key);
                yaml_node_t *v = get_node(l, p->value);
                if (!k || !v)
                        return fail_at(l, map, "malformed mapping in %s", ctx);
                if (!check_tag(l, k))
                        return false;
                if (k->type != YAML_SCALAR_NODE)
                        return fail_at(l, k,
                                       "found %s as a key in %s, expected a "
                                       "key name (one of: %s)",
                                       node_desc(k, b1, sizeof(b1)), ctx,
                                       join(b2, sizeof(b2), keys, n));
                int i = 0;
                while (i < n && !text_is(stext(k), slen(k), keys[i]))
                        i++;
                if (i == n)
                        return fail_at(l, k,
                                       "unknown key '%s' in %s "
                                       "(expected: %s)",
                                       show(b1, sizeof(b1), stext(k), slen(k)),
                                       ctx, join(b2, sizeof(b2), keys, n));
                if (vals[i])
                        return fail_at(l, k,
                                       "duplicate key '%s' in %s (first at "
                                       "line %zu, column %zu), expected each "
                                       "key once",
                                       keys[i], ctx,
                                       knodes[i]->start_mark.line + 1,
                                       knodes[i]->start_mark.column + 1);
                vals[i] = v;
                knodes[i] = k;
        }
        return true;
}

/* ---- typed values ---- */

static bool want_scalar(ld_t *l, const yaml_node_t *v, const char *what,
                        const char *expected)
{
        char b[300];
        if (!check_tag(l, v))
                return false;
        if (v->type != YAML_SCALAR_NODE || is_null(v))
                return fail_at(l, v, "found %s for %s, expected %s",
                               node_desc(v, b, sizeof(b)), what, expected);
        return true;
}

/* A string-typed scalar (plain text that is not a number, bool or null,
 * or any quoted or block scalar). */
static bool want_string(ld_t *l, const yaml_node_t *v, const char *what,
                        const char *expected)
{
        char b[300];
        if (!want_scalar(l, v, what, expected))
                return false;
        if (scalar_kind(v) != SK_STR)
                return fail_at(l, v,
                               "found %s for %s, expected %s (quote it "
                               "to make it a string)",
                               node_desc(v, b, sizeof(b)), what, expected);
        return true;
}

/* One of names[0..n): *out is its index. */
static bool get_choice(ld_t *l, const yaml_node_t *v, const char *what,
                       const char *const *names, int n, int *out)
{
        char b1[300], b2[300];
        join(b2, sizeof(b2), names, n);
        char expected[340];
        snprintf(expected, sizeof(expected), "one of: %s", b2);
        if (!want_scalar(l, v, what, expected))
                return false;
        for (int i = 0; i < n; i++) {
                if (text_is(stext(v), slen(v), names[i])) {
                        *out = i;
                        return true;
                }
        }
        return fail_at(l, v, "found '%s' for %s, expected %s",
                       show(b1, sizeof(b1), stext(v), slen(v)), what, expected);
}

/* A decimal integer >= lo. Leading zeros are refused: YAML 1.1 readers
 * take 010 for octal 8, and a rule file must mean one thing. */
static bool get_int(ld_t *l, const yaml_node_t *v, const char *what, int64_t lo,
                    int64_t *out)
{
        char b[300];
        char expected[64];
        snprintf(expected, sizeof(expected), "an integer >= %lld",
                 (long long)lo);
        if (!want_scalar(l, v, what, expected))
                return false;
        if (scalar_kind(v) != SK_INT)
                return fail_at(l, v, "found %s for %s, expected %s",
                               node_desc(v, b, sizeof(b)), what, expected);
        const char *s = stext(v);
        size_t len = slen(v);
        size_t i = 0;
        bool neg = false;
        if (s[0] == '+' || s[0] == '-')
                neg = s[i++] == '-';
        if (len - i > 1 && s[i] == '0')
                return fail_at(l, v,
                               "found '%s' for %s, expected a decimal integer "
                               "without leading zeros",
                               show(b, sizeof(b), s, len), what);
        int64_t x = 0;
        for (; i < len; i++) {
                int d = s[i] - '0';
                if (x > (INT64_MAX - d) / 10)
                        return fail_at(l, v,
                                       "found '%s' for %s, which is too "
                                       "large, expected %s",
                                       show(b, sizeof(b), s, len), what,
                                       expected);
                x = x * 10 + d;
        }
        if (neg)
                x = -x;
        if (x < lo)
                return fail_at(l, v, "found %lld for %s, expected %s",
                               (long long)x, what, expected);
        *out = x;
        return true;
}

/* A duration within [lo, hi]. */
static bool get_duration(ld_t *l, const yaml_node_t *v, const char *what,
                         int64_t lo, int64_t hi, int64_t *out)
{
        char b1[300], b2[32], b3[32];
        char expected[128];
        snprintf(expected, sizeof(expected), "a duration in %s..%s",
                 fmt_ms(lo, b2, sizeof(b2)), fmt_ms(hi, b3, sizeof(b3)));
        if (!want_scalar(l, v, what, expected))
                return false;
        int64_t ms = 0;
        const char *why = duration_check(stext(v), slen(v), &ms);
        if (why)
                return fail_at(l, v, "found '%s' for %s: %s",
                               show(b1, sizeof(b1), stext(v), slen(v)), what,
                               why);
        if (ms < lo || ms > hi)
                return fail_at(l, v,
                               "found %s for %s, which is out of range, "
                               "expected %s",
                               show(b1, sizeof(b1), stext(v), slen(v)), what,
                               expected);
        *out = ms;
        return true;
}

/* A record field name. */
static bool get_field(ld_t *l, const yaml_node_t *v, const char *what,
                      pg_field_t *out)
{
        char b1[300], b2[400];
        char expected[440];
        snprintf(expected, sizeof(expected), "a record field (one of: %s)",
                 field_names(b2, sizeof(b2)));
        if (!want_string(l, v, what, expected))
                return false;
        int f = pg_record_field_lookup(stext(v), slen(v));
        if (f < 0 || f >= PG_F__COUNT)
                return fail_at(l, v, "found '%s' for %s, expected %s",
                               show(b1, sizeof(b1), stext(v), slen(v)), what,
                               expected);
        *out = (pg_field_t)f;
        return true;
}

/* ---- where: placing an expression error in the file ---- */

/* Byte offset where 0-based line `line` starts (lines end at '\n'). */
static size_t line_start(const ld_t *l, size_t line)
{
        size_t pos = 0;
        while (line > 0 && pos < l->len) {
                const char *nl = memchr(l->buf + pos, '\n', l->len - pos);
                if (!nl)
                        return l->len;
                pos = (size_t)(nl - l->buf) + 1;
                line--;
        }
        return pos;
}

/* Bytes of the UTF-8 character at pos (libyaml's columns count
 * characters). */
static size_t char_width(const ld_t *l, size_t pos)
{
        size_t w = 1;
        while (pos + w < l->len &&
               ((unsigned char)l->buf[pos + w] & 0xc0) == 0x80)
                w++;
        return w;
}

/*
 * Line and column (1-based) of byte offset off of the value of scalar
 * n. Exact for a scalar on one line (plain or quoted) and for a literal
 * block without escapes; elsewhere close: a line break with the next
 * line's indentation counts as the one character it folds into, and
 * quote escapes are counted as written.
 */
static void scalar_pos(const ld_t *l, const yaml_node_t *n, size_t off,
                       size_t *line_out, size_t *col_out)
{
        size_t line = n->start_mark.line;
        size_t col = n->start_mark.column;
        size_t pos = line_start(l, line);
        for (size_t c = 0; c < col && pos < l->len; c++)
                pos += char_width(l, pos);
        yaml_scalar_style_t st = n->data.scalar.style;
        bool block =
            st == YAML_LITERAL_SCALAR_STYLE || st == YAML_FOLDED_SCALAR_STYLE;
        size_t indent = 0;
        if (block) {
                /* The content starts on the line after the indicator,
                 * at the indentation of that line. */
                const char *nl = memchr(l->buf + pos, '\n', l->len - pos);
                pos = nl ? (size_t)(nl - l->buf) + 1 : l->len;
                line++;
                while (pos + indent < l->len && l->buf[pos + indent] == ' ')
                        indent++;
                pos += indent;
                col = indent;
        } else if (st == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                   st == YAML_DOUBLE_QUOTED_SCALAR_STYLE) {
                pos++;
                col++;
        }
        size_t v = 0;
        while (v < off && pos < l->len) {
                char ch = l->buf[pos];
                if (ch == '\r') {
                        pos++;
                        continue;
                }
                if (ch == '\n') {
                        pos++;
                        line++;
                        col = 0;
                        while (pos < l->len &&
                               (l->buf[pos] == ' ' ||
                                (!block && l->buf[pos] == '\t')) &&
                               (!block || col < indent)) {
                                pos++;
                                col++;
                        }
                        v++;
                        continue;
                }
                size_t w = char_width(l, pos);
                pos += w;
                v += w;
                col++;
        }
        *line_out = line + 1;
        *col_out = col + 1;
}

/* ---- rules ---- */

/* [A-Za-z0-9_.-]{1,64} */
static bool valid_id(const char *s, size_t len)
{
        if (len == 0 || len > PG_RULE_ID_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char ch = s[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
                      ch == '-'))
                        return false;
        }
        return true;
}

static const char *const rule_keys[] = {
    "id",    "detector", "description", "severity",    "action",
    "mode",  "enabled",  "params",      "where",       "except",
    "owner", "tags",     "cooldown",    "cooldown_key"};
enum {
        RK_ID,
        RK_DETECTOR,
        RK_DESCRIPTION,
        RK_SEVERITY,
        RK_ACTION,
        RK_MODE,
        RK_ENABLED,
        RK_PARAMS,
        RK_WHERE,
        RK_EXCEPT,
        RK_OWNER,
        RK_TAGS,
        RK_COOLDOWN,
        RK_COOLDOWN_KEY,
        RK__COUNT
};

static const char *const agg_keys[] = {"where",      "group_by", "function",
                                       "field",      "window",   "threshold",
                                       "on_findings"};
enum {
        AK_WHERE,
        AK_GROUP_BY,
        AK_FUNCTION,
        AK_FIELD,
        AK_WINDOW,
        AK_THRESHOLD,
        AK_ON_FINDINGS
};

/* on_findings: a list of finding names (an incident rule) */
static bool load_on_findings(ld_t *l, const yaml_node_t *v, const char *rname,
                             pg_rule_t *r)
{
        static const char *const names[] = PG_RULE_FINDING_NAMES;
        char b[300], b2[400];
        if (!v || is_null(v))
                return true;
        if (!check_tag(l, v))
                return false;
        ptrdiff_t n = seq_len(v);
        if (n < 1)
                return fail_at(l, v,
                               "found %s for on_findings of %s, expected a "
                               "list of findings (%s)",
                               node_desc(v, b, sizeof(b)), rname,
                               join(b2, sizeof(b2), names, PG_RULE_N_FINDINGS));
        for (ptrdiff_t i = 0; i < n; i++) {
                yaml_node_t *it = get_node(l, v->data.sequence.items.start[i]);
                int k = 0;
                while (it && it->type == YAML_SCALAR_NODE &&
                       k < PG_RULE_N_FINDINGS &&
                       !(slen(it) == strlen(names[k]) &&
                         !memcmp(stext(it), names[k], slen(it))))
                        k++;
                if (!it || it->type != YAML_SCALAR_NODE ||
                    k == PG_RULE_N_FINDINGS)
                        return fail_at(
                            l, it ? it : v,
                            "found %s in on_findings of %s, "
                            "expected one of: %s",
                            it ? node_desc(it, b, sizeof(b)) : "?", rname,
                            join(b2, sizeof(b2), names, PG_RULE_N_FINDINGS));
                r->on_findings |= 1u << k;
        }
        return true;
}

static bool load_where(ld_t *l, const yaml_node_t *v, const char *rname,
                       pg_rule_t *r)
{
        char what[128];
        snprintf(what, sizeof(what), "where of %s", rname);
        if (is_null(v))
                return true;
        if (!want_string(l, v, what, "a filter expression (a string)"))
                return false;
        const char *s = stext(v);
        size_t len = slen(v);
        size_t i = 0;
        while (i < len &&
               (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
                i++;
        if (i == len)
                return true; /* an empty filter keeps every record */
        char why[512];
        size_t off = 0;
        r->where = pg_expr_compile(s, len, why, sizeof(why), &off);
        if (r->where)
                return true;
        size_t line, col;
        scalar_pos(l, v, off, &line, &col);
        return fail_pos(l, line, col, "in %s: %s", what, why);
}

/* ---------------------------------------------------------------------
 * Named lists, rule-level where / except, owner, tags
 * ------------------------------------------------------------------- */

/* A list name: [A-Za-z0-9_]{1,64} */
static bool valid_list_name(const char *s, size_t len)
{
        if (len == 0 || len > PG_RULE_ID_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char ch = s[i];
                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '_'))
                        return false;
        }
        return true;
}

/* A list value as an expression literal: 'text' (or "text"); false when it
 * holds both quote characters. */
static bool put_literal(char *out, size_t size, size_t *o, const char *s,
                        size_t len)
{
        char q = memchr(s, '\'', len) ? '"' : '\'';
        if (q == '"' && memchr(s, '"', len))
                return false;
        if (*o + len + 4 >= size)
                return false;
        out[(*o)++] = q;
        memcpy(out + *o, s, len);
        *o += len;
        out[(*o)++] = q;
        return true;
}

/* A list of 1 to PG_EXPR_MAX_LIST values of 1 to PG_STR_MAX bytes, each
 * with at most one kind of quote: they become expression literals. Used
 * by named lists and inline except lists. */
static bool check_values(ld_t *l, yaml_node_t *s, const char *what)
{
        char b[300];
        if (!check_tag(l, s))
                return false;
        ptrdiff_t n = seq_len(s);
        if (n < 1 || n > PG_EXPR_MAX_LIST)
                return fail_at(l, s,
                               "found %s for %s, expected a list of 1 to %d "
                               "values",
                               node_desc(s, b, sizeof(b)), what,
                               PG_EXPR_MAX_LIST);
        for (ptrdiff_t i = 0; i < n; i++) {
                yaml_node_t *it = get_node(l, s->data.sequence.items.start[i]);
                if (!it || it->type != YAML_SCALAR_NODE || is_null(it) ||
                    slen(it) == 0 || slen(it) > PG_STR_MAX)
                        return fail_at(l, it ? it : s,
                                       "found %s in %s, expected a value of 1 "
                                       "to %d bytes",
                                       it ? node_desc(it, b, sizeof(b)) : "?",
                                       what, PG_STR_MAX);
                if (memchr(stext(it), '\'', slen(it)) &&
                    memchr(stext(it), '"', slen(it)))
                        return fail_at(l, it,
                                       "found a value with both ' and \" in "
                                       "%s, expected at most one kind of quote",
                                       what);
        }
        return true;
}

/* `lists:` at the top level: name -> list of 1 to PG_EXPR_MAX_LIST
 * scalars. */
static bool load_lists(ld_t *l, yaml_node_t *v)
{
        char b[300];
        l->lists = NULL;
        if (!v || is_null(v))
                return true;
        if (!check_tag(l, v))
                return false;
        if (v->type != YAML_MAPPING_NODE)
                return fail_at(l, v,
                               "found %s for lists, expected a mapping of "
                               "list names to lists of values",
                               node_desc(v, b, sizeof(b)));
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
             p < v->data.mapping.pairs.top; p++) {
                yaml_node_t *k = get_node(l, p->key);
                yaml_node_t *s = get_node(l, p->value);
                if (!k || !s || k->type != YAML_SCALAR_NODE ||
                    !valid_list_name(stext(k), slen(k)))
                        return fail_at(l, k ? k : v,
                                       "found %s as a list name, expected 1 "
                                       "to 64 of A-Z a-z 0-9 _",
                                       k ? node_desc(k, b, sizeof(b)) : "?");
                for (int f = 0; f < l->ninc; f++)
                        if (find_own_list(l->inc[f], stext(k), slen(k)))
                                return fail_at(
                                    l, k,
                                    "list '%s' is also defined in "
                                    "%s, expected each name once",
                                    show(b, sizeof(b), stext(k), slen(k)),
                                    l->inc[f]->name);
                for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < p;
                     q++) {
                        yaml_node_t *k2 = get_node(l, q->key);
                        if (k2 && text_is(stext(k2), slen(k2), stext(k)) &&
                            slen(k2) == slen(k))
                                return fail_at(
                                    l, k,
                                    "duplicate list name '%s', "
                                    "expected each name once",
                                    show(b, sizeof(b), stext(k), slen(k)));
                }
                char what[128];
                snprintf(what, sizeof(what), "list '%.*s'", (int)slen(k),
                         stext(k));
                if (!check_values(l, s, what))
                        return false;
        }
        l->lists = v;
        return true;
}

/* The list node called name in l's own lists, or NULL. */
static yaml_node_t *find_own_list(ld_t *l, const char *name, size_t len)
{
        if (!l->lists)
                return NULL;
        for (yaml_node_pair_t *p = l->lists->data.mapping.pairs.start;
             p < l->lists->data.mapping.pairs.top; p++) {
                yaml_node_t *k = get_node(l, p->key);
                if (k && slen(k) == len && !memcmp(stext(k), name, len))
                        return get_node(l, p->value);
        }
        return NULL;
}

/* The list node called name, in the file or one it includes; *owner is
 * the loader state of the file that holds it. */
static yaml_node_t *find_list(ld_t *l, const char *name, size_t len,
                              ld_t **owner)
{
        yaml_node_t *n = find_own_list(l, name, len);
        *owner = l;
        for (int i = 0; !n && i < l->ninc; i++) {
                n = find_own_list(l->inc[i], name, len);
                *owner = l->inc[i];
        }
        return n;
}

/*
 * `include:` a list of files (paths relative to this file's directory),
 * each a YAML mapping with `lists:` only: shared lists several rule files
 * use. Errors in an included file name that file. List names are unique
 * across all of them.
 */
static bool load_includes(ld_t *l, yaml_node_t *v)
{
        char b[300];
        if (!v || is_null(v))
                return true;
        if (!check_tag(l, v))
                return false;
        ptrdiff_t n = seq_len(v);
        if (n < 1 || n > MAX_INCLUDES)
                return fail_at(l, v,
                               "found %s for include, expected a list of 1 "
                               "to %d file names",
                               node_desc(v, b, sizeof(b)), MAX_INCLUDES);
        const char *slash = strrchr(l->name, '/');
        int dirlen = slash ? (int)(slash - l->name) + 1 : 0;
        for (ptrdiff_t i = 0; i < n; i++) {
                yaml_node_t *it = get_node(l, v->data.sequence.items.start[i]);
                if (!it || it->type != YAML_SCALAR_NODE || slen(it) == 0 ||
                    slen(it) > 200)
                        return fail_at(l, it ? it : v,
                                       "found %s in include, expected a file "
                                       "name",
                                       it ? node_desc(it, b, sizeof(b)) : "?");
                char path[512];
                if (stext(it)[0] == '/')
                        snprintf(path, sizeof(path), "%.*s", (int)slen(it),
                                 stext(it));
                else
                        snprintf(path, sizeof(path), "%.*s%.*s", dirlen,
                                 l->name, (int)slen(it), stext(it));
                size_t len = 0;
                const char *why = NULL;
                bool opened;
                char *buf = read_file(path, &len, &why, &opened);
                if (!buf)
                        return fail_at(l, it,
                                       "cannot read included file %s: %s", path,
                                       why);
                int k = l->ninc;
                ld_t *sub = calloc(1, sizeof(*sub));
                if (!sub) {
                        free(buf);
                        return fail_pos(l, 1, 1, "out of memory");
                }
                sub->name = strdup(path);
                sub->buf = buf;
                sub->len = len;
                sub->err = l->err;
                sub->err_size = l->err_size;
                l->inc[k] = sub;
                l->inc_buf[k] = buf;
                l->ninc++;
                yaml_parser_t parser;
                yaml_parser_initialize(&parser);
                yaml_parser_set_input_string(&parser,
                                             (const unsigned char *)buf, len);
                if (!yaml_parser_load(&parser, &l->inc_doc[k])) {
                        yaml_fail(sub, &parser);
                        yaml_parser_delete(&parser);
                        memset(&l->inc_doc[k], 0, sizeof(l->inc_doc[k]));
                        l->failed = true;
                        l->nerr = sub->nerr;
                        return false;
                }
                yaml_parser_delete(&parser);
                sub->doc = &l->inc_doc[k];
                sub->nerr = l->nerr;
                yaml_node_t *root = yaml_document_get_root_node(sub->doc);
                static const char *const keys[] = {"lists"};
                yaml_node_t *lv[1];
                bool ok = root &&
                          scan_map(sub, root, "an included file", keys, 1, lv);
                if (root && !ok) {
                        /* scan_map reported it */
                } else if (!root) {
                        fail_pos(sub, 1, 1,
                                 "found an empty file, expected a mapping "
                                 "with lists");
                }
                if (ok) {
                        /* names unique across the files included so far */
                        l->ninc--;
                        ok = load_lists(sub, lv[0]);
                        l->ninc++;
                        for (int f = 0; ok && sub->lists && f < k; f++)
                                for (yaml_node_pair_t *p =
                                         sub->lists->data.mapping.pairs.start;
                                     ok &&
                                     p < sub->lists->data.mapping.pairs.top;
                                     p++) {
                                        yaml_node_t *kn = get_node(sub, p->key);
                                        if (find_own_list(l->inc[f], stext(kn),
                                                          slen(kn)))
                                                ok = fail_at(
                                                    sub, kn,
                                                    "list '%s' is also "
                                                    "defined in %s, expected "
                                                    "each name once",
                                                    show(b, sizeof(b),
                                                         stext(kn), slen(kn)),
                                                    l->inc[f]->name);
                                }
                }
                l->nerr = sub->nerr;
                if (!ok || sub->failed) {
                        l->failed = true;
                        return false;
                }
        }
        return true;
}

/* Free what load_includes kept. */
static void free_includes(ld_t *l)
{
        for (int i = 0; i < l->ninc; i++) {
                if (l->inc[i]->doc)
                        yaml_document_delete(l->inc[i]->doc);
                free((char *)l->inc[i]->name);
                free(l->inc_buf[i]);
                free(l->inc[i]);
        }
        l->ninc = 0;
}

/* Append the values of list node s as "[a, b]" to out. */
static bool put_list(ld_t *l, yaml_node_t *s, char *out, size_t size, size_t *o)
{
        if (*o + 2 >= size)
                return false;
        out[(*o)++] = '[';
        for (yaml_node_item_t *it = s->data.sequence.items.start;
             it < s->data.sequence.items.top; it++) {
                yaml_node_t *n = get_node(l, *it);
                if (it != s->data.sequence.items.start) {
                        if (*o + 2 >= size)
                                return false;
                        out[(*o)++] = ',';
                }
                if (!n || !put_literal(out, size, o, stext(n), slen(n)))
                        return false;
        }
        if (*o + 2 >= size)
                return false;
        out[(*o)++] = ']';
        out[*o] = '\0';
        return true;
}

/* The rule-level filter: `where` (with @list names replaced by their
 * values) and not `except` (merchant_id / terminal_id lists). */
static bool load_filter(ld_t *l, yaml_node_t *wv, yaml_node_t *ev,
                        const char *rname, pg_rule_t *r)
{
        char what[128], b[300], why[512];
        size_t cap = PG_EXPR_MAX_LEN, o = 0;
        char *src = malloc(cap + 1);
        if (!src)
                return fail_pos(l, 1, 1, "out of memory");
        src[0] = '\0';
        bool ok = true;
        if (wv && !is_null(wv)) {
                snprintf(what, sizeof(what), "where of %s", rname);
                if (!want_string(l, wv, what,
                                 "a filter expression (a "
                                 "string)")) {
                        free(src);
                        return false;
                }
                const char *s = stext(wv);
                size_t len = slen(wv);
                bool has_list = memchr(s, '@', len) != NULL;
                if (!has_list) {
                        /* compile alone first: exact error positions */
                        size_t off = 0;
                        pg_expr_t *x =
                            pg_expr_compile(s, len, why, sizeof(why), &off);
                        if (!x) {
                                size_t line, col;
                                scalar_pos(l, wv, off, &line, &col);
                                free(src);
                                return fail_pos(l, line, col, "in %s: %s", what,
                                                why);
                        }
                        pg_expr_free(x);
                }
                src[o++] = '(';
                for (size_t i = 0; i < len && ok; i++) {
                        if (s[i] != '@') {
                                if (o + 2 >= cap)
                                        ok = false;
                                else
                                        src[o++] = s[i];
                                continue;
                        }
                        size_t j = i + 1;
                        while (j < len && valid_list_name(s + j, 1))
                                j++;
                        ld_t *own = l;
                        yaml_node_t *lst =
                            find_list(l, s + i + 1, j - i - 1, &own);
                        if (!lst) {
                                size_t line, col;
                                scalar_pos(l, wv, i, &line, &col);
                                free(src);
                                return fail_pos(
                                    l, line, col,
                                    "in %s: unknown list '@%s', expected a "
                                    "name from the top-level lists",
                                    what,
                                    show(b, sizeof(b), s + i + 1, j - i - 1));
                        }
                        ok = put_list(own, lst, src, cap, &o);
                        i = j - 1;
                }
                if (o + 2 < cap)
                        src[o++] = ')';
                else
                        ok = false;
        }
        if (ok && ev && !is_null(ev)) {
                static const char *const ex_keys[] = {"merchant_id",
                                                      "terminal_id"};
                yaml_node_t *ex[2];
                snprintf(what, sizeof(what), "except of %s", rname);
                if (!scan_map(l, ev, what, ex_keys, 2, ex)) {
                        free(src);
                        return false;
                }
                bool first = true;
                for (int k = 0; k < 2 && ok; k++) {
                        if (!ex[k])
                                continue;
                        yaml_node_t *s = ex[k];
                        ld_t *own = l;
                        if (s->type == YAML_SCALAR_NODE && slen(s) > 1 &&
                            stext(s)[0] == '@') {
                                /* a named list: checked when it loaded */
                                yaml_node_t *lst = find_list(l, stext(s) + 1,
                                                             slen(s) - 1, &own);
                                if (!lst) {
                                        free(src);
                                        return fail_at(
                                            l, s,
                                            "in %s: unknown list '%s', "
                                            "expected a name from the "
                                            "top-level lists",
                                            what,
                                            show(b, sizeof(b), stext(s),
                                                 slen(s)));
                                }
                                s = lst;
                        } else {
                                char lw[160];
                                snprintf(lw, sizeof(lw), "%s.%s", what,
                                         ex_keys[k]);
                                if (!check_values(l, s, lw)) {
                                        free(src);
                                        return false;
                                }
                        }
                        int w = snprintf(src + o, cap - o, "%s%s%s in ",
                                         o ? (first ? " and not (" : " or ")
                                           : (first ? "not (" : " or "),
                                         "", ex_keys[k]);
                        if (w < 0 || (size_t)w >= cap - o)
                                ok = false;
                        else
                                o += (size_t)w;
                        ok = ok && put_list(own, s, src, cap, &o);
                        first = false;
                }
                if (ok && !first) {
                        if (o + 2 < cap)
                                src[o++] = ')';
                        else
                                ok = false;
                }
        }
        src[o] = '\0';
        if (!ok) {
                free(src);
                return fail_at(l, wv ? wv : ev,
                               "in %s: the filter is too long once lists "
                               "are expanded (or a value holds both quote "
                               "characters), expected at most %d bytes",
                               rname, PG_EXPR_MAX_LEN);
        }
        if (o == 0) {
                free(src);
                return true;
        }
        size_t off = 0;
        r->filter = pg_expr_compile(src, o, why, sizeof(why), &off);
        free(src);
        if (!r->filter)
                return fail_at(l, wv ? wv : ev, "in the filter of %s: %s",
                               rname, why);
        return true;
}

/* owner: a string; tags: a list of short strings. */
static bool load_meta(ld_t *l, yaml_node_t *ov, yaml_node_t *tv,
                      const char *rname, pg_rule_t *r)
{
        char what[128], b[300];
        if (ov && !is_null(ov)) {
                snprintf(what, sizeof(what), "owner of %s", rname);
                if (!want_string(l, ov, what, "a name (a string)"))
                        return false;
                snprintf(r->owner, sizeof(r->owner), "%.*s", (int)slen(ov),
                         stext(ov));
        }
        if (tv && !is_null(tv)) {
                snprintf(what, sizeof(what), "tags of %s", rname);
                if (!check_tag(l, tv))
                        return false;
                if (tv->type != YAML_SEQUENCE_NODE)
                        return fail_at(l, tv,
                                       "found %s for %s, expected a list of "
                                       "tags",
                                       node_desc(tv, b, sizeof(b)), what);
                size_t o = 0;
                for (yaml_node_item_t *it = tv->data.sequence.items.start;
                     it < tv->data.sequence.items.top; it++) {
                        yaml_node_t *n = get_node(l, *it);
                        if (!n || !valid_id(stext(n), slen(n)) ||
                            n->type != YAML_SCALAR_NODE)
                                return fail_at(
                                    l, n ? n : tv,
                                    "found %s in %s, expected a "
                                    "tag of A-Z a-z 0-9 _ . -",
                                    n ? node_desc(n, b, sizeof(b)) : "?", what);
                        int w =
                            snprintf(r->tags + o, sizeof(r->tags) - o, "%s%.*s",
                                     o ? "," : "", (int)slen(n), stext(n));
                        if (w < 0 || (size_t)w >= sizeof(r->tags) - o)
                                return fail_at(l, n,
                                               "too many tags in %s, "
                                               "expected at most %zu bytes "
                                               "of tags",
                                               what, sizeof(r->tags) - 1);
                        o += (size_t)w;
                }
        }
        return true;
}

static bool load_group_by(ld_t *l, const yaml_node_t *v, const char *rname,
                          pg_rule_t *r)
{
        char what[128], b[300];
        snprintf(what, sizeof(what), "group_by of %s", rname);
        const char *expected = "a field name or a list of 1 to 4 distinct "
                               "field names";
        if (!check_tag(l, v))
                return false;
        if (v->type == YAML_SCALAR_NODE && !is_null(v)) {
                r->n_group_by = 1;
                return get_field(l, v, what, &r->group_by[0]);
        }
        if (v->type != YAML_SEQUENCE_NODE)
                return fail_at(l, v, "found %s for %s, expected %s",
                               node_desc(v, b, sizeof(b)), what, expected);
        ptrdiff_t n = v->data.sequence.items.top - v->data.sequence.items.start;
        if (n < 1 || n > PG_MAX_GROUP_BY)
                return fail_at(l, v, "found %td fields for %s, expected %s", n,
                               what, expected);
        for (ptrdiff_t i = 0; i < n; i++) {
                yaml_node_t *it = get_node(l, v->data.sequence.items.start[i]);
                if (!it)
                        return fail_at(l, v, "malformed list in %s", what);
                pg_field_t f;
                if (!get_field(l, it, what, &f))
                        return false;
                for (int j = 0; j < r->n_group_by; j++)
                        if (r->group_by[j] == f)
                                return fail_at(l, it,
                                               "found '%s' twice in %s, "
                                               "expected distinct fields",
                                               pg_record_field_name(f), what);
                r->group_by[r->n_group_by++] = f;
        }
        return true;
}

static bool load_params(ld_t *l, yaml_node_t *rn, yaml_node_t *pn,
                        const char *rname, pg_rule_t *r)
{
        char ctx[128], what[160], b1[32];
        snprintf(ctx, sizeof(ctx), "params of %s", rname);
        yaml_node_t *vals[8];
        const char *const *keys;
        int nkeys;
        static const char *const k_retry[] = {"window"};
        static const char *const k_swipe[] = {"window", "auto_refund_within"};
        static const char *const k_mismatch[] = {"tolerance"};
        static const char *const k_refund[] = {"lookback"};
        switch (r->detector) {
        case PG_DET_RETRY_DUPLICATE:
                keys = k_retry;
                nkeys = N_OF(k_retry);
                break;
        case PG_DET_REPEATED_SWIPE:
                keys = k_swipe;
                nkeys = N_OF(k_swipe);
                break;
        case PG_DET_AMOUNT_MISMATCH:
                keys = k_mismatch;
                nkeys = N_OF(k_mismatch);
                break;
        case PG_DET_REFUND_ANOMALY:
                keys = k_refund;
                nkeys = N_OF(k_refund);
                break;
        default:
                keys = agg_keys;
                nkeys = N_OF(agg_keys);
                break;
        }
        for (int i = 0; i < nkeys; i++)
                vals[i] = NULL;
        /* An empty `params:` is the same as none. */
        if (pn && !is_null(pn) && !scan_map(l, pn, ctx, keys, nkeys, vals))
                return false;
        /* Errors about a missing key point at params, or at the rule.
         */
        yaml_node_t *at = pn ? pn : rn;

#define WHAT(key) (snprintf(what, sizeof(what), "%s of %s", key, rname), what)
        switch (r->detector) {
        case PG_DET_RETRY_DUPLICATE:
                r->window_ms = 15 * MS_MINUTE;
                return !vals[0] ||
                       get_duration(l, vals[0], WHAT("window"), MS_SECOND,
                                    MS_DAY, &r->window_ms);
        case PG_DET_REPEATED_SWIPE:
                r->window_ms = 120 * MS_SECOND;
                if (vals[0] && !get_duration(l, vals[0], WHAT("window"),
                                             MS_SECOND, MS_DAY, &r->window_ms))
                        return false;
                /* The 60 s default is cut to a shorter window: a pair
                 * farther apart than the window is never seen, so the
                 * two mean the same and a short window needs no second
                 * key. */
                r->auto_refund_within_ms = 60 * MS_SECOND;
                if (r->auto_refund_within_ms > r->window_ms)
                        r->auto_refund_within_ms = r->window_ms;
                if (vals[1]) {
                        snprintf(what, sizeof(what),
                                 "auto_refund_within of %s (window %s)", rname,
                                 fmt_ms(r->window_ms, b1, sizeof(b1)));
                        return get_duration(l, vals[1], what, 0, r->window_ms,
                                            &r->auto_refund_within_ms);
                }
                return true;
        case PG_DET_AMOUNT_MISMATCH:
                r->tolerance = 0;
                return !vals[0] ||
                       get_int(l, vals[0], WHAT("tolerance"), 0, &r->tolerance);
        case PG_DET_REFUND_ANOMALY:
                r->lookback_ms = 30 * MS_DAY;
                return !vals[0] ||
                       get_duration(l, vals[0], WHAT("lookback"), MS_MINUTE,
                                    400 * MS_DAY, &r->lookback_ms);
        default:
                break;
        }

        /* aggregate: every key but where and field is required. */
        static const int required[] = {AK_GROUP_BY, AK_FUNCTION, AK_WINDOW,
                                       AK_THRESHOLD};
        for (int i = 0; i < N_OF(required); i++)
                if (!vals[required[i]])
                        return fail_at(l, at,
                                       "missing key '%s' in %s, expected "
                                       "group_by, function, window and "
                                       "threshold for detector aggregate",
                                       agg_keys[required[i]], ctx);
        if (!load_on_findings(l, vals[AK_ON_FINDINGS], rname, r))
                return false;
        if (vals[AK_WHERE] && !load_where(l, vals[AK_WHERE], rname, r))
                return false;
        if (!load_group_by(l, vals[AK_GROUP_BY], rname, r))
                return false;
        int fn = 0;
        if (!get_choice(l, vals[AK_FUNCTION], WHAT("function"), fn_names,
                        N_OF(fn_names), &fn))
                return false;
        r->fn = (pg_agg_fn_t)fn;
        if (r->fn == PG_AGG_DISTINCT) {
                if (!vals[AK_FIELD])
                        return fail_at(l, vals[AK_FUNCTION],
                                       "missing key 'field' in %s, expected "
                                       "the field whose distinct values "
                                       "function distinct counts",
                                       ctx);
                if (!get_field(l, vals[AK_FIELD], WHAT("field"),
                               &r->distinct_field))
                        return false;
        } else if (vals[AK_FIELD]) {
                return fail_at(l, vals[AK_FIELD],
                               "found key 'field' in %s with function %s, "
                               "expected 'field' only with function distinct",
                               ctx, fn_names[fn]);
        }
        if (!get_duration(l, vals[AK_WINDOW], WHAT("window"), MS_SECOND, MS_DAY,
                          &r->window_ms))
                return false;
        return get_int(l, vals[AK_THRESHOLD], WHAT("threshold"), 1,
                       &r->threshold);
#undef WHAT
}

/* cooldown: a duration; cooldown_key: the fields that make the key
 * (default merchant_id). Only for rules that alert without refunding: a
 * refund rule's alerts explain its refunds and are never held back. */
static bool load_cooldown(ld_t *l, yaml_node_t *cv, yaml_node_t *kv,
                          const char *rname, pg_rule_t *r)
{
        char what[128];
        r->n_cooldown_key = 1;
        r->cooldown_key[0] = PG_F_MERCHANT_ID;
        if (!cv || is_null(cv)) {
                if (kv && !is_null(kv))
                        return fail_at(l, kv,
                                       "found cooldown_key without cooldown "
                                       "in %s, expected both or neither",
                                       rname);
                return true;
        }
        snprintf(what, sizeof(what), "cooldown of %s", rname);
        if (!get_duration(l, cv, what, MS_SECOND, MS_DAY, &r->cooldown_ms))
                return false;
        if (r->action == PG_ACTION_REFUND)
                return fail_at(l, cv,
                               "found cooldown in %s, which refunds: "
                               "expected cooldown only on rules with "
                               "action alert (a refund's alert is never "
                               "held back)",
                               rname);
        if (kv && !is_null(kv)) {
                pg_rule_t tmp;
                memset(&tmp, 0, sizeof(tmp));
                if (!load_group_by(l, kv, rname, &tmp))
                        return false;
                r->n_cooldown_key = tmp.n_group_by;
                memcpy(r->cooldown_key, tmp.group_by, sizeof(tmp.group_by));
        }
        return true;
}

/*
 * Check one rule mapping (the index-th, 0-based) and fill *r.
 * prev[0..index) are the rules before it, for the duplicate id check.
 * On failure r->where may hold a compiled expression: the caller frees
 * it.
 */
static bool load_rule(ld_t *l, yaml_node_t *rn, int index,
                      const pg_rule_t *prev, const size_t *prev_col,
                      pg_rule_t *r, size_t *col)
{
        char rname[96], b1[300], what[128];
        yaml_node_t *vals[RK__COUNT];

        /* Name the rule by its id in every message, when the id is
         * usable, even for errors found before the id is checked. */
        snprintf(rname, sizeof(rname), "rule #%d", index + 1);
        if (rn->type == YAML_MAPPING_NODE) {
                for (yaml_node_pair_t *p = rn->data.mapping.pairs.start;
                     p < rn->data.mapping.pairs.top; p++) {
                        yaml_node_t *k = get_node(l, p->key);
                        yaml_node_t *v = get_node(l, p->value);
                        if (k && v && k->type == YAML_SCALAR_NODE &&
                            text_is(stext(k), slen(k), "id") &&
                            v->type == YAML_SCALAR_NODE &&
                            scalar_kind(v) == SK_STR &&
                            valid_id(stext(v), slen(v))) {
                                snprintf(rname, sizeof(rname), "rule '%.*s'",
                                         (int)slen(v), stext(v));
                                break;
                        }
                }
        }
        if (!scan_map(l, rn, rname, rule_keys, RK__COUNT, vals))
                return false;
        memset(r, 0, sizeof(*r));
        r->line = (int)rn->start_mark.line + 1;
        *col = rn->start_mark.column + 1;

        /* id */
        const char *id_expected = "a rule id: 1 to 64 of A-Z a-z 0-9 _ . -";
        if (!vals[RK_ID])
                return fail_at(l, rn, "missing key 'id' in %s, expected %s",
                               rname, id_expected);
        snprintf(what, sizeof(what), "id of %s", rname);
        if (!want_string(l, vals[RK_ID], what, id_expected))
                return false;
        if (!valid_id(stext(vals[RK_ID]), slen(vals[RK_ID])))
                return fail_at(
                    l, vals[RK_ID], "found '%s' for %s, expected %s",
                    show(b1, sizeof(b1), stext(vals[RK_ID]), slen(vals[RK_ID])),
                    what, id_expected);
        memcpy(r->id, stext(vals[RK_ID]), slen(vals[RK_ID]));
        r->id[slen(vals[RK_ID])] = '\0';
        for (int i = 0; i < index; i++)
                if (strcmp(prev[i].id, r->id) == 0)
                        return fail_at(l, vals[RK_ID],
                                       "duplicate rule id '%s' (first at line "
                                       "%d, column %zu), expected ids to be "
                                       "unique",
                                       r->id, prev[i].line, prev_col[i]);

        /* detector */
        if (!vals[RK_DETECTOR])
                return fail_at(
                    l, rn,
                    "missing key 'detector' in %s, expected one "
                    "of: %s",
                    rname, join(b1, sizeof(b1), detector_names, PG_DET__COUNT));
        int d = 0;
        snprintf(what, sizeof(what), "detector of %s", rname);
        if (!get_choice(l, vals[RK_DETECTOR], what, detector_names,
                        PG_DET__COUNT, &d))
                return false;
        r->detector = (pg_detector_t)d;

        if (vals[RK_DESCRIPTION] && !is_null(vals[RK_DESCRIPTION])) {
                snprintf(what, sizeof(what), "description of %s", rname);
                if (!want_string(l, vals[RK_DESCRIPTION], what, "a string"))
                        return false;
        }

        int sev = -1;
        if (vals[RK_SEVERITY]) {
                snprintf(what, sizeof(what), "severity of %s", rname);
                if (!get_choice(l, vals[RK_SEVERITY], what, severity_names,
                                N_OF(severity_names), &sev))
                        return false;
        }
        snprintf(r->severity, sizeof(r->severity), "%s",
                 sev >= 0 ? severity_names[sev] : default_severity[d]);

        int action = PG_ACTION_ALERT;
        if (vals[RK_ACTION]) {
                snprintf(what, sizeof(what), "action of %s", rname);
                if (!get_choice(l, vals[RK_ACTION], what, action_names,
                                N_OF(action_names), &action))
                        return false;
                if (action == PG_ACTION_REFUND &&
                    (r->detector == PG_DET_REFUND_ANOMALY ||
                     r->detector == PG_DET_AGGREGATE))
                        return fail_at(l, vals[RK_ACTION],
                                       "found action 'refund' in %s, but "
                                       "detector %s only alerts: expected "
                                       "alert (refund is for "
                                       "retry_duplicate, repeated_swipe and "
                                       "amount_mismatch)",
                                       rname, detector_names[d]);
        }
        r->action = (pg_action_t)action;

        int mode = PG_MODE_ENFORCE;
        if (vals[RK_MODE]) {
                snprintf(what, sizeof(what), "mode of %s", rname);
                if (!get_choice(l, vals[RK_MODE], what, mode_names,
                                N_OF(mode_names), &mode))
                        return false;
        }
        r->mode = (pg_mode_t)mode;
        if (vals[RK_ENABLED]) {
                yaml_node_t *v = vals[RK_ENABLED];
                snprintf(what, sizeof(what), "enabled of %s", rname);
                if (!want_scalar(l, v, what, "true or false"))
                        return false;
                if (scalar_kind(v) != SK_BOOL)
                        return fail_at(l, v,
                                       "found %s for %s, expected true "
                                       "or false",
                                       node_desc(v, b1, sizeof(b1)), what);
                if (stext(v)[0] != 't' && stext(v)[0] != 'T')
                        r->mode = PG_MODE_OFF;
        }

        if (!load_meta(l, vals[RK_OWNER], vals[RK_TAGS], rname, r) ||
            !load_filter(l, vals[RK_WHERE], vals[RK_EXCEPT], rname, r) ||
            !load_cooldown(l, vals[RK_COOLDOWN], vals[RK_COOLDOWN_KEY], rname,
                           r))
                return false;
        /* Params are checked even for a rule that is off, so that
         * turning it on later cannot reveal an error. */
        return load_params(l, rn, vals[RK_PARAMS], rname, r);
}

static bool load_settings(ld_t *l, yaml_node_t *sn, pg_ruleset_t *rs)
{
        static const char *const keys[] = {"allowed_lateness", "dedupe_horizon",
                                           "refund_delay"};
        yaml_node_t *vals[3];
        rs->allowed_lateness_ms = 5 * MS_SECOND;
        rs->dedupe_horizon_ms = 24 * MS_HOUR;
        rs->refund_delay_ms = 120 * MS_SECOND;
        if (!sn || is_null(sn))
                return true;
        if (!scan_map(l, sn, "settings", keys, N_OF(keys), vals))
                return false;
        return (!vals[0] ||
                get_duration(l, vals[0], "settings.allowed_lateness", 0,
                             MS_HOUR, &rs->allowed_lateness_ms)) &&
               (!vals[1] ||
                get_duration(l, vals[1], "settings.dedupe_horizon", MS_MINUTE,
                             7 * MS_DAY, &rs->dedupe_horizon_ms)) &&
               (!vals[2] || get_duration(l, vals[2], "settings.refund_delay", 0,
                                         MS_DAY, &rs->refund_delay_ms));
}

static bool load_version(ld_t *l, yaml_node_t *v, pg_ruleset_t *rs)
{
        /* Any scalar is taken as its text: `version: 3` and
         * `version: 1.10` are "3" and "1.10", as written. */
        const char *expected = "a non-empty string of at most 64 printable "
                               "characters";
        if (!want_scalar(l, v, "version", expected))
                return false;
        const char *s = stext(v);
        size_t len = slen(v);
        if (len == 0 || len > PG_RULE_ID_MAX)
                return fail_at(l, v,
                               "found a version of %zu bytes, expected "
                               "%s",
                               len, expected);
        /* It is stamped on every alert: no control characters. */
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                        return fail_at(l, v,
                                       "found a control character (0x%02x) in "
                                       "version, expected %s",
                                       (unsigned char)s[i], expected);
        memcpy(rs->version, s, len);
        rs->version[len] = '\0';
        return true;
}

/* FILE:LINE:COL of a libyaml error. */
static void yaml_fail(ld_t *l, const yaml_parser_t *p)
{
        const char *problem = p->problem ? p->problem : "unknown error";
        if (p->error == YAML_MEMORY_ERROR) {
                fail_pos(l, 1, 1, "out of memory while parsing YAML");
                return;
        }
        if (p->error == YAML_READER_ERROR) {
                /* Reader errors carry a byte offset, not a mark. */
                size_t line = 0, col = 0;
                for (size_t i = 0; i < p->problem_offset && i < l->len; i++) {
                        unsigned char ch = (unsigned char)l->buf[i];
                        if (ch == '\n') {
                                line++;
                                col = 0;
                        } else if ((ch & 0xc0) != 0x80) {
                                col++;
                        }
                }
                if (p->problem_value >= 0)
                        fail_pos(l, line + 1, col + 1,
                                 "invalid input: %s (byte 0x%02x), expected "
                                 "UTF-8 text",
                                 problem, p->problem_value & 0xff);
                else
                        fail_pos(l, line + 1, col + 1,
                                 "invalid input: %s, expected UTF-8 text",
                                 problem);
                return;
        }
        if (p->context)
                fail_pos(l, p->problem_mark.line + 1,
                         p->problem_mark.column + 1,
                         "invalid YAML: %s (%s at line %zu, column %zu)",
                         problem, p->context, p->context_mark.line + 1,
                         p->context_mark.column + 1);
        else
                fail_pos(l, p->problem_mark.line + 1,
                         p->problem_mark.column + 1, "invalid YAML: %s",
                         problem);
}

/* Validate the document and build the ruleset; NULL on error. */
static pg_ruleset_t *build(ld_t *l, yaml_node_t *root)
{
        static const char *const top_keys[] = {"version", "settings", "rules",
                                               "lists", "include"};
        enum { TK_VERSION, TK_SETTINGS, TK_RULES, TK_LISTS, TK_INCLUDE };
        yaml_node_t *vals[5];
        char b[300];
        pg_ruleset_t hdr;
        memset(&hdr, 0, sizeof(hdr));

        if (root->type != YAML_MAPPING_NODE) {
                fail_at(l, root,
                        "found %s at the top level, expected a "
                        "mapping with version and rules",
                        node_desc(root, b, sizeof(b)));
                return NULL;
        }
        if (!scan_map(l, root, "the top level", top_keys, N_OF(top_keys), vals))
                return NULL;
        if (!vals[TK_VERSION]) {
                fail_at(l, root,
                        "missing key 'version' at the top "
                        "level, expected the rule set's "
                        "version");
                return NULL;
        }
        if (!load_version(l, vals[TK_VERSION], &hdr) ||
            !load_settings(l, vals[TK_SETTINGS], &hdr) ||
            !load_includes(l, vals[TK_INCLUDE]) ||
            !load_lists(l, vals[TK_LISTS]))
                return NULL;
        if (!vals[TK_RULES]) {
                fail_at(l, root,
                        "missing key 'rules' at the top level, "
                        "expected a list of 1 to %d rules",
                        MAX_RULES);
                return NULL;
        }
        yaml_node_t *seq = vals[TK_RULES];
        if (!check_tag(l, seq))
                return NULL;
        if (seq->type != YAML_SEQUENCE_NODE) {
                fail_at(l, seq,
                        "found %s for rules, expected a list "
                        "of 1 to %d rules",
                        node_desc(seq, b, sizeof(b)), MAX_RULES);
                return NULL;
        }
        ptrdiff_t n =
            seq->data.sequence.items.top - seq->data.sequence.items.start;
        if (n < 1 || n > MAX_RULES) {
                fail_at(l, seq, "found %td rules, expected 1 to %d", n,
                        MAX_RULES);
                return NULL;
        }

        pg_rule_t *tmp = calloc((size_t)n, sizeof(*tmp));
        size_t *cols = calloc((size_t)n, sizeof(*cols));
        rs_block_t *blk = NULL;
        int done = 0, active = 0;
        if (!tmp || !cols) {
                fail_pos(l, 1, 1, "out of memory");
                goto out;
        }
        for (; done < n; done++) {
                yaml_node_t *rn =
                    get_node(l, seq->data.sequence.items.start[done]);
                if (!rn) {
                        fail_at(l, seq, "malformed list of rules");
                        goto out;
                }
                l->rule_failed = false;
                bool ok =
                    load_rule(l, rn, done, tmp, cols, &tmp[done], &cols[done]);
                if (ok)
                        active += tmp[done].mode != PG_MODE_OFF;
                /* a broken rule: go on, to report the next rule's errors */
        }
        l->rule_failed = false;
        if (l->failed)
                goto out;
        blk = malloc(sizeof(*blk) + (size_t)active * sizeof(pg_rule_t));
        if (!blk) {
                fail_pos(l, 1, 1, "out of memory");
                goto out;
        }
        blk->rs = hdr;
        snprintf(blk->rs.path, sizeof(blk->rs.path), "%s", l->name);
        blk->rs.rules = blk->rules;
        blk->rs.n_rules = 0;
        for (int i = 0; i < n; i++) {
                if (tmp[i].mode == PG_MODE_OFF)
                        continue;
                /* Ownership of where moves to the block. */
                blk->rules[blk->rs.n_rules++] = tmp[i];
                tmp[i].where = NULL;
                tmp[i].filter = NULL;
        }
out:
        if (tmp)
                for (int i = 0; i < done; i++)
                        pg_expr_free(tmp[i].where), pg_expr_free(tmp[i].filter);
        free(tmp);
        free(cols);
        return blk ? &blk->rs : NULL;
}

pg_ruleset_t *pg_rules_load_buffer(const char *name, const char *buf,
                                   size_t len, char *errstr, size_t errstr_size)
{
        ld_t l;
        memset(&l, 0, sizeof(l));
        l.name = name ? name : "<rules>";
        l.buf = buf ? buf : "";
        l.len = buf ? len : 0;
        l.err = errstr;
        l.err_size = errstr_size;
        if (errstr && errstr_size)
                errstr[0] = '\0';

        yaml_parser_t parser;
        yaml_document_t doc, extra;
        if (!yaml_parser_initialize(&parser)) {
                fail_pos(&l, 1, 1, "out of memory");
                return NULL;
        }
        yaml_parser_set_input_string(&parser, (const unsigned char *)l.buf,
                                     l.len);
        if (!yaml_parser_load(&parser, &doc)) {
                yaml_fail(&l, &parser);
                yaml_parser_delete(&parser);
                return NULL;
        }
        l.doc = &doc;
        pg_ruleset_t *rs = NULL;
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) {
                fail_pos(&l, 1, 1,
                         "found an empty file, expected a mapping "
                         "with version and rules");
                goto out;
        }
        /* A second document would be ignored by a reader that takes the
         * first: refuse it rather than run half of what was written. */
        if (!yaml_parser_load(&parser, &extra)) {
                yaml_fail(&l, &parser);
                goto out;
        }
        yaml_node_t *second = yaml_document_get_root_node(&extra);
        if (second)
                fail_at(&l, second,
                        "found a second YAML document, expected "
                        "one document");
        yaml_document_delete(&extra);
        if (!l.failed)
                rs = build(&l, root);
        if (rs) {
                /* the hash covers the included files too, in order */
                uint64_t h = pg_hash64(l.buf, l.len, 0);
                for (int i = 0; i < l.ninc; i++)
                        h = pg_hash64(l.inc[i]->buf, l.inc[i]->len, h);
                snprintf(rs->hash, sizeof(rs->hash), "%016llx",
                         (unsigned long long)h);
        }
        free_includes(&l);
out:
        yaml_document_delete(&doc);
        yaml_parser_delete(&parser);
        return rs;
}

/* The whole file at path into a malloc'd buffer; NULL with *why set. */
static char *read_file(const char *path, size_t *len_out, const char **why,
                       bool *opened)
{
        FILE *f = fopen(path, "rb");
        *opened = f != NULL;
        if (!f) {
                *why = strerror(errno);
                return NULL;
        }
        char *buf = NULL;
        size_t len = 0, cap = 0;
        *why = NULL;
        for (;;) {
                if (len == cap) {
                        if (cap >= MAX_FILE_BYTES) {
                                *why = "file is larger than 16 MiB";
                                break;
                        }
                        size_t ncap = cap ? cap * 2 : 8192;
                        char *nb = realloc(buf, ncap);
                        if (!nb) {
                                *why = "out of memory";
                                break;
                        }
                        buf = nb;
                        cap = ncap;
                }
                size_t got = fread(buf + len, 1, cap - len, f);
                len += got;
                if (got == 0) {
                        if (ferror(f))
                                *why = strerror(errno);
                        break;
                }
        }
        fclose(f);
        if (*why) {
                free(buf);
                return NULL;
        }
        *len_out = len;
        return buf;
}

pg_ruleset_t *pg_rules_load_file(const char *path, char *errstr,
                                 size_t errstr_size)
{
        if (errstr && errstr_size)
                errstr[0] = '\0';
        size_t len = 0;
        const char *why = NULL;
        bool opened;
        char *buf = read_file(path, &len, &why, &opened);
        if (!buf) {
                /* No line or column to give: the file could not be read. */
                if (errstr && errstr_size)
                        snprintf(errstr, errstr_size,
                                 "%s: cannot %s rule file: %s", path,
                                 opened ? "read" : "open", why);
                return NULL;
        }
        pg_ruleset_t *rs =
            pg_rules_load_buffer(path, buf, len, errstr, errstr_size);
        free(buf);
        return rs;
}

void pg_rules_free(pg_ruleset_t *rs)
{
        if (!rs)
                return;
        for (int i = 0; i < rs->n_rules; i++)
                pg_expr_free(rs->rules[i].where),
                    pg_expr_free(rs->rules[i].filter);
        /* rs is the first member of its rs_block_t. */
        free(rs);
}
