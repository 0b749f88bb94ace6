/*
 * obs_http.c - see obs_http.h.
 *
 * libmicrohttpd runs the server with a thread per connection, so an event
 * stream's reader may block: it waits on a condition variable for the next
 * event (or 15 s, then sends an SSE comment to keep proxies from closing
 * the stream). Events are kept in a ring of PG_OBS_EVENTS; a stream that
 * falls behind the ring skips to the oldest event still kept (the page
 * shows live data, the counts come from the stats events).
 */
#include "obs_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util_log.h"
#include "util_mem.h"
#include "util_time.h"

extern const unsigned char pg_dashboard_html[];
extern const size_t pg_dashboard_html_len;

typedef struct event {
        uint64_t seq; /* 0: empty */
        char type[24];
        char *data;
        size_t len;
} event_t;

struct pg_obs {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        pg_metrics_t *reg;
        struct MHD_Daemon *d;
        char url[96];
        /* health */
        int64_t beat_ms; /* monotonic; 0: never */
        bool ready, failed;
        char why[256];
        /* events */
        event_t ev[PG_OBS_EVENTS];
        uint64_t seq; /* of the last event published */
        char *stats;  /* the latest stats event's data */
        size_t stats_len;
        uint64_t stats_gen; /* bumped by each */
        int streams;        /* open event streams */
        bool stopping;
};

pg_obs_t *pg_obs_new(const pg_mfamily_t *fams, int nfams)
{
        pg_obs_t *o = pg_xcalloc(1, sizeof(*o));
        pthread_mutex_init(&o->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&o->cv, &ca);
        pthread_condattr_destroy(&ca);
        o->reg = pg_metrics_new(fams, nfams);
        snprintf(o->why, sizeof(o->why), "starting");
        return o;
}

void pg_obs_free(pg_obs_t *o)
{
        if (!o)
                return;
        pthread_mutex_lock(&o->mu);
        o->stopping = true;
        pthread_cond_broadcast(&o->cv);
        pthread_mutex_unlock(&o->mu);
        if (o->d)
                MHD_stop_daemon(o->d);
        for (int i = 0; i < PG_OBS_EVENTS; i++)
                free(o->ev[i].data);
        free(o->stats);
        pg_metrics_free(o->reg);
        pthread_cond_destroy(&o->cv);
        pthread_mutex_destroy(&o->mu);
        free(o);
}

pg_metrics_t *pg_obs_lock(pg_obs_t *o)
{
        pthread_mutex_lock(&o->mu);
        return o->reg;
}

void pg_obs_unlock(pg_obs_t *o)
{
        pthread_mutex_unlock(&o->mu);
}

void pg_obs_heartbeat(pg_obs_t *o, bool ready, const char *why)
{
        pthread_mutex_lock(&o->mu);
        o->beat_ms = pg_mono_ms();
        if (!o->failed) {
                o->ready = ready;
                snprintf(o->why, sizeof(o->why), "%s", ready ? "" : why);
        }
        pthread_mutex_unlock(&o->mu);
}

void pg_obs_failed(pg_obs_t *o, const char *why)
{
        pthread_mutex_lock(&o->mu);
        o->failed = true;
        o->ready = false;
        snprintf(o->why, sizeof(o->why), "%s", why);
        pthread_mutex_unlock(&o->mu);
}

void pg_obs_publish(pg_obs_t *o, const char *type, const char *data, size_t len)
{
        if (len > PG_OBS_EVENT_MAX)
                return; /* never cut JSON in the middle */
        char *copy = pg_xmalloc(len + 1);
        memcpy(copy, data, len);
        copy[len] = '\0';
        pthread_mutex_lock(&o->mu);
        event_t *e = &o->ev[(o->seq + 1) % PG_OBS_EVENTS];
        free(e->data);
        e->seq = ++o->seq;
        snprintf(e->type, sizeof(e->type), "%s", type);
        e->data = copy;
        e->len = len;
        pthread_cond_broadcast(&o->cv);
        pthread_mutex_unlock(&o->mu);
}

void pg_obs_stats(pg_obs_t *o, const char *data, size_t len)
{
        char *copy = pg_xmalloc(len + 1);
        memcpy(copy, data, len);
        copy[len] = '\0';
        pthread_mutex_lock(&o->mu);
        free(o->stats);
        o->stats = copy;
        o->stats_len = len;
        o->stats_gen++;
        pthread_cond_broadcast(&o->cv);
        pthread_mutex_unlock(&o->mu);
}

