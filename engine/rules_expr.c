/*
 * rules_expr.c - the `where:` filter language of aggregate rules: compiled
 * once when a rule file is loaded, evaluated for every record.
 *
 * Compilation is a recursive-descent parser over an on-the-fly lexer (the
 * grammar is in rules_expr.h). Everything that does not depend on the
 * record is resolved here, so that a bad rule fails at load time and the
 * per-record work is a few integer compares: field names become field
 * numbers, enum and bool values become a bit mask of accepted values,
 * integers (and, for event_time, quoted RFC 3339 times) become int64, and
 * string literals become (length, bytes) so that evaluation calls memcmp
 * only when the lengths already match.
 *
 * The result is one allocation: a header, then the nodes in preorder, then
 * the literals, then the literal bytes. Each node records the size of its
 * subtree, so a node's children are found by skipping forward rather than
 * through pointers. "a and b and c" is one AND node with three children,
 * not a chain, so evaluation recurses only as deep as the source nests
 * "not" and "(", and that nesting is capped at PG_EXPR_MAX_DEPTH: hostile
 * input can neither blow the stack at compile time nor at eval time.
 *
 * Evaluation only reads the compiled expression and the record and never
 * allocates: any number of threads may evaluate one expression at once.
 *
 * Missing optional fields (pan_masked, order_id, original_rrn,
 * expected_amount, entry_mode): every comparison is false except "!=";
 * "in" is false and "not in" is true, "not in" being the list form of "!="
 * (the oracle, tests/oracle/oracle.py, reads it the same way). A bare field
 * is true for a true bool or a present value.
 */
#include "rules_expr.h"
#include "util_text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum node_op {
        OP_AND = 0,
        OP_OR,
        OP_NOT,
        OP_PRESENT, /* bare field */
        OP_MASK,    /* enum or bool field: value in a bit mask */
        OP_STR_IN,  /* string field equal to one of n literals */
        OP_INT_IN,  /* int field equal to one of n literals */
        OP_INT_CMP  /* int field < <= > >= a literal */
};

enum cmp_op { CMP_EQ = 0, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE };

struct node {
        uint8_t op;
        uint8_t field;  /* pg_field_t */
        uint8_t cmp;    /* OP_INT_CMP */
        uint8_t neg;    /* MASK, STR_IN, INT_IN: invert ("!=", "not in") */
        uint32_t size;  /* nodes in this subtree, this one included */
        uint32_t n;     /* children (AND, OR) or literals (STR_IN, INT_IN) */
        uint32_t first; /* first literal (STR_IN, INT_IN) */
        int64_t val;    /* MASK: accepted values; INT_CMP: the literal */
};

struct lit {
        int64_t val;  /* INT_IN */
        uint32_t off; /* STR_IN: offset of the bytes in strs */
        uint32_t len; /* STR_IN: at most PG_STR_MAX */
};

struct pg_expr {
        const struct node *nodes;
        const struct lit *lits;
        const char *strs;
        uint32_t n_nodes;
        /* An expression that is one enum/bool test or an "and" of such
         * tests (the usual filter: "kind == purchase and status ==
         * declined") is evaluated as one bit test per field: accept[i] holds
         * the values of field FLAT_FIELDS[i] that pass every test of it. */
        bool flat;
        uint64_t accept[4];
};

static const pg_field_t FLAT_FIELDS[4] = {PG_F_KIND, PG_F_STATUS,
                                          PG_F_ENTRY_MODE, PG_F_RETRANSMISSION};

/* Fill e->accept when the expression is flat (see struct pg_expr). */
static void flatten(pg_expr_t *e)
{
        const struct node *nd = e->nodes;
        uint32_t n = 1, first = 0;
        if (nd[0].op == OP_AND) {
                n = nd[0].n;
                first = 1;
                if (nd[0].size != n + 1)
                        return; /* a child with children of its own */
        }
        uint64_t acc[4] = {~0ULL, ~0ULL, ~0ULL, ~0ULL};
        for (uint32_t k = first; k < first + n; k++) {
                if (nd[k].op != OP_MASK)
                        return;
                int i = 0;
                while (i < 4 && FLAT_FIELDS[i] != (pg_field_t)nd[k].field)
                        i++;
                if (i == 4)
                        return;
                uint64_t m = (uint64_t)nd[k].val;
                acc[i] &= nd[k].neg ? ~m : m;
        }
        memcpy(e->accept, acc, sizeof(acc));
        e->flat = true;
}

