/*
 * test_obs.c - the metrics registry, its Prometheus text exposition, and
 * the HTTP endpoint (metrics, health, readiness, the event stream) over a
 * real socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "kafka_obs.h"
#include "obs_http.h"
#include "obs_metrics.h"

static const double bk[] = {0.1, 1, 10};
enum { F_C, F_G, F_H, F__N };
static const pg_mfamily_t fams[F__N] = {
    [F_C] = {"t_things_total",
             "Things.\nSecond line \\ here.",
             PG_M_COUNTER,
             {"kind", "mode"}},
    [F_G] = {"t_level", "A level.", PG_M_GAUGE},
    [F_H] = {"t_seconds", "Durations.", PG_M_HISTOGRAM, {NULL}, bk, 3},
};

static void exposition(void **state)
{
        pg_metrics_t *m = pg_metrics_new(fams, F__N);
        const char *a[] = {"a", "enforce"}, *b[] = {"quo\"te\\back\nnl", "x"};
        pg_metrics_add(m, F_C, a, 2);
        pg_metrics_add(m, F_C, b, 1);
        pg_metrics_add(m, F_C, a, 3);
        pg_metrics_set(m, F_G, NULL, 0.25);
        pg_metrics_observe(m, F_H, NULL, 0.05);
        pg_metrics_observe(m, F_H, NULL, 5);
        pg_metrics_observe(m, F_H, NULL, 50);
        size_t n;
        char *t = pg_metrics_render(m, &n);
        assert_int_equal(strlen(t), n);
        const char *want =
            "# HELP t_things_total Things.\\nSecond line \\\\ here.\n"
            "# TYPE t_things_total counter\n"
            "t_things_total{kind=\"a\",mode=\"enforce\"} 5\n"
            "t_things_total{kind=\"quo\\\"te\\\\back\\nnl\",mode=\"x\"} 1\n"
            "# HELP t_level A level.\n"
            "# TYPE t_level gauge\n"
            "t_level 0.25\n"
            "# HELP t_seconds Durations.\n"
            "# TYPE t_seconds histogram\n"
            "t_seconds_bucket{le=\"0.1\"} 1\n"
            "t_seconds_bucket{le=\"1\"} 1\n"
            "t_seconds_bucket{le=\"10\"} 2\n"
            "t_seconds_bucket{le=\"+Inf\"} 3\n"
            "t_seconds_sum 55.05\n"
            "t_seconds_count 3\n";
        assert_string_equal(t, want);
        free(t);
        pg_metrics_free(m);
}

static void merge_reset_clear(void **state)
{
        pg_metrics_t *a = pg_metrics_new(fams, F__N);
        pg_metrics_t *b = pg_metrics_new(fams, F__N);
        char k[16];
        /* enough series to grow the index several times */
        for (int i = 0; i < 500; i++) {
                snprintf(k, sizeof(k), "k%d", i);
                const char *l[] = {k, "m"};
                pg_metrics_add(b, F_C, l, i);
        }
        pg_metrics_observe(b, F_H, NULL, 0.5);
        pg_metrics_merge(a, b);
        pg_metrics_merge(a, b);
        for (int i = 0; i < 500; i++) {
                snprintf(k, sizeof(k), "k%d", i);
                const char *l[] = {k, "m"};
                assert_true(pg_metrics_get(a, F_C, l) == 2.0 * i);
        }
        char *t = pg_metrics_render(a, NULL);
        assert_non_null(strstr(t, "t_seconds_bucket{le=\"1\"} 2\n"));
        assert_non_null(strstr(t, "t_seconds_count 2\n"));
        free(t);
        pg_metrics_set(a, F_G, NULL, 7);
        pg_metrics_reset_family(a, F_C);
        const char *l7[] = {"k7", "m"};
        assert_true(pg_metrics_get(a, F_C, l7) == 0);
        assert_true(pg_metrics_get(a, F_G, NULL) == 7);
        pg_metrics_add(a, F_C, l7, 1); /* the index still works */
        assert_true(pg_metrics_get(a, F_C, l7) == 1);
        assert_false(pg_metrics_empty(a));
        pg_metrics_clear(a);
        assert_true(pg_metrics_empty(a));
        assert_true(pg_metrics_get(a, F_G, NULL) == 0);
        pg_metrics_free(a);
        pg_metrics_free(b);
}

/* ---- HTTP ---- */

static int port_of(const char *url)
{
        const char *c = strrchr(url, ':');
        return c ? atoi(c + 1) : 0;
}

/* GET path; the response (headers and body) into out. Reads until the
 * server closes, or until want appears when want is set (an event
 * stream). */
static int http_get_h(int port, const char *path, const char *hdr, char *out,
                      size_t size, const char *want)
{
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
                return -1;
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char req[512];
        int n = snprintf(req, sizeof(req),
                         "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         "%s\r\n",
                         path, hdr);
        if (write(fd, req, (size_t)n) != n)
                return -1;
        size_t got = 0;
        for (;;) {
                ssize_t k = read(fd, out + got, size - 1 - got);
                if (k <= 0)
                        break;
                got += (size_t)k;
                out[got] = '\0';
                if (want && strstr(out, want))
                        break;
        }
        out[got] = '\0';
        close(fd);
        return atoi(out + 9); /* "HTTP/1.1 200" */
}

