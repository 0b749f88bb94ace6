/*
 * kafka_conf.c - see kafka_conf.h.
 */
#include "kafka_conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util_mem.h"

void pg_kconf_init(pg_kconf_t *c)
{
        memset(c, 0, sizeof(*c));
}

void pg_kconf_free(pg_kconf_t *c)
{
        for (size_t i = 0; i < c->n; i++) {
                free(c->kv[i].key);
                free(c->kv[i].val);
        }
        free(c->kv);
        memset(c, 0, sizeof(*c));
}

static char *dup_range(const char *s, size_t n)
{
        char *d = pg_xmalloc(n + 1);
        memcpy(d, s, n);
        d[n] = '\0';
        return d;
}

void pg_kconf_set(pg_kconf_t *c, const char *key, const char *val,
                  const char *origin)
{
        for (size_t i = 0; i < c->n; i++)
                if (!strcmp(c->kv[i].key, key)) {
                        free(c->kv[i].val);
                        c->kv[i].val = dup_range(val, strlen(val));
                        snprintf(c->kv[i].origin, sizeof(c->kv[i].origin), "%s",
                                 origin);
                        return;
                }
        if (c->n == c->cap) {
                c->cap = c->cap ? 2 * c->cap : 16;
                c->kv = pg_xrealloc(c->kv, c->cap * sizeof(*c->kv));
        }
        pg_kv_t *kv = &c->kv[c->n++];
        kv->key = dup_range(key, strlen(key));
        kv->val = dup_range(val, strlen(val));
        snprintf(kv->origin, sizeof(kv->origin), "%s", origin);
}

/* Split "key = value" (trimmed); 0 or -1 when there is no '=' or no key. */
static int split(const char *s, size_t n, char **key, char **val)
{
        const char *eq = memchr(s, '=', n);
        if (!eq)
                return -1;
        const char *k0 = s, *k1 = eq;
        while (k0 < k1 && isspace((unsigned char)*k0))
                k0++;
        while (k1 > k0 && isspace((unsigned char)k1[-1]))
                k1--;
        const char *v0 = eq + 1, *v1 = s + n;
        while (v0 < v1 && isspace((unsigned char)*v0))
                v0++;
        while (v1 > v0 && isspace((unsigned char)v1[-1]))
                v1--;
        if (k0 == k1)
                return -1;
        *key = dup_range(k0, (size_t)(k1 - k0));
        *val = dup_range(v0, (size_t)(v1 - v0));
        return 0;
}

int pg_kconf_load(pg_kconf_t *c, const char *path, char *err, size_t errsz)
{
        FILE *f = fopen(path, "r");
        if (!f) {
                snprintf(err, errsz, "%s: %s", path, strerror(errno));
                return -1;
        }
        char line[4096];
        int no = 0;
        while (fgets(line, sizeof(line), f)) {
                no++;
                size_t n = strlen(line);
                if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
                        snprintf(err, errsz, "%s:%d: line too long", path, no);
                        fclose(f);
                        return -1;
                }
                const char *p = line;
                while (*p && isspace((unsigned char)*p))
                        p++;
                if (!*p || *p == '#')
                        continue;
                char *k, *v;
                if (split(p, strlen(p), &k, &v)) {
                        snprintf(err, errsz,
                                 "%s:%d: expected key=value, found '%.60s'",
                                 path, no, p);
                        fclose(f);
                        return -1;
                }
                char origin[96];
                snprintf(origin, sizeof(origin), "%.80s:%d", path, no);
                pg_kconf_set(c, k, v, origin);
                free(k);
                free(v);
        }
        fclose(f);
        return 0;
}

int pg_kconf_set_arg(pg_kconf_t *c, const char *arg, char *err, size_t errsz)
{
        char *k, *v;
        if (split(arg, strlen(arg), &k, &v)) {
                snprintf(err, errsz, "-X %s: expected key=value", arg);
                return -1;
        }
        pg_kconf_set(c, k, v, "-X");
        free(k);
        free(v);
        return 0;
}

static const pg_kv_t *find(const pg_kconf_t *c, const char *key)
{
        for (size_t i = 0; i < c->n; i++)
                if (!strcmp(c->kv[i].key, key))
                        return &c->kv[i];
        return NULL;
}

const char *pg_kconf_get(const pg_kconf_t *c, const char *key, const char *def)
{
        const pg_kv_t *kv = find(c, key);
        return kv ? kv->val : def;
}