enum tok_type {
        T_END = 0,
        T_OP,
        T_LPAREN,
        T_RPAREN,
        T_LBRACK,
        T_RBRACK,
        T_COMMA,
        T_STR, /* quoted; the value excludes the quotes */
        T_WORD
};

typedef struct tok {
        int type;
        int cmp;    /* T_OP */
        size_t off; /* token in src, quotes included */
        size_t len;
        size_t voff; /* value: the token, or inside the quotes */
        size_t vlen;
} tok_t;

typedef struct comp {
        const char *src;
        size_t len;
        tok_t tok; /* the current (lookahead) token */
        struct node *nodes;
        size_t n_nodes, cap_nodes;
        struct lit *lits;
        size_t n_lits, cap_lits;
        char *strs;
        size_t n_strs, cap_strs;
        char *err;
        size_t err_size;
        size_t *err_off;
        bool failed;
} comp_t;

static bool fail(comp_t *c, size_t off, const char *fmt, ...)
{
        /* Only the first error is kept: later ones are consequences. */
        if (c->failed)
                return false;
        c->failed = true;
        *c->err_off = off;
        if (c->err && c->err_size) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(c->err, c->err_size, fmt, ap);
                va_end(ap);
        }
        return false;
}

static const char *show(char *buf, size_t size, const char *s, size_t len)
{
        return pg_show(buf, size, s, len, 48);
}

/* A token for a message: quoted text, or "the end of the expression". */
static const char *show_tok(const comp_t *c, const tok_t *t, char *buf,
                            size_t size)
{
        if (t->type == T_END)
                return "the end of the expression";
        /* size is at least 8 at every call site */
        buf[0] = '\'';
        show(buf + 1, size - 2, c->src + t->off, t->len);
        size_t n = strlen(buf);
        buf[n] = '\'';
        buf[n + 1] = '\0';
        return buf;
}

static bool is_space(char ch)
{
        return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
               ch == '\f' || ch == '\v';
}

/* A bare word runs until whitespace or a character the grammar uses. */
static bool is_word_char(char ch)
{
        return ch != '\0' && !is_space(ch) && !strchr("()[],=!<>'\"", ch);
}

/* Lex the token that starts at or after pos into *t. */
static bool lex(comp_t *c, size_t pos, tok_t *t)
{
        const char *s = c->src;
        while (pos < c->len && is_space(s[pos]))
                pos++;
        memset(t, 0, sizeof(*t));
        t->off = pos;
        t->voff = pos;
        if (pos >= c->len) {
                t->type = T_END;
                return true;
        }
        char ch = s[pos];
        char next = pos + 1 < c->len ? s[pos + 1] : '\0';
        t->len = 1;
        switch (ch) {
        case '(':
                t->type = T_LPAREN;
                break;
        case ')':
                t->type = T_RPAREN;
                break;
        case '[':
                t->type = T_LBRACK;
                break;
        case ']':
                t->type = T_RBRACK;
                break;
        case ',':
                t->type = T_COMMA;
                break;
        case '=':
        case '!':
                if (next != '=')
                        return fail(c, pos,
                                    "unexpected '%c', expected an operator "
                                    "(==, !=, <, <=, >, >=)",
                                    ch);
                t->type = T_OP;
                t->cmp = ch == '=' ? CMP_EQ : CMP_NE;
                t->len = 2;
                break;
        case '<':
        case '>':
                t->type = T_OP;
                if (next == '=') {
                        t->cmp = ch == '<' ? CMP_LE : CMP_GE;
                        t->len = 2;
                } else {
                        t->cmp = ch == '<' ? CMP_LT : CMP_GT;
                }
                break;
        case '\'':
        case '"': {
                /* No escapes: a literal that needs one quote character is
                 * written with the other. */
                const char *end = memchr(s + pos + 1, ch, c->len - pos - 1);
                if (!end)
                        return fail(c, pos,
                                    "unterminated string, expected a "
                                    "closing %c",
                                    ch);
                t->type = T_STR;
                t->voff = pos + 1;
                t->vlen = (size_t)(end - (s + pos + 1));
                t->len = t->vlen + 2;
                return true;
        }
        default:
                if (!is_word_char(ch))
                        return fail(c, pos, "unexpected byte 0x%02x",
                                    (unsigned char)ch);
                t->type = T_WORD;
                while (pos + t->len < c->len && is_word_char(s[pos + t->len]))
                        t->len++;
                break;
        }
        t->vlen = t->len;
        return true;
}