static int http_get(int port, const char *path, char *out, size_t size,
                    const char *want)
{
        return http_get_h(port, path, "", out, size, want);
}

static void http_endpoints(void **state)
{
        pg_obs_t *o = pg_obs_new(fams, F__N);
        char err[256];
        assert_int_equal(pg_obs_listen(o, "nonsense", err, sizeof(err)), -1);
        assert_non_null(strstr(err, "HOST:PORT"));
        assert_int_equal(pg_obs_listen(o, "127.0.0.1:0", err, sizeof(err)), 0);
        int port = port_of(pg_obs_url(o));
        assert_true(port > 0);
        static char buf[1 << 16];

        /* listening: alive, not ready yet */
        assert_int_equal(http_get(port, "/healthz", buf, sizeof(buf), NULL),
                         200);
        assert_int_equal(http_get(port, "/readyz", buf, sizeof(buf), NULL),
                         503);
        assert_non_null(strstr(buf, "not ready: starting"));
        pg_obs_heartbeat(o, false, "2 of 4 partitions warming up");
        assert_int_equal(http_get(port, "/healthz", buf, sizeof(buf), NULL),
                         200);
        assert_int_equal(http_get(port, "/readyz", buf, sizeof(buf), NULL),
                         503);
        assert_non_null(strstr(buf, "2 of 4 partitions warming up"));
        pg_obs_heartbeat(o, true, "");
        assert_int_equal(http_get(port, "/readyz", buf, sizeof(buf), NULL),
                         200);

        const char *l[] = {"a", "shadow"};
        pg_metrics_add(pg_obs_lock(o), F_C, l, 4);
        pg_obs_unlock(o);
        assert_int_equal(http_get(port, "/metrics", buf, sizeof(buf), NULL),
                         200);
        assert_non_null(strstr(buf, "text/plain; version=0.0.4"));
        assert_non_null(
            strstr(buf, "t_things_total{kind=\"a\",mode=\"shadow\"} 4\n"));

        /* events published before a page connects are replayed to it,
         * and the latest stats (only) comes first */
        pg_obs_stats(o, "{\"s\":1}", 7);
        pg_obs_stats(o, "{\"s\":2}", 7);
        pg_obs_publish(o, "alert", "{\"n\":1}", 7);
        pg_obs_publish(o, "refund", "{\"n\":2}", 7);
        assert_int_equal(
            http_get(port, "/events", buf, sizeof(buf), "data: {\"n\":2}"),
            200);
        assert_non_null(strstr(buf, "text/event-stream"));
        assert_non_null(
            strstr(buf, "event: alert\nid: 1\ndata: {\"n\":1}\n\n"));
        assert_non_null(strstr(buf, "event: refund\nid: 2\ndata: {\"n\":2}"));
        assert_non_null(strstr(buf, "event: stats\ndata: {\"s\":2}\n\n"));
        assert_null(strstr(buf, "{\"s\":1}"));

        /* a Last-Event-ID from before a restart (or made up) resumes from
         * what is kept, not from an id this process has not reached */
        assert_int_equal(http_get_h(port, "/events", "Last-Event-ID: 50000\r\n",
                                    buf, sizeof(buf), "data: {\"n\":2}"),
                         200);
        assert_non_null(strstr(buf, "data: {\"n\":1}"));
        /* a reconnect resumes after the last id it saw */
        assert_int_equal(http_get_h(port, "/events", "Last-Event-ID: 1\r\n",
                                    buf, sizeof(buf), "data: {\"n\":2}"),
                         200);
        assert_null(strstr(buf, "data: {\"n\":1}"));

        assert_int_equal(http_get(port, "/", buf, sizeof(buf), NULL), 200);
        assert_non_null(strstr(buf, "text/html"));
        assert_int_equal(http_get(port, "/nope", buf, sizeof(buf), NULL), 404);

        pg_obs_failed(o, "fenced");
        assert_int_equal(http_get(port, "/healthz", buf, sizeof(buf), NULL),
                         503);
        assert_non_null(strstr(buf, "fenced"));

        /* the port is taken: a clear error */
        pg_obs_t *o2 = pg_obs_new(fams, F__N);
        char hp[32];
        snprintf(hp, sizeof(hp), "127.0.0.1:%d", port);
        assert_int_equal(pg_obs_listen(o2, hp, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "cannot listen"));
        pg_obs_free(o2);
        pg_obs_free(o);
}

/* A stream open while events arrive, and while the server stops. */
typedef struct reader {
        int port;
        char buf[1 << 15];
        int code;
} reader_t;

static void *read_stream(void *arg)
{
        reader_t *r = arg;
        r->code = http_get(r->port, "/events", r->buf, sizeof(r->buf),
                           "data: {\"last\":true}");
        return NULL;
}

