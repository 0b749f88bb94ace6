/*
 * obs_http.h - posguard's HTTP endpoint (libmicrohttpd): Prometheus metrics,
 * health and readiness, and the live dashboard with its event stream.
 *
 *   GET /metrics  the exported registry, Prometheus text format 0.0.4
 *   GET /healthz  200 while the owner's loop turns (a heartbeat within
 *                 PG_OBS_STALL_MS, counted from listening) and it has not
 *                 failed, else 503
 *   GET /readyz   200 once the owner says it is ready (for `run`: the
 *                 consumer is assigned and every partition warmed up),
 *                 else 503 with the reason
 *   GET /         the live dashboard (one page, its assets in the binary)
 *   GET /events   Server-Sent Events: what the owner publishes (committed
 *                 alerts and refunds, periodic stats), oldest kept first
 *
 * The server runs on its own threads (one per connection, at most
 * PG_OBS_MAX_CONN); everything it reads is behind one mutex, and the
 * owner's calls below take it briefly.
 */
#ifndef PG_OBS_HTTP_H
#define PG_OBS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "obs_metrics.h"

#define PG_OBS_STALL_MS 120000 /* longer than any blocking call of a run */
#define PG_OBS_MAX_CONN 64
#define PG_OBS_MAX_STREAMS 16 /* event streams: the rest is for probes */
#define PG_OBS_EVENTS 2048    /* events kept for late subscribers */
#define PG_OBS_EVENT_MAX 4096 /* bytes of one event's data */

typedef struct pg_obs pg_obs_t;

pg_obs_t *pg_obs_new(const pg_mfamily_t *fams, int nfams);
/* Stop the server (closing event streams) and free everything. */
void pg_obs_free(pg_obs_t *o);

/* Listen on "HOST:PORT" (an IPv4 address or localhost; port 0: any free
 * one). Returns 0, or -1 with err. */
int pg_obs_listen(pg_obs_t *o, const char *hostport, char *err, size_t errsz);
/* "http://HOST:PORT/" once listening, else "". */
const char *pg_obs_url(const pg_obs_t *o);

/* The exported registry, locked: change it, then unlock. */
pg_metrics_t *pg_obs_lock(pg_obs_t *o);
void pg_obs_unlock(pg_obs_t *o);

/* The owner's loop turned; ready or not (why: shown by /readyz). */
void pg_obs_heartbeat(pg_obs_t *o, bool ready, const char *why);
/* The owner failed: /healthz says so from now on. */
void pg_obs_failed(pg_obs_t *o, const char *why);

/* Publish one event (type: an SSE event name; data: one line of JSON, at
 * most PG_OBS_EVENT_MAX bytes) to every stream. The caller holds no lock. */
void pg_obs_publish(pg_obs_t *o, const char *type, const char *data,
                    size_t len);
/* The latest "stats" event: not queued with the others (a page wants the
 * newest only, and a stream of them would push the alerts out of the
 * ring), sent to a stream when it connects and whenever it changes. */
void pg_obs_stats(pg_obs_t *o, const char *data, size_t len);

#endif