static bool advance(comp_t *c)
{
        return lex(c, c->tok.off + c->tok.len, &c->tok);
}

static bool word_is(const comp_t *c, const tok_t *t, const char *w)
{
        size_t n = strlen(w);
        return t->type == T_WORD && t->len == n &&
               memcmp(c->src + t->off, w, n) == 0;
}

static bool grow(comp_t *c, void **p, size_t *cap, size_t need, size_t elem)
{
        if (need <= *cap)
                return true;
        size_t ncap = *cap ? *cap * 2 : 16;
        while (ncap < need)
                ncap *= 2;
        void *np = realloc(*p, ncap * elem);
        if (!np)
                return fail(c, c->tok.off, "out of memory");
        *p = np;
        *cap = ncap;
        return true;
}

/* Append a node; its index is c->n_nodes - 1. */
static bool push_node(comp_t *c, const struct node *nd)
{
        if (!grow(c, (void **)&c->nodes, &c->cap_nodes, c->n_nodes + 1,
                  sizeof(*c->nodes)))
                return false;
        c->nodes[c->n_nodes] = *nd;
        c->nodes[c->n_nodes].size = 1;
        c->n_nodes++;
        return true;
}

static bool push_lit(comp_t *c, int64_t val, const char *s, size_t len)
{
        if (!grow(c, (void **)&c->lits, &c->cap_lits, c->n_lits + 1,
                  sizeof(*c->lits)))
                return false;
        if (len &&
            !grow(c, (void **)&c->strs, &c->cap_strs, c->n_strs + len, 1))
                return false;
        struct lit *l = &c->lits[c->n_lits++];
        l->val = val;
        l->off = (uint32_t)c->n_strs;
        l->len = (uint32_t)len;
        if (len) {
                memcpy(c->strs + c->n_strs, s, len);
                c->n_strs += len;
        }
        return true;
}

/* Close an AND/OR node opened at index at with k children. One child needs
 * no node of its own: drop it, which keeps "(a)" and plain comparisons as
 * small as they look. Children are position-independent (sizes, not
 * indices), so the subtree can move. */
static void close_list(comp_t *c, size_t at, uint32_t k)
{
        if (k == 1) {
                memmove(&c->nodes[at], &c->nodes[at + 1],
                        (c->n_nodes - at - 1) * sizeof(*c->nodes));
                c->n_nodes--;
                return;
        }
        c->nodes[at].n = k;
        c->nodes[at].size = (uint32_t)(c->n_nodes - at);
}

static bool parse_or(comp_t *c, int depth);

/* ---- literals ---- */

static bool parse_i64(const char *s, size_t len, int64_t *out)
{
        size_t i = 0;
        bool neg = false;
        if (i < len && (s[i] == '-' || s[i] == '+'))
                neg = s[i++] == '-';
        if (i == len)
                return false;
        /* Accumulate negatively so that INT64_MIN is representable. */
        int64_t v = 0;
        for (; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                int d = s[i] - '0';
                if (v < (INT64_MIN + d) / 10)
                        return false;
                v = v * 10 - d;
        }
        if (!neg) {
                if (v == INT64_MIN)
                        return false;
                v = -v;
        }
        *out = v;
        return true;
}