static void http_live_stream(void **state)
{
        pg_obs_t *o = pg_obs_new(fams, F__N);
        char err[256];
        assert_int_equal(pg_obs_listen(o, "127.0.0.1:0", err, sizeof(err)), 0);
        reader_t *r = calloc(1, sizeof(*r));
        r->port = port_of(pg_obs_url(o));
        pthread_t th;
        pthread_create(&th, NULL, read_stream, r);
        for (int i = 0; i < 100; i++) {
                char d[32];
                int n = snprintf(d, sizeof(d), "{\"i\":%d}", i);
                pg_obs_publish(o, "alert", d, (size_t)n);
                nanosleep(&(struct timespec){0, 1000000}, NULL);
        }
        pg_obs_publish(o, "alert", "{\"last\":true}", 13);
        pthread_join(th, NULL);
        assert_int_equal(r->code, 200);
        assert_non_null(strstr(r->buf, "data: {\"i\":99}"));
        free(r);
        /* a stream still open when the server stops is closed by it */
        pthread_t th2;
        reader_t *r2 = calloc(1, sizeof(*r2));
        r2->port = port_of(pg_obs_url(o));
        pthread_create(&th2, NULL, read_stream, r2);
        nanosleep(&(struct timespec){0, 100000000}, NULL);
        pg_obs_free(o);
        pthread_join(th2, NULL);
        free(r2);
}

/* Event streams are bounded; the probes still get through. */
static void http_stream_limit(void **state)
{
        pg_obs_t *o = pg_obs_new(fams, F__N);
        char err[256];
        assert_int_equal(pg_obs_listen(o, "127.0.0.1:0", err, sizeof(err)), 0);
        int port = port_of(pg_obs_url(o));
        int fds[PG_OBS_MAX_STREAMS];
        for (int i = 0; i < PG_OBS_MAX_STREAMS; i++) {
                fds[i] = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in sa = {.sin_family = AF_INET,
                                         .sin_port = htons((uint16_t)port)};
                inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
                assert_int_equal(
                    connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
                const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
                assert_int_equal(write(fds[i], req, sizeof(req) - 1),
                                 (ssize_t)sizeof(req) - 1);
                char b[64];
                assert_true(read(fds[i], b, sizeof(b)) > 0); /* it is open */
        }
        static char buf[4096];
        assert_int_equal(http_get(port, "/events", buf, sizeof(buf), NULL),
                         503);
        assert_non_null(strstr(buf, "too many event streams"));
        assert_int_equal(http_get(port, "/healthz", buf, sizeof(buf), NULL),
                         200);
        close(fds[0]);
        /* the freed place is taken again once the server sees the close */
        int code = 503;
        for (int k = 0; k < 100 && code == 503; k++) {
                pg_obs_publish(o, "alert", "{}", 2); /* wakes the stream */
                nanosleep(&(struct timespec){0, 20000000}, NULL);
                code =
                    http_get_h(port, "/events", "", buf, sizeof(buf), "retry:");
        }
        assert_int_equal(code, 200);
        for (int i = 1; i < PG_OBS_MAX_STREAMS; i++)
                close(fds[i]);
        pg_obs_free(o);
}

/* Top merchants: counted in the window, most first, ties by id, one entry
 * per merchant however many come and go (the quietest is evicted). */
static void top_merchants(void **state)
{
        pg_topk_t *t = pg_topk_new();
        int64_t now = 1000LL * 60000;
        for (int i = 0; i < 5; i++)
                pg_topk_add(t, "M-big", i % 2 ? "T1" : "T2", now);
        for (int i = 0; i < 3; i++)
                pg_topk_add(t, "M-mid", "T9", now);
        char id[32];
        for (int i = 0; i < 10000; i++) { /* far more than it keeps */
                snprintf(id, sizeof(id), "M-one-%05d", i);
                pg_topk_add(t, id, "T", now);
        }
        pg_topk_add(t, "M-mid", "T9", now); /* still found, not doubled */
        pg_topk_row_t top[PG_TOPK_N];
        size_t n = pg_topk_top(t, now, top, PG_TOPK_N);
        assert_int_equal(n, PG_TOPK_N);
        assert_string_equal(top[0].merchant, "M-big");
        assert_int_equal(top[0].alerts, 5);
        assert_int_equal(top[0].terminals, 2);
        assert_string_equal(top[1].merchant, "M-mid");
        assert_int_equal(top[1].alerts, 4);
        assert_int_equal(top[1].terminals, 1);
        for (size_t i = 2; i < n; i++) {
                assert_int_equal(top[i].alerts, 1);
                assert_true(strcmp(top[i - 1].merchant, top[i].merchant) < 0 ||
                            i == 2);
        }
        /* out of the window: gone */
        assert_int_equal(
            pg_topk_top(t, now + PG_TOPK_WINDOW_MIN * 60000LL, top, PG_TOPK_N),
            0);
        pg_topk_free(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(exposition),
            cmocka_unit_test(top_merchants),
            cmocka_unit_test(merge_reset_clear),
            cmocka_unit_test(http_endpoints),
            cmocka_unit_test(http_live_stream),
            cmocka_unit_test(http_stream_limit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