/* ---- responses ---- */

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned code,
                                const char *type, const void *body, size_t n,
                                enum MHD_ResponseMemoryMode mode)
{
        struct MHD_Response *r =
            MHD_create_response_from_buffer(n, (void *)body, mode);
        if (!r)
                return MHD_NO;
        MHD_add_response_header(r, "Content-Type", type);
        MHD_add_response_header(r, "Cache-Control", "no-store");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        enum MHD_Result ok = MHD_queue_response(c, code, r);
        MHD_destroy_response(r);
        return ok;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned code,
                                 const char *text)
{
        return send_buf(c, code, "text/plain; charset=utf-8", text,
                        strlen(text), MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result health(pg_obs_t *o, struct MHD_Connection *c,
                              bool readiness)
{
        char msg[320];
        unsigned code;
        pthread_mutex_lock(&o->mu);
        int64_t age = o->beat_ms ? pg_mono_ms() - o->beat_ms : -1;
        if (o->failed) {
                code = MHD_HTTP_SERVICE_UNAVAILABLE;
                snprintf(msg, sizeof(msg), "failed: %s\n", o->why);
        } else if (age < 0 || age > PG_OBS_STALL_MS) {
                code = MHD_HTTP_SERVICE_UNAVAILABLE;
                snprintf(msg, sizeof(msg),
                         age < 0 ? "not started\n"
                                 : "stalled: no loop turn for %lld ms\n",
                         (long long)age);
        } else if (readiness && !o->ready) {
                code = MHD_HTTP_SERVICE_UNAVAILABLE;
                snprintf(msg, sizeof(msg), "not ready: %s\n", o->why);
        } else {
                code = MHD_HTTP_OK;
                snprintf(msg, sizeof(msg), "%s\n", readiness ? "ready" : "ok");
        }
        pthread_mutex_unlock(&o->mu);
        return send_text(c, code, msg);
}

/* ---- the event stream ---- */

typedef struct stream {
        pg_obs_t *o;
        uint64_t next;      /* seq of the next event to send */
        uint64_t stats_gen; /* of the stats event sent last */
        char *out;          /* formatted, not yet sent */
        size_t len, off, cap;
} stream_t;

static void stream_put(stream_t *s, const char *p, size_t n)
{
        if (s->len + n > s->cap) {
                while (s->len + n > s->cap)
                        s->cap = s->cap ? 2 * s->cap : 8192;
                s->out = pg_xrealloc(s->out, s->cap);
        }
        memcpy(s->out + s->len, p, n);
        s->len += n;
}

/* Format every event from s->next on (at most 64 at a time); wait up to
 * 15 s for one. Called with o->mu held. */
static void stream_fill(stream_t *s)
{
        pg_obs_t *o = s->o;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 15;
        while (!o->stopping && o->seq < s->next && o->stats_gen == s->stats_gen)
                if (pthread_cond_timedwait(&o->cv, &o->mu, &until))
                        break;
        if (o->stopping)
                return;
        /* an id from before a restart (ids start again at 1) or made up:
         * start from what is kept */
        if (s->next > o->seq + 1)
                s->next = 1;
        if (o->stats_gen != s->stats_gen && o->stats) {
                s->stats_gen = o->stats_gen;
                static const char h[] = "event: stats\ndata: ";
                stream_put(s, h, sizeof(h) - 1);
                stream_put(s, o->stats, o->stats_len);
                stream_put(s, "\n\n", 2);
        }
        if (o->seq < s->next) {
                if (s->len)
                        return; /* the stats event */
                static const char keep[] = ": keep-alive\n\n";
                stream_put(s, keep, sizeof(keep) - 1);
                return;
        }
        uint64_t oldest =
            o->seq >= PG_OBS_EVENTS ? o->seq - PG_OBS_EVENTS + 1 : 1;
        if (s->next < oldest)
                s->next = oldest;
        for (int k = 0; k < 64 && s->next <= o->seq; k++, s->next++) {
                const event_t *e = &o->ev[s->next % PG_OBS_EVENTS];
                char h[64];
                int n = snprintf(h, sizeof(h),
                                 "event: %s\nid: %llu\ndata: ", e->type,
                                 (unsigned long long)e->seq);
                stream_put(s, h, (size_t)n);
                stream_put(s, e->data, e->len);
                stream_put(s, "\n\n", 2);
        }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        (void)pos;
        stream_t *s = cls;
        if (s->off == s->len) {
                s->off = s->len = 0;
                pthread_mutex_lock(&s->o->mu);
                stream_fill(s);
                bool stop = s->o->stopping;
                pthread_mutex_unlock(&s->o->mu);
                if (stop)
                        return MHD_CONTENT_READER_END_OF_STREAM;
        }
        size_t n = s->len - s->off < max ? s->len - s->off : max;
        memcpy(buf, s->out + s->off, n);
        s->off += n;
        return (ssize_t)n;
}

static void stream_free(void *cls)
{
        stream_t *s = cls;
        pthread_mutex_lock(&s->o->mu);
        s->o->streams--;
        pthread_mutex_unlock(&s->o->mu);
        free(s->out);
        free(s);
}

static enum MHD_Result events(pg_obs_t *o, struct MHD_Connection *c)
{
        /* a bounded number of streams, so that the health probes and the
         * scrapes always find a connection */
        pthread_mutex_lock(&o->mu);
        bool full = o->streams >= PG_OBS_MAX_STREAMS;
        if (!full)
                o->streams++;
        pthread_mutex_unlock(&o->mu);
        if (full)
                return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                                 "too many event streams open\n");
        stream_t *s = pg_xcalloc(1, sizeof(*s));
        s->o = o;
        /* a new page gets what is still kept, then the live stream;
         * Last-Event-ID (a reconnect) resumes after what it saw */
        const char *last =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
        s->next = last ? strtoull(last, NULL, 10) + 1 : 1;
        stream_put(s, "retry: 2000\n\n", 13);
        struct MHD_Response *r = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, 8192, stream_read, s, stream_free);
        if (!r) {
                stream_free(s);
                return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-store");
        enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ok;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **ctx)
{
        (void)version;
        (void)upload;
        pg_obs_t *o = cls;
        if (!*ctx) { /* first call: headers only */
                *ctx = o;
                return MHD_YES;
        }
        if (*upload_size)
                return MHD_NO;
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
                return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                                 "only GET and HEAD\n");
        if (!strcmp(url, "/metrics")) {
                size_t n;
                pthread_mutex_lock(&o->mu);
                char *text = pg_metrics_render(o->reg, &n);
                pthread_mutex_unlock(&o->mu);
                return send_buf(c, MHD_HTTP_OK,
                                "text/plain; version=0.0.4; charset=utf-8",
                                text, n, MHD_RESPMEM_MUST_FREE);
        }
        if (!strcmp(url, "/healthz"))
                return health(o, c, false);
        if (!strcmp(url, "/readyz"))
                return health(o, c, true);
        if (!strcmp(url, "/events"))
                return events(o, c);
        if (!strcmp(url, "/") || !strcmp(url, "/index.html"))
                return send_buf(c, MHD_HTTP_OK, "text/html; charset=utf-8",
                                pg_dashboard_html, pg_dashboard_html_len,
                                MHD_RESPMEM_PERSISTENT);
        return send_text(c, MHD_HTTP_NOT_FOUND,
                         "not found: /metrics /healthz /readyz / /events\n");
}