static bool num2(const char *s, int *out)
{
        if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
                return false;
        *out = (s[0] - '0') * 10 + (s[1] - '0');
        return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
        y -= m <= 2;
        int64_t era = (y >= 0 ? y : y - 399) / 400;
        int64_t yoe = y - era * 400;
        int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

/* RFC 3339 as SEMANTICS.md section 1 reads it for event_time:
 * YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), fraction truncated to
 * milliseconds. Only used for literals, so it is a private copy rather than
 * a dependency on the JSON codec. */
static bool parse_time(const char *s, size_t len, int64_t *ms)
{
        int yh, yl, mo, d, h, mi, sec;
        if (len < 20 || !num2(s, &yh) || !num2(s + 2, &yl) || s[4] != '-' ||
            !num2(s + 5, &mo) || s[7] != '-' || !num2(s + 8, &d) ||
            (s[10] != 'T' && s[10] != 't') || !num2(s + 11, &h) ||
            s[13] != ':' || !num2(s + 14, &mi) || s[16] != ':' ||
            !num2(s + 17, &sec))
                return false;
        int y = yh * 100 + yl;
        static const int mdays[] = {31, 28, 31, 30, 31, 30,
                                    31, 31, 30, 31, 30, 31};
        if (mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 59 || d < 1)
                return false;
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        if (d > mdays[mo - 1] + (mo == 2 && leap))
                return false;
        size_t i = 19;
        int frac = 0, nd = 0;
        if (i < len && s[i] == '.') {
                i++;
                size_t start = i;
                while (i < len && s[i] >= '0' && s[i] <= '9') {
                        if (nd < 3) {
                                frac = frac * 10 + (s[i] - '0');
                                nd++;
                        }
                        i++;
                }
                if (i == start)
                        return false;
                while (nd < 3) {
                        frac *= 10;
                        nd++;
                }
        }
        int64_t off_min = 0;
        if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
                i++;
        } else if (i + 6 == len && (s[i] == '+' || s[i] == '-')) {
                int oh, om;
                if (!num2(s + i + 1, &oh) || s[i + 3] != ':' ||
                    !num2(s + i + 4, &om) || oh > 23 || om > 59)
                        return false;
                off_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
                i += 6;
        } else {
                return false;
        }
        if (i != len)
                return false;
        int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
                    sec - off_min * 60;
        *ms = t * 1000 + frac;
        return true;
}

static int enum_count(pg_field_t f)
{
        if (f == PG_F_KIND)
                return PG_KIND__COUNT;
        if (f == PG_F_STATUS)
                return PG_STATUS__COUNT;
        return PG_ENTRY__COUNT;
}

static const char *enum_name(pg_field_t f, int v)
{
        if (f == PG_F_KIND)
                return pg_kind_name(v);
        if (f == PG_F_STATUS)
                return pg_status_name(v);
        return v == PG_ENTRY_NONE ? NULL : pg_entry_mode_name(v);
}

/* "purchase, refund, reversal, void" for a message. */
static void enum_list(pg_field_t f, char *buf, size_t size)
{
        size_t o = 0;
        buf[0] = '\0';
        for (int v = 0; v < enum_count(f); v++) {
                const char *n = enum_name(f, v);
                if (!n || !*n)
                        continue;
                int w = snprintf(buf + o, size - o, "%s%s", o ? ", " : "", n);
                if (w < 0 || (size_t)w >= size - o)
                        break;
                o += (size_t)w;
        }
}

static void field_list(char *buf, size_t size)
{
        size_t o = 0;
        buf[0] = '\0';
        for (int f = 0; f < PG_F__COUNT; f++) {
                const char *n = pg_record_field_name((pg_field_t)f);
                int w = snprintf(buf + o, size - o, "%s%s", o ? ", " : "",
                                 n ? n : "?");
                if (w < 0 || (size_t)w >= size - o)
                        break;
                o += (size_t)w;
        }
}

static const char *type_name(pg_field_type_t t)
{
        switch (t) {
        case PG_FT_STRING:
                return "a string";
        case PG_FT_ENUM:
                return "an enum";
        case PG_FT_BOOL:
                return "a bool";
        default:
                return "an integer";
        }
}

/*
 * Parse one literal for field f. String and int literals are appended to
 * the literal pool; enum and bool literals are returned in *val (the caller
 * builds the bit mask). after names what the literal follows, for messages.
 */