int pg_kconf_int(const pg_kconf_t *c, const char *key, int64_t def, int64_t min,
                 int64_t max, int64_t *out, char *err, size_t errsz)
{
        const pg_kv_t *kv = find(c, key);
        if (!kv) {
                *out = def;
                return 0;
        }
        errno = 0;
        char *end;
        long long v = strtoll(kv->val, &end, 10);
        if (errno || end == kv->val || *end || v < min || v > max) {
                snprintf(err, errsz,
                         "%s: %s must be an integer in %lld..%lld, found "
                         "'%.40s'",
                         kv->origin, key, (long long)min, (long long)max,
                         kv->val);
                return -1;
        }
        *out = v;
        return 0;
}

int pg_kconf_bool(const pg_kconf_t *c, const char *key, bool def, bool *out,
                  char *err, size_t errsz)
{
        static const char *const names[] = {"false", "true", NULL};
        int v;
        if (pg_kconf_choice(c, key, names, def ? 1 : 0, &v, err, errsz))
                return -1;
        *out = v == 1;
        return 0;
}

int pg_kconf_choice(const pg_kconf_t *c, const char *key,
                    const char *const *choices, int def, int *out, char *err,
                    size_t errsz)
{
        const pg_kv_t *kv = find(c, key);
        if (!kv) {
                *out = def;
                return 0;
        }
        char list[256] = "";
        for (int i = 0; choices[i]; i++) {
                if (!strcmp(choices[i], kv->val)) {
                        *out = i;
                        return 0;
                }
                size_t l = strlen(list);
                snprintf(list + l, sizeof(list) - l, "%s%s", i ? " | " : "",
                         choices[i]);
        }
        snprintf(err, errsz, "%s: %s must be %s, found '%.40s'", kv->origin,
                 key, list, kv->val);
        return -1;
}

int pg_kconf_check_known(const pg_kconf_t *c, const char *const *known,
                         const char *prefix, char *err, size_t errsz)
{
        for (size_t i = 0; i < c->n; i++) {
                const char *k = c->kv[i].key;
                if (!strncmp(k, "kafka.", 6))
                        continue;
                bool ok = prefix && !strncmp(k, prefix, strlen(prefix));
                for (int j = 0; known[j] && !ok; j++)
                        ok = !strcmp(known[j], k);
                if (!ok) {
                        snprintf(err, errsz,
                                 "%s: unknown setting '%.60s' (librdkafka "
                                 "settings go under 'kafka.')",
                                 c->kv[i].origin, k);
                        return -1;
                }
        }
        return 0;
}

static int apply(rd_kafka_conf_t *rc, const pg_kv_t *kv, const char *name,
                 char *err, size_t errsz)
{
        char rerr[256];
        if (rd_kafka_conf_set(rc, name, kv->val, rerr, sizeof(rerr)) !=
            RD_KAFKA_CONF_OK) {
                snprintf(err, errsz, "%s: %s: %s", kv->origin, kv->key, rerr);
                return -1;
        }
        return 0;
}

rd_kafka_conf_t *pg_kconf_rdkafka(const pg_kconf_t *c, const char *role,
                                  char *err, size_t errsz)
{
        rd_kafka_conf_t *rc = rd_kafka_conf_new();
        char own[32];
        snprintf(own, sizeof(own), "kafka.%s.", role);
        /* two passes: shared settings first, then the role's own */
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < c->n; i++) {
                        const pg_kv_t *kv = &c->kv[i];
                        if (strncmp(kv->key, "kafka.", 6))
                                continue;
                        bool is_own = !strncmp(kv->key, own, strlen(own));
                        bool is_other =
                            !is_own &&
                            (!strncmp(kv->key, "kafka.consumer.", 15) ||
                             !strncmp(kv->key, "kafka.producer.", 15));
                        if (is_other)
                                continue;
                        if (pass == 0 && !is_own &&
                            apply(rc, kv, kv->key + 6, err, errsz))
                                goto fail;
                        if (pass == 1 && is_own &&
                            apply(rc, kv, kv->key + strlen(own), err, errsz))
                                goto fail;
                }
        return rc;
fail:
        rd_kafka_conf_destroy(rc);
        return NULL;
}

int pg_kconf_build(pg_kconf_t *c, const char *config, const char *const *xs,
                   int nx, char *err, size_t errsz)
{
        if (config && pg_kconf_load(c, config, err, errsz))
                return -1;
        for (int i = 0; i < nx; i++)
                if (pg_kconf_set_arg(c, xs[i], err, errsz))
                        return -1;
        return 0;
}
