/*
 * engine_harness.h - building blocks for engine tests: rule sets built in
 * code, records built field by field, and a sink that keeps copies of
 * every alert and refund so tests can assert on them.
 */
#ifndef PG_ENGINE_HARNESS_H
#define PG_ENGINE_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "rules.h"

#define H_MAX_OUT 256
#define T0 1763805600000LL /* 2025-11-22T10:00:00Z */

typedef struct h_alert {
        char alert_id[PG_ID_LEN];
        char rule_id[72], finding[72], severity[16], mode[16];
        char txn_ids[PG_MAX_RELATED + 1][72];
        int n_txn_ids;
        long long amount, event_time;
} h_alert_t;

typedef struct h_refund {
        char refund_id[PG_ID_LEN], alert_id[PG_ID_LEN];
        char rule_id[72], txn_id[72], card_token[72], reason[16];
        long long amount, decided_at;
} h_refund_t;

typedef struct h_out {
        h_alert_t alerts[H_MAX_OUT];
        int n_alerts;
        h_refund_t refunds[H_MAX_OUT];
        int n_refunds;
} h_out_t;

static inline void h_on_alert(void *o, const pg_alert_t *a)
{
        h_out_t *out = o;
        if (out->n_alerts >= H_MAX_OUT)
                abort();
        h_alert_t *h = &out->alerts[out->n_alerts++];
        memset(h, 0, sizeof(*h));
        memcpy(h->alert_id, a->alert_id, PG_ID_LEN);
        snprintf(h->rule_id, sizeof(h->rule_id), "%s", a->rule_id);
        snprintf(h->finding, sizeof(h->finding), "%s", a->finding);
        snprintf(h->severity, sizeof(h->severity), "%s", a->severity);
        snprintf(h->mode, sizeof(h->mode), "%s", a->mode);
        for (int i = 0; i < a->n_txn_ids; i++)
                snprintf(h->txn_ids[i], sizeof(h->txn_ids[i]), "%s",
                         a->txn_ids[i]);
        h->n_txn_ids = a->n_txn_ids;
        h->amount = a->amount;
        h->event_time = a->event_time;
}

static inline void h_on_refund(void *o, const pg_refund_t *r)
{
        h_out_t *out = o;
        if (out->n_refunds >= H_MAX_OUT)
                abort();
        h_refund_t *h = &out->refunds[out->n_refunds++];
        memset(h, 0, sizeof(*h));
        memcpy(h->refund_id, r->refund_id, PG_ID_LEN);
        memcpy(h->alert_id, r->alert_id, PG_ID_LEN);
        snprintf(h->rule_id, sizeof(h->rule_id), "%s", r->rule_id);
        snprintf(h->txn_id, sizeof(h->txn_id), "%s", r->txn_id);
        snprintf(h->card_token, sizeof(h->card_token), "%s", r->card_token);
        snprintf(h->reason, sizeof(h->reason), "%s", r->reason);
        h->amount = r->amount;
        h->decided_at = r->decided_at;
}

/* A rule set of up to 8 rules, defaults of DOMAIN.md. */
typedef struct h_rules {
        pg_ruleset_t rs;
        pg_rule_t rules[8];
} h_rules_t;

static inline void h_rules_init(h_rules_t *h)
{
        memset(h, 0, sizeof(*h));
        snprintf(h->rs.version, sizeof(h->rs.version), "test-1");
        h->rs.allowed_lateness_ms = 5000;
        h->rs.dedupe_horizon_ms = 24LL * 3600 * 1000;
        h->rs.refund_delay_ms = 120000;
        h->rs.rules = h->rules;
}

static inline pg_rule_t *h_rule(h_rules_t *h, const char *id, pg_detector_t d,
                                pg_action_t action)
{
        pg_rule_t *r = &h->rules[h->rs.n_rules++];
        memset(r, 0, sizeof(*r));
        snprintf(r->id, sizeof(r->id), "%s", id);
        r->detector = d;
        snprintf(r->severity, sizeof(r->severity), "high");
        r->action = action;
        r->mode = PG_MODE_ENFORCE;
        r->window_ms = d == PG_DET_RETRY_DUPLICATE ? 900000 : 120000;
        r->auto_refund_within_ms = 60000;
        r->lookback_ms = 30LL * 86400 * 1000;
        return r;
}