static bool parse_literal(comp_t *c, pg_field_t f, const char *after,
                          int64_t *val)
{
        char b1[128], b2[512];
        const tok_t t = c->tok;
        const char *fname = pg_record_field_name(f);
        if (t.type != T_STR && t.type != T_WORD)
                return fail(c, t.off, "expected a value after %s, found %s",
                            after, show_tok(c, &t, b1, sizeof(b1)));
        const char *v = c->src + t.voff;
        size_t vlen = t.vlen;
        switch (pg_record_field_type(f)) {
        case PG_FT_STRING:
                if (vlen > PG_STR_MAX)
                        return fail(c, t.off,
                                    "string '%s' is longer than %d bytes, "
                                    "so %s can never equal it",
                                    show(b1, sizeof(b1), v, vlen), PG_STR_MAX,
                                    fname);
                if (!push_lit(c, 0, v, vlen))
                        return false;
                break;
        case PG_FT_INT: {
                int64_t x;
                if (!parse_i64(v, vlen, &x) &&
                    !(f == PG_F_EVENT_TIME && t.type == T_STR &&
                      parse_time(v, vlen, &x)))
                        return fail(c, t.off, "%s needs an integer%s, found %s",
                                    fname,
                                    f == PG_F_EVENT_TIME
                                        ? " (ms since the epoch) or a quoted "
                                          "RFC 3339 time"
                                        : "",
                                    show_tok(c, &t, b1, sizeof(b1)));
                if (!push_lit(c, x, NULL, 0))
                        return false;
                break;
        }
        case PG_FT_ENUM: {
                int x = pg_record_enum_lookup(f, v, vlen);
                /* entry_mode's "none" is how absence is stored, not a
                 * value a record can carry. */
                if (x < 0 || x >= 64 || !enum_name(f, x)) {
                        enum_list(f, b2, sizeof(b2));
                        return fail(c, t.voff, "unknown %s '%s' (expected %s)",
                                    fname, show(b1, sizeof(b1), v, vlen), b2);
                }
                *val = x;
                break;
        }
        case PG_FT_BOOL:
                if (vlen == 4 && !memcmp(v, "true", 4))
                        *val = 1;
                else if (vlen == 5 && !memcmp(v, "false", 5))
                        *val = 0;
                else
                        return fail(c, t.off,
                                    "%s needs true or false, found %s", fname,
                                    show_tok(c, &t, b1, sizeof(b1)));
                break;
        }
        return advance(c);
}

