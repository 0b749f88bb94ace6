/*
 * obs_metrics.h - a small metrics registry and its Prometheus text
 * exposition (format 0.0.4).
 *
 * Families are declared once, in a static table (name, help, type, label
 * names, histogram buckets); a registry holds the series of those families:
 * one value per combination of label values (a histogram: its bucket
 * counts, sum and count). Registries of the same families merge, which is
 * how `posguard run` counts outputs per transaction: processing threads
 * count into their partition's registry, the consumer thread merges those
 * into the open transaction's, and that one into the exported registry only
 * when the transaction commits (an aborted transaction's counts are
 * dropped with it).
 *
 * Not thread-safe: the owner locks around a registry other threads read.
 * Label values are copied. A family's series come out in the order they
 * were first touched.
 */
#ifndef PG_OBS_METRICS_H
#define PG_OBS_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define PG_M_MAX_LABELS 4

typedef enum pg_mtype { PG_M_COUNTER, PG_M_GAUGE, PG_M_HISTOGRAM } pg_mtype_t;

typedef struct pg_mfamily {
        const char *name; /* posguard_..., base units, counters end _total */
        const char *help;
        pg_mtype_t type;
        const char *labels[PG_M_MAX_LABELS]; /* NULL-terminated when fewer */
        const double *buckets; /* histograms: upper bounds, increasing */
        int nbuckets;
} pg_mfamily_t;

typedef struct pg_metrics pg_metrics_t;

/* fams must outlive the registry (a static table). */
pg_metrics_t *pg_metrics_new(const pg_mfamily_t *fams, int nfams);
void pg_metrics_free(pg_metrics_t *m);

/* Add v to a counter or gauge series (labels: one value per label name of
 * the family, in order). */
void pg_metrics_add(pg_metrics_t *m, int fam, const char *const *labels,
                    double v);
/* Set a gauge series. */
void pg_metrics_set(pg_metrics_t *m, int fam, const char *const *labels,
                    double v);
/* Observe x in a histogram series. */
void pg_metrics_observe(pg_metrics_t *m, int fam, const char *const *labels,
                        double x);
/* Drop every series of a family (a gauge whose label sets come and go:
 * partitions assigned, tables of the rules in force). */
void pg_metrics_reset_family(pg_metrics_t *m, int fam);
/* Add every series of src into dst (same family table): counters and
 * gauges add, histograms add bucket by bucket. */
void pg_metrics_merge(pg_metrics_t *dst, const pg_metrics_t *src);
/* Drop every series. */
void pg_metrics_clear(pg_metrics_t *m);
bool pg_metrics_empty(const pg_metrics_t *m);
/* The value of one counter or gauge series (0 when absent). */
double pg_metrics_get(const pg_metrics_t *m, int fam,
                      const char *const *labels);

/* Call fn for every series of a counter or gauge family, in order. */
void pg_metrics_each(const pg_metrics_t *m, int fam,
                     void (*fn)(const char *const *labels, double v, void *arg),
                     void *arg);

/* The text exposition of m, NUL-terminated, malloc'ed (the caller frees);
 * *len gets its length. */
char *pg_metrics_render(const pg_metrics_t *m, size_t *len);

#endif
