/*
 * obs_metrics.c - see obs_metrics.h.
 *
 * Series live in one array in the order they were first touched, with an
 * open-addressing index on a hash of (family, label values). Dropping a
 * family compacts the array (keeping the order) and rebuilds the index.
 */
#include "obs_metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_hash.h"
#include "util_mem.h"

typedef struct series {
        int fam;
        char *lv[PG_M_MAX_LABELS];
        uint64_t hash;
        double v;     /* counter, gauge; histogram: the sum */
        double *hist; /* histogram: nbuckets counts, then the total count */
} series_t;

struct pg_metrics {
        const pg_mfamily_t *fams;
        int nfams;
        series_t *s;
        size_t n, cap;
        uint32_t *idx; /* series index + 1; 0: empty */
        size_t icap;   /* power of two, > 2 n */
};

static int nlabels(const pg_mfamily_t *f)
{
        int n = 0;
        while (n < PG_M_MAX_LABELS && f->labels[n])
                n++;
        return n;
}

/* The family and its label values, each hashed with the hash so far as
 * the seed (so "a","bc" and "ab","c" differ). */
static uint64_t hash_of(int fam, const char *const *lv, int nl)
{
        uint64_t h = (uint64_t)fam;
        for (int i = 0; i < nl; i++)
                h = pg_hash64(lv[i], strlen(lv[i]), h);
        return h;
}

pg_metrics_t *pg_metrics_new(const pg_mfamily_t *fams, int nfams)
{
        pg_metrics_t *m = pg_xcalloc(1, sizeof(*m));
        m->fams = fams;
        m->nfams = nfams;
        m->icap = 64;
        m->idx = pg_xcalloc(m->icap, sizeof(*m->idx));
        return m;
}

static void series_free(series_t *s)
{
        for (int i = 0; i < PG_M_MAX_LABELS; i++)
                free(s->lv[i]);
        free(s->hist);
}

void pg_metrics_free(pg_metrics_t *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->n; i++)
                series_free(&m->s[i]);
        free(m->s);
        free(m->idx);
        free(m);
}

static void reindex(pg_metrics_t *m)
{
        while (m->icap <= 2 * m->n)
                m->icap *= 2;
        free(m->idx);
        m->idx = pg_xcalloc(m->icap, sizeof(*m->idx));
        for (size_t i = 0; i < m->n; i++) {
                size_t j = (size_t)m->s[i].hash & (m->icap - 1);
                while (m->idx[j])
                        j = (j + 1) & (m->icap - 1);
                m->idx[j] = (uint32_t)(i + 1);
        }
}

static bool same(const series_t *s, int fam, const char *const *lv, int nl)
{
        if (s->fam != fam)
                return false;
        for (int i = 0; i < nl; i++)
                if (strcmp(s->lv[i], lv[i] ? lv[i] : ""))
                        return false;
        return true;
}

/* Where (fam, lv) is in the index, or the empty slot where it goes; the
 * label values with absent ones as "" in v, their hash in *h. */
static size_t find(const pg_metrics_t *m, int fam, const char *const *lv,
                   const char **v, uint64_t *h)
{
        int nl = nlabels(&m->fams[fam]);
        for (int i = 0; i < nl; i++)
                v[i] = lv && lv[i] ? lv[i] : "";
        *h = hash_of(fam, v, nl);
        size_t j = (size_t)*h & (m->icap - 1);
        for (; m->idx[j]; j = (j + 1) & (m->icap - 1)) {
                const series_t *s = &m->s[m->idx[j] - 1];
                if (s->hash == *h && same(s, fam, v, nl))
                        break;
        }
        return j;
}

/* The series of (fam, lv), created when absent. */
static series_t *get(pg_metrics_t *m, int fam, const char *const *lv)
{
        const pg_mfamily_t *f = &m->fams[fam];
        const char *v[PG_M_MAX_LABELS];
        uint64_t h;
        size_t j = find(m, fam, lv, v, &h);
        if (m->idx[j])
                return &m->s[m->idx[j] - 1];
        if (m->n == m->cap) {
                m->cap = m->cap ? 2 * m->cap : 16;
                m->s = pg_xrealloc(m->s, m->cap * sizeof(*m->s));
        }
        series_t *s = &m->s[m->n++];
        memset(s, 0, sizeof(*s));
        s->fam = fam;
        s->hash = h;
        for (int i = 0; i < nlabels(f); i++)
                s->lv[i] = strdup(v[i]);
        if (f->type == PG_M_HISTOGRAM)
                s->hist = pg_xcalloc((size_t)f->nbuckets + 1, sizeof(double));
        if (m->icap <= 2 * m->n)
                reindex(m);
        else
                m->idx[j] = (uint32_t)m->n;
        return s;
}

void pg_metrics_add(pg_metrics_t *m, int fam, const char *const *labels,
                    double v)
{
        get(m, fam, labels)->v += v;
}

void pg_metrics_set(pg_metrics_t *m, int fam, const char *const *labels,
                    double v)
{
        get(m, fam, labels)->v = v;
}

void pg_metrics_observe(pg_metrics_t *m, int fam, const char *const *labels,
                        double x)
{
        const pg_mfamily_t *f = &m->fams[fam];
        series_t *s = get(m, fam, labels);
        for (int b = 0; b < f->nbuckets; b++)
                if (x <= f->buckets[b]) {
                        s->hist[b] += 1;
                        break;
                }
        s->hist[f->nbuckets] += 1;
        s->v += x;
}

void pg_metrics_reset_family(pg_metrics_t *m, int fam)
{
        size_t k = 0;
        for (size_t i = 0; i < m->n; i++) {
                if (m->s[i].fam == fam)
                        series_free(&m->s[i]);
                else
                        m->s[k++] = m->s[i];
        }
        if (k != m->n) {
                m->n = k;
                reindex(m);
        }
}