/* FIELD OP literal | FIELD ["not"] "in" [ ... ] | FIELD */
static bool parse_cmp(comp_t *c)
{
        char b1[128], b2[512];
        const tok_t ft = c->tok;
        if (ft.type != T_WORD)
                return fail(c, ft.off, "expected a field name, found %s",
                            show_tok(c, &ft, b1, sizeof(b1)));
        int fi = pg_record_field_lookup(c->src + ft.off, ft.len);
        if (fi < 0 || fi >= PG_F__COUNT) {
                field_list(b2, sizeof(b2));
                return fail(c, ft.off,
                            "unknown field '%s' (expected one of: %s)",
                            show(b1, sizeof(b1), c->src + ft.off, ft.len), b2);
        }
        pg_field_t f = (pg_field_t)fi;
        pg_field_type_t ty = pg_record_field_type(f);
        const char *fname = pg_record_field_name(f);
        if (!advance(c))
                return false;

        struct node nd;
        memset(&nd, 0, sizeof(nd));
        nd.field = (uint8_t)f;
        int64_t v = 0;
        char after[96];

        if (c->tok.type == T_OP) {
                const tok_t ot = c->tok;
                if (ot.cmp >= CMP_LT && ty != PG_FT_INT)
                        return fail(c, ot.off,
                                    "operator '%.*s' needs an integer field, "
                                    "but %s is %s (expected == or !=)",
                                    (int)ot.len, c->src + ot.off, fname,
                                    type_name(ty));
                snprintf(after, sizeof(after), "'%s %.*s'", fname, (int)ot.len,
                         c->src + ot.off);
                if (!advance(c))
                        return false;
                nd.first = (uint32_t)c->n_lits;
                if (!parse_literal(c, f, after, &v))
                        return false;
                nd.neg = ot.cmp == CMP_NE;
                nd.n = 1;
                if (ty == PG_FT_ENUM || ty == PG_FT_BOOL) {
                        nd.op = OP_MASK;
                        nd.val = (int64_t)(UINT64_C(1) << v);
                } else if (ty == PG_FT_STRING) {
                        nd.op = OP_STR_IN;
                } else if (ot.cmp <= CMP_NE) {
                        nd.op = OP_INT_IN;
                } else {
                        /* One literal needs no pool entry: keep it in the
                         * node, where the compare finds it. */
                        nd.op = OP_INT_CMP;
                        nd.cmp = (uint8_t)ot.cmp;
                        nd.val = c->lits[--c->n_lits].val;
                        nd.n = 0;
                        nd.first = 0;
                }
                return push_node(c, &nd);
        }

        bool neg = false;
        if (word_is(c, &c->tok, "not")) {
                tok_t t2;
                if (!lex(c, c->tok.off + c->tok.len, &t2))
                        return false;
                if (word_is(c, &t2, "in")) {
                        neg = true;
                        if (!advance(c))
                                return false;
                }
        }
        if (!word_is(c, &c->tok, "in")) {
                /* A bare field; "not" that is not "not in" is left for the
                 * caller, which will report it. */
                nd.op = OP_PRESENT;
                return push_node(c, &nd);
        }
        snprintf(after, sizeof(after), "'%s %sin ['", fname, neg ? "not " : "");
        if (!advance(c))
                return false;
        if (c->tok.type != T_LBRACK)
                return fail(c, c->tok.off,
                            "expected '[' after '%s %sin', found %s", fname,
                            neg ? "not " : "",
                            show_tok(c, &c->tok, b1, sizeof(b1)));
        const size_t open = c->tok.off;
        if (!advance(c))
                return false;
        nd.first = (uint32_t)c->n_lits;
        uint64_t mask = 0;
        for (;;) {
                if (nd.n == PG_EXPR_MAX_LIST)
                        return fail(c, c->tok.off,
                                    "more than %d values in the list, "
                                    "expected at most %d",
                                    PG_EXPR_MAX_LIST, PG_EXPR_MAX_LIST);
                if (!parse_literal(c, f, after, &v))
                        return false;
                mask |= UINT64_C(1) << (v & 63);
                nd.n++;
                if (c->tok.type == T_RBRACK)
                        break;
                if (c->tok.type != T_COMMA)
                        return fail(c, c->tok.off,
                                    "expected ',' or ']' to close the list "
                                    "opened at offset %zu, found %s",
                                    open, show_tok(c, &c->tok, b1, sizeof(b1)));
                snprintf(after, sizeof(after), "','");
                if (!advance(c))
                        return false;
        }
        if (!advance(c))
                return false;
        nd.neg = neg;
        if (ty == PG_FT_ENUM || ty == PG_FT_BOOL) {
                nd.op = OP_MASK;
                nd.val = (int64_t)mask;
                nd.n = 0;
                nd.first = 0;
        } else {
                nd.op = ty == PG_FT_STRING ? OP_STR_IN : OP_INT_IN;
        }
        return push_node(c, &nd);
}

static bool nest(comp_t *c, int depth)
{
        if (depth >= PG_EXPR_MAX_DEPTH)
                return fail(c, c->tok.off,
                            "expression nested too deeply, expected at most "
                            "%d levels of 'not' and parentheses",
                            PG_EXPR_MAX_DEPTH);
        return true;
}

/* "not" unary | "(" expr ")" | cmp. depth counts the enclosing "not" and
 * "(": it bounds the recursion of both this parser and pg_expr_eval. */
