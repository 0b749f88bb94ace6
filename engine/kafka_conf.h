/*
 * kafka_conf.h - the configuration of the Kafka commands (run, produce,
 * watch): a properties file of key=value lines plus -X key=value overrides,
 * as librdkafka's own tools take them.
 *
 * Keys under "kafka." go to librdkafka unchanged (prefix removed) for every
 * client; "kafka.consumer." and "kafka.producer." only for that client. Any
 * other key must be one the command knows, so a typo is an error, not a
 * silently ignored setting.
 */
#ifndef PG_KAFKA_CONF_H
#define PG_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pg_kv {
        char *key;
        char *val;
        char origin[96]; /* "file:line" or "-X" for messages */
} pg_kv_t;

typedef struct pg_kconf {
        pg_kv_t *kv;
        size_t n, cap;
} pg_kconf_t;

void pg_kconf_init(pg_kconf_t *c);
void pg_kconf_free(pg_kconf_t *c);
/* Read a properties file: "key=value" lines, '#' comments, blank lines,
 * whitespace around key and value ignored. Later settings win. Returns 0,
 * or -1 with "FILE:LINE: what" in err. */
int pg_kconf_load(pg_kconf_t *c, const char *path, char *err, size_t errsz);
/* The file at config (may be NULL), then the nx -X arguments in xs, as the
 * commands take them. Returns 0, or -1 with err. */
int pg_kconf_build(pg_kconf_t *c, const char *config, const char *const *xs,
                   int nx, char *err, size_t errsz);
/* One "key=value" (a -X argument). Returns 0 or -1 with err. */
int pg_kconf_set_arg(pg_kconf_t *c, const char *arg, char *err, size_t errsz);
void pg_kconf_set(pg_kconf_t *c, const char *key, const char *val,
                  const char *origin);
/* The value of key, or def. */
const char *pg_kconf_get(const pg_kconf_t *c, const char *key, const char *def);
/* Typed getters: 0 on success (def when absent), -1 with err on a bad
 * value. */
int pg_kconf_int(const pg_kconf_t *c, const char *key, int64_t def, int64_t min,
                 int64_t max, int64_t *out, char *err, size_t errsz);
int pg_kconf_bool(const pg_kconf_t *c, const char *key, bool def, bool *out,
                  char *err, size_t errsz);
/* One of the names in choices (NULL-terminated); *out is its index. */
int pg_kconf_choice(const pg_kconf_t *c, const char *key,
                    const char *const *choices, int def, int *out, char *err,
                    size_t errsz);
/* Every key that is not kafka.* must be in known (NULL-terminated) or
 * start with prefix (NULL: none). */
int pg_kconf_check_known(const pg_kconf_t *c, const char *const *known,
                         const char *prefix, char *err, size_t errsz);
/* A librdkafka configuration for role ("consumer" or "producer"): every
 * kafka.* then kafka.<role>.* setting. NULL with err on a setting
 * librdkafka refuses (the message names the key and where it was set). */
rd_kafka_conf_t *pg_kconf_rdkafka(const pg_kconf_t *c, const char *role,
                                  char *err, size_t errsz);

#endif