/* libmicrohttpd's own messages, through our log (its format, one line).
 * A page closing its event stream is routine, not worth a line. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        (void)cls;
        char m[512];
        vsnprintf(m, sizeof(m), fmt, ap);
        if (strstr(m, "closed by remote peer") || strstr(m, "Connection reset"))
                return;
        pg_log(PG_LOG_WARN, "event=http_error message=\"%s\"",
               pg_log_quotable(m));
}

int pg_obs_listen(pg_obs_t *o, const char *hostport, char *err, size_t errsz)
{
        char host[64];
        const char *colon = strrchr(hostport, ':');
        if (!colon || (size_t)(colon - hostport) >= sizeof(host)) {
                snprintf(err, errsz, "http.listen: \"%s\" is not HOST:PORT",
                         hostport);
                return -1;
        }
        memcpy(host, hostport, (size_t)(colon - hostport));
        host[colon - hostport] = '\0';
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || end == colon + 1 || port < 0 || port > 65535) {
                snprintf(err, errsz, "http.listen: bad port in \"%s\"",
                         hostport);
                return -1;
        }
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        if (!strcmp(host, "localhost"))
                snprintf(host, sizeof(host), "127.0.0.1");
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
                snprintf(err, errsz,
                         "http.listen: \"%s\" is not an IPv4 address", host);
                return -1;
        }
        o->d = MHD_start_daemon(
            MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                MHD_USE_ERROR_LOG,
            (uint16_t)port, NULL, NULL, handle, o, MHD_OPTION_EXTERNAL_LOGGER,
            mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)PG_OBS_MAX_CONN,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
        if (!o->d) {
                snprintf(err, errsz,
                         "http.listen: cannot listen on %s (in use? set "
                         "http.listen to another port, or empty for none)",
                         hostport);
                return -1;
        }
        pg_obs_heartbeat(o, false, "starting"); /* alive, not ready */
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(o->d, MHD_DAEMON_INFO_BIND_PORT);
        snprintf(o->url, sizeof(o->url), "http://%s:%u/", host,
                 di ? (unsigned)di->port : (unsigned)port);
        return 0;
}

const char *pg_obs_url(const pg_obs_t *o)
{
        return o->url;
}