static bool parse_unary(comp_t *c, int depth)
{
        char b1[128];
        if (word_is(c, &c->tok, "not")) {
                if (!nest(c, depth))
                        return false;
                size_t at = c->n_nodes;
                struct node nd;
                memset(&nd, 0, sizeof(nd));
                nd.op = OP_NOT;
                if (!push_node(c, &nd) || !advance(c) ||
                    !parse_unary(c, depth + 1))
                        return false;
                c->nodes[at].size = (uint32_t)(c->n_nodes - at);
                return true;
        }
        if (c->tok.type == T_LPAREN) {
                if (!nest(c, depth))
                        return false;
                size_t open = c->tok.off;
                if (!advance(c) || !parse_or(c, depth + 1))
                        return false;
                if (c->tok.type != T_RPAREN)
                        return fail(c, c->tok.off,
                                    "expected ')' to close the '(' at offset "
                                    "%zu, found %s",
                                    open, show_tok(c, &c->tok, b1, sizeof(b1)));
                return advance(c);
        }
        return parse_cmp(c);
}

static bool parse_and(comp_t *c, int depth)
{
        size_t at = c->n_nodes;
        struct node nd;
        memset(&nd, 0, sizeof(nd));
        nd.op = OP_AND;
        if (!push_node(c, &nd))
                return false;
        uint32_t k = 0;
        for (;;) {
                if (!parse_unary(c, depth))
                        return false;
                k++;
                if (!word_is(c, &c->tok, "and"))
                        break;
                if (!advance(c))
                        return false;
        }
        close_list(c, at, k);
        return true;
}

static bool parse_or(comp_t *c, int depth)
{
        size_t at = c->n_nodes;
        struct node nd;
        memset(&nd, 0, sizeof(nd));
        nd.op = OP_OR;
        if (!push_node(c, &nd))
                return false;
        uint32_t k = 0;
        for (;;) {
                if (!parse_and(c, depth))
                        return false;
                k++;
                if (!word_is(c, &c->tok, "or"))
                        break;
                if (!advance(c))
                        return false;
        }
        close_list(c, at, k);
        return true;
}

pg_expr_t *pg_expr_compile(const char *src, size_t len, char *errstr,
                           size_t errstr_size, size_t *err_offset)
{
        size_t dummy_off;
        comp_t c;
        memset(&c, 0, sizeof(c));
        c.src = src ? src : "";
        c.len = src ? len : 0;
        c.err = errstr;
        c.err_size = errstr_size;
        c.err_off = err_offset ? err_offset : &dummy_off;
        if (errstr && errstr_size)
                errstr[0] = '\0';
        *c.err_off = 0;

        char b1[128];
        if (c.len > PG_EXPR_MAX_LEN) {
                fail(&c, PG_EXPR_MAX_LEN,
                     "expression is %zu bytes long, expected at most %d", c.len,
                     PG_EXPR_MAX_LEN);
        } else if (lex(&c, 0, &c.tok)) {
                if (c.tok.type == T_END)
                        fail(&c, c.tok.off,
                             "empty expression, expected a field name");
                else if (parse_or(&c, 0) && c.tok.type != T_END)
                        fail(&c, c.tok.off,
                             "unexpected %s, expected 'and', 'or' or the end "
                             "of the expression",
                             show_tok(&c, &c.tok, b1, sizeof(b1)));
        }

        pg_expr_t *e = NULL;
        if (!c.failed) {
                /* Pack into one block: header, nodes, literals, bytes. The
                 * node and literal sizes are multiples of 8 (they hold an
                 * int64), so every part stays aligned. */
                size_t sz_nodes = c.n_nodes * sizeof(struct node);
                size_t sz_lits = c.n_lits * sizeof(struct lit);
                char *blk = malloc(sizeof(pg_expr_t) + sz_nodes + sz_lits +
                                   c.n_strs + 1);
                if (!blk) {
                        fail(&c, 0, "out of memory");
                } else {
                        e = (pg_expr_t *)blk;
                        struct node *nodes =
                            (struct node *)(blk + sizeof(pg_expr_t));
                        struct lit *lits =
                            (struct lit *)((char *)nodes + sz_nodes);
                        char *strs = (char *)lits + sz_lits;
                        if (sz_nodes)
                                memcpy(nodes, c.nodes, sz_nodes);
                        if (sz_lits)
                                memcpy(lits, c.lits, sz_lits);
                        if (c.n_strs)
                                memcpy(strs, c.strs, c.n_strs);
                        e->nodes = nodes;
                        e->lits = lits;
                        e->strs = strs;
                        e->n_nodes = (uint32_t)c.n_nodes;
                        e->flat = false;
                        if (e->n_nodes)
                                flatten(e);
                }
        }
        free(c.nodes);
        free(c.lits);
        free(c.strs);
        return e;
}