static inline void h_str(pg_str_t *s, const char *v)
{
        size_t n = v ? strlen(v) : 0;
        s->len = (uint8_t)n;
        if (n)
                memcpy(s->s, v, n);
        s->s[n] = '\0';
}

/* A charge: approved purchase. rrn = "R" + txn. */
static inline pg_record_t h_charge(const char *txn, long long t,
                                   const char *merchant, const char *terminal,
                                   const char *stan, const char *card,
                                   long long amount)
{
        pg_record_t r;
        memset(&r, 0, sizeof(r));
        char rrn[80];
        snprintf(rrn, sizeof(rrn), "R%s", txn);
        h_str(&r.txn_id, txn);
        h_str(&r.rrn, rrn);
        h_str(&r.merchant_id, merchant);
        h_str(&r.terminal_id, terminal);
        h_str(&r.stan, stan);
        h_str(&r.card_token, card);
        h_str(&r.currency, "EUR");
        h_str(&r.pan_masked, "622848******1234");
        r.amount = amount;
        r.event_time = t;
        r.kind = PG_KIND_PURCHASE;
        r.status = PG_STATUS_APPROVED;
        return r;
}

/* A refund/reversal/void of the charge whose txn is orig_txn. */
static inline pg_record_t h_follow(const char *txn, long long t, pg_kind_t kind,
                                   const char *orig_txn, const char *card,
                                   long long amount)
{
        pg_record_t r = h_charge(txn, t, "M1", "T1", "999999", card, amount);
        char rrn[80];
        snprintf(rrn, sizeof(rrn), "R%s", orig_txn);
        h_str(&r.original_rrn, rrn);
        r.kind = (uint8_t)kind;
        return r;
}

typedef struct h_run {
        h_out_t out;
        pg_engine_t *e;
        pg_engine_stats_t st;
} h_run_t;

static inline void h_start(h_run_t *run, const h_rules_t *rules,
                           const pg_engine_conf_t *conf)
{
        memset(&run->out, 0, sizeof(run->out));
        pg_sink_t sink = {h_on_alert, h_on_refund, &run->out};
        char err[256];
        pg_engine_conf_t c;
        memset(&c, 0, sizeof(c));
        if (conf)
                c = *conf;
        c.event_clock = true;
        run->e = pg_engine_new(&rules->rs, &c, &sink, err, sizeof(err));
        if (!run->e) {
                fprintf(stderr, "engine: %s\n", err);
                abort();
        }
}

static inline void h_push(h_run_t *run, pg_record_t r)
{
        pg_engine_push(run->e, &r);
}

static inline void h_finish(h_run_t *run)
{
        pg_engine_flush(run->e);
        pg_engine_stats(run->e, &run->st);
        pg_engine_free(run->e);
        run->e = NULL;
}

/* Two runs gave the same outputs: the same alerts and refunds, in the
 * same order, with the same ids and amounts (cmocka's assertions: include
 * cmocka.h before this header). */
static inline void h_assert_same_outputs(const h_out_t *a, const h_out_t *b)
{
        assert_int_equal(a->n_alerts, b->n_alerts);
        assert_int_equal(a->n_refunds, b->n_refunds);
        for (int i = 0; i < a->n_alerts; i++)
                assert_string_equal(a->alerts[i].alert_id,
                                    b->alerts[i].alert_id);
        for (int i = 0; i < a->n_refunds; i++) {
                assert_string_equal(a->refunds[i].refund_id,
                                    b->refunds[i].refund_id);
                assert_int_equal(a->refunds[i].amount, b->refunds[i].amount);
        }
}

/* Count alerts with this finding. */
static inline int h_count(const h_run_t *run, const char *finding)
{
        int n = 0;
        for (int i = 0; i < run->out.n_alerts; i++)
                n += !strcmp(run->out.alerts[i].finding, finding);
        return n;
}

static inline const h_alert_t *
h_find_alert(const h_run_t *run, const char *finding, const char *txn)
{
        for (int i = 0; i < run->out.n_alerts; i++)
                if (!strcmp(run->out.alerts[i].finding, finding) &&
                    !strcmp(run->out.alerts[i].txn_ids[0], txn))
                        return &run->out.alerts[i];
        return NULL;
}

static inline const h_refund_t *h_find_refund(const h_run_t *run,
                                              const char *txn)
{
        for (int i = 0; i < run->out.n_refunds; i++)
                if (!strcmp(run->out.refunds[i].txn_id, txn))
                        return &run->out.refunds[i];
        return NULL;
}

#endif