void pg_metrics_merge(pg_metrics_t *dst, const pg_metrics_t *src)
{
        for (size_t i = 0; i < src->n; i++) {
                const series_t *s = &src->s[i];
                series_t *d = get(dst, s->fam, (const char *const *)s->lv);
                d->v += s->v;
                if (s->hist)
                        for (int b = 0; b <= src->fams[s->fam].nbuckets; b++)
                                d->hist[b] += s->hist[b];
        }
}

void pg_metrics_clear(pg_metrics_t *m)
{
        for (size_t i = 0; i < m->n; i++)
                series_free(&m->s[i]);
        m->n = 0;
        memset(m->idx, 0, m->icap * sizeof(*m->idx));
}

bool pg_metrics_empty(const pg_metrics_t *m)
{
        return m->n == 0;
}

double pg_metrics_get(const pg_metrics_t *m, int fam, const char *const *labels)
{
        const char *v[PG_M_MAX_LABELS];
        uint64_t h;
        size_t j = find(m, fam, labels, v, &h);
        return m->idx[j] ? m->s[m->idx[j] - 1].v : 0;
}

void pg_metrics_each(const pg_metrics_t *m, int fam,
                     void (*fn)(const char *const *labels, double v, void *arg),
                     void *arg)
{
        for (size_t i = 0; i < m->n; i++)
                if (m->s[i].fam == fam)
                        fn((const char *const *)m->s[i].lv, m->s[i].v, arg);
}

/* ---- rendering ---- */

typedef struct buf {
        char *p;
        size_t n, cap;
} buf_t;

static void put(buf_t *b, const char *s, size_t n)
{
        if (b->n + n + 1 > b->cap) {
                while (b->n + n + 1 > b->cap)
                        b->cap = b->cap ? 2 * b->cap : 4096;
                b->p = pg_xrealloc(b->p, b->cap);
        }
        memcpy(b->p + b->n, s, n);
        b->n += n;
        b->p[b->n] = '\0';
}

static void puts_(buf_t *b, const char *s)
{
        put(b, s, strlen(s));
}

/* s with \, " (in label values) and newlines escaped. */
static void put_escaped(buf_t *b, const char *s, bool quotes)
{
        for (; *s; s++) {
                if (*s == '\\')
                        puts_(b, "\\\\");
                else if (*s == '\n')
                        puts_(b, "\\n");
                else if (*s == '"' && quotes)
                        puts_(b, "\\\"");
                else
                        put(b, s, 1);
        }
}

static void put_num(buf_t *b, double v)
{
        char t[40];
        if (isinf(v))
                snprintf(t, sizeof(t), "%s", v > 0 ? "+Inf" : "-Inf");
        else if (isnan(v))
                snprintf(t, sizeof(t), "NaN");
        else if (v == floor(v) && fabs(v) < 9.007199254740992e15)
                snprintf(t, sizeof(t), "%.0f", v);
        else
                snprintf(t, sizeof(t), "%.15g", v);
        puts_(b, t);
}

/* name{labels[,le="x"]} value */
static void put_sample(buf_t *b, const char *name, const char *suffix,
                       const pg_mfamily_t *f, const series_t *s, const char *le,
                       double v)
{
        puts_(b, name);
        puts_(b, suffix);
        int nl = nlabels(f);
        if (nl || le) {
                puts_(b, "{");
                for (int i = 0; i < nl; i++) {
                        if (i)
                                puts_(b, ",");
                        puts_(b, f->labels[i]);
                        puts_(b, "=\"");
                        put_escaped(b, s->lv[i], true);
                        puts_(b, "\"");
                }
                if (le) {
                        if (nl)
                                puts_(b, ",");
                        puts_(b, "le=\"");
                        puts_(b, le);
                        puts_(b, "\"");
                }
                puts_(b, "}");
        }
        puts_(b, " ");
        put_num(b, v);
        puts_(b, "\n");
}

char *pg_metrics_render(const pg_metrics_t *m, size_t *len)
{
        static const char *const types[] = {"counter", "gauge", "histogram"};
        buf_t b = {0};
        puts_(&b, "");
        for (int fi = 0; fi < m->nfams; fi++) {
                const pg_mfamily_t *f = &m->fams[fi];
                puts_(&b, "# HELP ");
                puts_(&b, f->name);
                puts_(&b, " ");
                put_escaped(&b, f->help, false);
                puts_(&b, "\n# TYPE ");
                puts_(&b, f->name);
                puts_(&b, " ");
                puts_(&b, types[f->type]);
                puts_(&b, "\n");
                for (size_t i = 0; i < m->n; i++) {
                        const series_t *s = &m->s[i];
                        if (s->fam != fi)
                                continue;
                        if (f->type != PG_M_HISTOGRAM) {
                                put_sample(&b, f->name, "", f, s, NULL, s->v);
                                continue;
                        }
                        double cum = 0;
                        for (int k = 0; k < f->nbuckets; k++) {
                                char le[40];
                                snprintf(le, sizeof(le), "%.15g",
                                         f->buckets[k]);
                                cum += s->hist[k];
                                put_sample(&b, f->name, "_bucket", f, s, le,
                                           cum);
                        }
                        double count = s->hist[f->nbuckets];
                        put_sample(&b, f->name, "_bucket", f, s, "+Inf", count);
                        put_sample(&b, f->name, "_sum", f, s, NULL, s->v);
                        put_sample(&b, f->name, "_count", f, s, NULL, count);
                }
        }
        if (len)
                *len = b.n;
        return b.p;
}