void pg_expr_free(pg_expr_t *e)
{
        free(e);
}

/* Value of an enum or bool field. Read from the struct directly: it is
 * what pg_record_int would return, without the presence question. */
static unsigned small_value(pg_field_t f, const pg_record_t *rec)
{
        switch (f) {
        case PG_F_KIND:
                return rec->kind;
        case PG_F_STATUS:
                return rec->status;
        case PG_F_ENTRY_MODE:
                return rec->entry_mode;
        default:
                return rec->retransmission;
        }
}

static bool eval_at(const pg_expr_t *e, uint32_t i, const pg_record_t *rec)
{
        const struct node *nd = &e->nodes[i];
        pg_field_t f = (pg_field_t)nd->field;
        switch (nd->op) {
        case OP_AND:
        case OP_OR: {
                /* AND stops at the first false child, OR at the first true
                 * one. */
                bool stop_on = nd->op == OP_OR;
                uint32_t j = i + 1;
                for (uint32_t k = 0; k < nd->n; k++) {
                        if (eval_at(e, j, rec) == stop_on)
                                return stop_on;
                        j += e->nodes[j].size;
                }
                return !stop_on;
        }
        case OP_NOT:
                return !eval_at(e, i + 1, rec);
        case OP_PRESENT:
                switch (pg_record_field_type(f)) {
                case PG_FT_STRING:
                        return pg_record_str(rec, f)->len > 0;
                case PG_FT_INT: {
                        bool present = true;
                        (void)pg_record_int(rec, f, &present);
                        return present;
                }
                case PG_FT_ENUM:
                        return f != PG_F_ENTRY_MODE ||
                               rec->entry_mode != PG_ENTRY_NONE;
                default:
                        return rec->retransmission;
                }
        case OP_MASK: {
                /* Absent entry_mode is value 0 (none), which no mask holds:
                 * "==" and "in" are false, "!=" and "not in" true. */
                unsigned v = small_value(f, rec);
                bool in = v < 64 && ((uint64_t)nd->val >> v) & 1;
                return in != (bool)nd->neg;
        }
        case OP_STR_IN: {
                const pg_str_t *s = pg_record_str(rec, f);
                bool in = false;
                if (s->len) {
                        const struct lit *l = &e->lits[nd->first];
                        for (uint32_t k = 0; k < nd->n && !in; k++)
                                in = l[k].len == s->len &&
                                     memcmp(e->strs + l[k].off, s->s, s->len) ==
                                         0;
                }
                return in != (bool)nd->neg;
        }
        case OP_INT_IN: {
                bool present = true;
                int64_t v = pg_record_int(rec, f, &present);
                bool in = false;
                if (present) {
                        const struct lit *l = &e->lits[nd->first];
                        for (uint32_t k = 0; k < nd->n && !in; k++)
                                in = l[k].val == v;
                }
                return in != (bool)nd->neg;
        }
        case OP_INT_CMP: {
                bool present = true;
                int64_t v = pg_record_int(rec, f, &present);
                if (!present)
                        return false;
                switch (nd->cmp) {
                case CMP_LT:
                        return v < nd->val;
                case CMP_LE:
                        return v <= nd->val;
                case CMP_GT:
                        return v > nd->val;
                default:
                        return v >= nd->val;
                }
        }
        }
        return false;
}

bool pg_expr_eval(const pg_expr_t *e, const pg_record_t *rec)
{
        if (!e || e->n_nodes == 0)
                return true;
        if (e->flat) {
                /* a value past 63 is in no mask: as OP_MASK says */
                unsigned v[4] = {rec->kind, rec->status, rec->entry_mode,
                                 rec->retransmission};
                bool ok = true;
                for (int i = 0; i < 4; i++) {
                        if (v[i] >= 64)
                                return eval_at(e, 0, rec);
                        ok &= (e->accept[i] >> v[i]) & 1;
                }
                return ok;
        }
        return eval_at(e, 0, rec);
}
