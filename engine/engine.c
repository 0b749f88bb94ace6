/*
 * engine.c - the engine's driver: arrival (dedupe, reorder), processing in
 * groups of equal event time, and the helpers the detectors share.
 *
 * The flow of one record (docs/SEMANTICS.md section 2):
 *   push -> transport dedupe -> reorder buffer -> released in (t, arrival)
 *   order, in groups of equal t -> (1) refund decisions due before t ->
 *   (2) facts: cancellations and charges -> (3) detectors, rule file order.
 * Expiry of every table runs once per group with bounded work.
 */
#include "engine_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules_expr.h"
#include "util_time.h"

/* A fact and its table slot's 24-byte header fill one 64-byte cache line. */
_Static_assert(sizeof(pg_fact_t) <= 40, "pg_fact_t outgrew its cache line");
_Static_assert(sizeof(pg_pair_member_t) <= 64,
               "pg_pair_member_t outgrew its cache line");

static const char *const finding_names[PG_FIND__COUNT] = {
    "retry_duplicate",
    "repeated_swipe",
    "overcharge",
    "undercharge",
    "refund_exceeds_original",
    "refund_card_mismatch",
    "refund_without_original",
    "refund_blocked",
    "aggregate"};

const char *pg_finding_name(pg_finding_t f)
{
        return f < PG_FIND__COUNT ? finding_names[f] : "unknown";
}

static int64_t max64(int64_t a, int64_t b)
{
        return a > b ? a : b;
}

int64_t pg_engine_horizon_ms(const pg_ruleset_t *rules)
{
        int64_t maxwin = 0, lookback = 0, aggwin = 0;
        for (int i = 0; i < rules->n_rules; i++) {
                const pg_rule_t *r = &rules->rules[i];
                if (r->detector == PG_DET_RETRY_DUPLICATE ||
                    r->detector == PG_DET_REPEATED_SWIPE)
                        maxwin = max64(maxwin, r->window_ms);
                else if (r->detector == PG_DET_REFUND_ANOMALY)
                        lookback = max64(lookback, r->lookback_ms);
                else if (r->detector == PG_DET_AGGREGATE)
                        aggwin = max64(aggwin, r->window_ms);
        }
        int64_t h = maxwin + rules->refund_delay_ms;
        h = max64(h, lookback);
        h = max64(h, aggwin);
        h = max64(h, rules->dedupe_horizon_ms);
        return h + rules->allowed_lateness_ms + 1;
}

/* How long state must be kept (SEMANTICS.md 2 and 4): a charge is paired
 * within the longest window, decided refund_delay later, and records may
 * be allowed_lateness out of order (short_h); its fact is kept for the
 * refund anomaly's lookback if that is longer (long_h). */
static void horizons(const pg_ruleset_t *rules, int64_t *short_h,
                     int64_t *long_h)
{
        int64_t maxwin = 0, lookback = 0;
        for (int i = 0; i < rules->n_rules; i++) {
                const pg_rule_t *r = &rules->rules[i];
                if (r->detector == PG_DET_RETRY_DUPLICATE ||
                    r->detector == PG_DET_REPEATED_SWIPE)
                        maxwin = max64(maxwin, r->window_ms);
                if (r->detector == PG_DET_REFUND_ANOMALY)
                        lookback = max64(lookback, r->lookback_ms);
        }
        *short_h =
            maxwin + rules->refund_delay_ms + rules->allowed_lateness_ms + 1;
        *long_h = max64(*short_h, lookback + rules->allowed_lateness_ms + 1);
}

/* Ring bytes of a typical txn_id (up to 23 characters) in the strings log,
 * for presizing it. */
#define PG_TXN_STRING_BYTES 32

typedef struct presize {
        size_t dedupe, facts; /* entries to make room for */
} presize_t;

/* The presizing of conf.expect_records (engine.h): the dedupe table keeps
 * txn_ids for the dedupe horizon, the facts table charges for long_h; at
 * a steady rate each holds records in proportion to how long it keeps
 * them, so the facts table gets fewer when long_h is the shorter. -1 (and
 * why) when the arrays would take more than half the state cap. */
static int presize(const pg_ruleset_t *rules, int64_t long_h,
                   const pg_engine_conf_t *conf, presize_t *ps, char *errstr,
                   size_t errstr_size)
{
        size_t n = conf->expect_records;
        size_t cap = conf->max_state_bytes ? conf->max_state_bytes
                                           : PG_DEFAULT_MAX_STATE;
        ps->dedupe = ps->facts = 0;
        if (!n)
                return 0;
        if (n > PG_MAX_EXPECT_RECORDS) {
                snprintf(errstr, errstr_size,
                         "expected records: %zu is more than %zu", n,
                         PG_MAX_EXPECT_RECORDS);
                return -1;
        }
        size_t facts = n;
        if (long_h < rules->dedupe_horizon_ms)
                facts = (size_t)((double)n * (double)long_h /
                                 (double)rules->dedupe_horizon_ms) +
                        1;
        size_t bytes = pg_table_bytes_for(0, n) +
                       pg_table_bytes_for(sizeof(pg_fact_t), facts) +
                       pg_strlog_bytes_for(facts * PG_TXN_STRING_BYTES);
        if (bytes > cap / 2) {
                snprintf(errstr, errstr_size,
                         "sizing state for %zu live records takes %zu MiB, "
                         "more than half the state cap (%zu MiB): lower the "
                         "expected records or raise the cap",
                         n, bytes >> 20, cap >> 20);
                return -1;
        }
        ps->dedupe = n;
        ps->facts = facts;
        return 0;
}

int pg_engine_conf_check(const pg_ruleset_t *rules,
                         const pg_engine_conf_t *conf, char *errstr,
                         size_t errstr_size)
{
        presize_t ps;
        int64_t short_h, long_h;
        horizons(rules, &short_h, &long_h);
        return presize(rules, long_h, conf, &ps, errstr, errstr_size);
}

pg_engine_t *pg_engine_new(const pg_ruleset_t *rules,
                           const pg_engine_conf_t *conf, const pg_sink_t *sink,
                           char *errstr, size_t errstr_size)
{
        if (!rules || !sink) {
                snprintf(errstr, errstr_size, "engine needs rules and a sink");
                return NULL;
        }
        pg_engine_t *e = pg_xcalloc(1, sizeof(*e));
        e->rs = rules;
        if (conf)
                e->conf = *conf;
        if (e->conf.refund_cap_merchant <= 0)
                e->conf.refund_cap_merchant = PG_DEFAULT_CAP_MERCHANT;
        if (e->conf.refund_cap_global <= 0)
                e->conf.refund_cap_global = PG_DEFAULT_CAP_GLOBAL;
        if (!e->conf.max_state_bytes)
                e->conf.max_state_bytes = PG_DEFAULT_MAX_STATE;
        e->sink = *sink;
        e->budget.cap = e->conf.max_state_bytes;

        horizons(rules, &e->short_h, &e->long_h);
        presize_t ps;
        if (presize(rules, e->long_h, &e->conf, &ps, errstr, errstr_size) < 0) {
                free(e);
                return NULL;
        }
        e->dedupe = pg_table_new_sized("dedupe", 0, &e->budget, ps.dedupe);
        e->facts = pg_table_new_sized("facts", sizeof(pg_fact_t), &e->budget,
                                      ps.facts);
        e->followups =
            pg_table_new("followups", sizeof(pg_followup_t), &e->budget);
        e->strings =
            pg_strlog_new_sized(&e->budget, ps.facts * PG_TXN_STRING_BYTES);
        e->caps = pg_table_new("caps", sizeof(int64_t), &e->budget);
        e->cooldown =
            pg_table_new("cooldown", sizeof(pg_cooldown_t), &e->budget);
        e->reorder = pg_reorder_new(&e->budget);
        e->rule_state = pg_xcalloc(rules->n_rules ? rules->n_rules : 1,
                                   sizeof(pg_rule_state_t));
        for (int i = 0; i < rules->n_rules; i++) {
                const pg_rule_t *r = &rules->rules[i];
                switch (r->detector) {
                case PG_DET_RETRY_DUPLICATE:
                case PG_DET_REPEATED_SWIPE:
                        if (r->detector == PG_DET_RETRY_DUPLICATE)
                                e->has_retry = true;
                        else
                                e->has_swipe = true;
                        e->rule_state[i].chain = pg_chain_new(
                            r->id, sizeof(pg_pair_member_t),
                            r->window_ms + rules->allowed_lateness_ms,
                            &e->budget);
                        /* the charges' txn_ids are kept with their facts,
                         * as long as any member may refer to them
                         * (expire_all) */
                        pg_chain_share_strings(e->rule_state[i].chain,
                                               e->strings);
                        break;
                case PG_DET_AGGREGATE:
                        pg_detect_aggregate_init(e, i);
                        break;
                default:
                        break;
                }
        }
        return e;
}

void pg_engine_free(pg_engine_t *e)
{
        if (!e)
                return;
        for (int i = 0; i < e->rs->n_rules; i++) {
                pg_chain_free(e->rule_state[i].chain);
                if (e->rs->rules[i].detector == PG_DET_AGGREGATE)
                        pg_detect_aggregate_free(e, i);
        }
        free(e->rule_state);
        pg_refund_free_all(e);
        pg_table_free(e->dedupe);
        pg_table_free(e->facts);
        pg_table_free(e->followups);
        pg_strlog_free(e->strings);
        pg_table_free(e->caps);
        pg_table_free(e->cooldown);
        pg_reorder_free(e->reorder);
        free(e);
}

/* ---- helpers for detectors ---- */

pg_fact_t *pg_engine_fact(pg_engine_t *e, pg_key_t rrn_key)
{
        return pg_table_lookup(e->facts, rrn_key, e->now);
}

const char *pg_engine_fact_txn(const pg_engine_t *e, const pg_fact_t *f)
{
        const char *s = pg_strlog_get(e->strings, f->charge_txn);
        return s ? s : "";
}

pg_followup_t *pg_engine_followup(pg_engine_t *e, pg_key_t rrn_key)
{
        return pg_table_lookup(e->followups, rrn_key, e->now);
}

pg_cancel_t pg_engine_cancelled(pg_engine_t *e, pg_key_t rrn_key, int64_t t)
{
        const pg_followup_t *v = pg_engine_followup(e, rrn_key);
        if (v && v->has_cancel && v->cancel_at <= t)
                return PG_CANCEL_YES;
        const pg_fact_t *f = pg_engine_fact(e, rrn_key);
        return f && f->followups_lost ? PG_CANCEL_UNKNOWN : PG_CANCEL_NO;
}

void pg_engine_alert_init(pg_engine_t *e, pg_alert_t *a, const pg_rule_t *r,
                          pg_finding_t f, const char *finding_name,
                          const pg_record_t *rec)
{
        memset(a, 0, sizeof(*a));
        a->rule_id = r->id;
        a->rule_version = e->rs->version;
        a->rule_hash = e->rs->hash;
        a->detector = pg_detector_name(r->detector);
        a->finding = finding_name ? finding_name : pg_finding_name(f);
        a->severity = r->severity;
        a->mode = pg_mode_name(r->mode);
        a->merchant_id = rec->merchant_id.s;
        a->terminal_id = rec->terminal_id.s;
        a->txn_ids[0] = rec->txn_id.s;
        a->n_txn_ids = 1;
        a->amount = rec->amount;
        a->currency = rec->currency.s;
        a->pan_masked = rec->pan_masked.len ? rec->pan_masked.s : NULL;
        a->event_time = rec->event_time;

        char text[3 * PG_STR_MAX + 32];
        int n = snprintf(text, sizeof(text), "alert|%s|%s|%s", r->id,
                         a->finding, rec->txn_id.s);
        pg_id_make(a->alert_id, "al-", text, (size_t)n);
}

bool pg_engine_key_field(pg_keyb_t *kb, const pg_record_t *rec, pg_field_t f)
{
        uint8_t tag = (uint8_t)f;
        pg_keyb_bytes(kb, &tag, 1);
        if (pg_record_field_type(f) == PG_FT_STRING) {
                const pg_str_t *s = pg_record_str(rec, f);
                pg_keyb_str(kb, s);
                return s->len > 0;
        }
        bool present = true;
        int64_t v = pg_record_int(rec, f, &present);
        uint8_t p = present;
        pg_keyb_bytes(kb, &p, 1);
        pg_keyb_i64(kb, present ? v : 0);
        return present;
}

/* The rule's cooldown (alert-only rules): true when this alert is held
 * back (and counted); otherwise a->suppressed carries the count held since
 * the last alert of the key, which starts a new cooldown. */
static bool cooled_down(pg_engine_t *e, pg_alert_t *a, const pg_rule_t *r)
{
        const pg_record_t *rec = e->cur_rec;
        pg_keyb_t kb;
        pg_keyb_init(&kb, PG_TAG_COOLDOWN);
        pg_keyb_i64(&kb, r - e->rs->rules);
        for (int i = 0; i < r->n_cooldown_key; i++)
                pg_engine_key_field(&kb, rec, r->cooldown_key[i]);
        pg_key_t k = pg_keyb_done(&kb);
        int64_t t = rec->event_time > e->now ? rec->event_time : e->now;
        bool created;
        /* kept one more period after it ends, so that a count held back
         * reaches the next alert of the key */
        pg_cooldown_t *c = pg_table_upsert(e->cooldown, k, e->now,
                                           t + 2 * r->cooldown_ms, &created);
        if (!c) {
                e->st.state_full++;
                return false; /* no state: never hold an alert back */
        }
        if (!created && rec->event_time < c->until) {
                c->suppressed++;
                e->st.alerts_suppressed++;
                return true;
        }
        a->suppressed = created ? 0 : c->suppressed;
        if (a->suppressed) {
                size_t n = strlen(a->reason);
                snprintf(a->reason + n, sizeof(a->reason) - n,
                         " (%" PRId64 " similar alerts held back by the "
                         "cooldown before this one)",
                         a->suppressed);
        }
        c->suppressed = 0;
        c->until = rec->event_time + r->cooldown_ms;
        return false;
}

/* Incident rules (aggregate with on_findings) count the records that raise
 * the alerts they watch, once per record: a mass event (a batch re-sent
 * after an upgrade) becomes one incident alert beside the per-charge alerts.
 * Shadow alerts count only toward shadow incident rules. */
static void feed_incidents(pg_engine_t *e, pg_finding_t f, const pg_rule_t *by)
{
        const pg_record_t *rec = e->cur_rec;
        for (int j = 0; j < e->rs->n_rules; j++) {
                const pg_rule_t *r = &e->rs->rules[j];
                if (r->detector != PG_DET_AGGREGATE ||
                    !(r->on_findings & (1u << f)) ||
                    (by->mode == PG_MODE_SHADOW && r->mode != PG_MODE_SHADOW))
                        continue;
                pg_rule_state_t *st = &e->rule_state[j];
                if (st->incident_seq == rec->seq + 1)
                        continue;
                st->incident_seq = rec->seq + 1;
                if (r->filter && !pg_expr_eval(r->filter, rec))
                        continue;
                pg_detect_aggregate(e, j, rec);
        }
}

void pg_engine_emit_alert(pg_engine_t *e, pg_alert_t *a, pg_finding_t f,
                          const pg_rule_t *r)
{
        a->detected_at = e->conf.event_clock ? e->now : pg_wall_ms();
        if (r->cooldown_ms && e->cur_rec && (int)f < PG_FIND_REFUND_BLOCKED &&
            cooled_down(e, a, r))
                return;
        e->st.alerts[f]++;
        if (r->mode == PG_MODE_SHADOW)
                e->st.alerts_shadow++;
        e->sink.alert(e->sink.opaque, a);
        if (e->cur_rec && (int)f < PG_RULE_N_FINDINGS)
                feed_incidents(e, f, r);
}

int pg_currency_exponent(const char *cur)
{
        /* ISO 4217 minor-unit exponents other than 2 */
        static const char *const zero[] = {"JPY", "KRW", "VND", "CLP", "ISK",
                                           "XOF", "XAF", "UGX", "PYG", NULL};
        static const char *const three[] = {"BHD", "KWD", "OMR", "JOD",
                                            "TND", "IQD", "LYD", NULL};
        for (int i = 0; zero[i]; i++)
                if (!strcmp(cur, zero[i]))
                        return 0;
        for (int i = 0; three[i]; i++)
                if (!strcmp(cur, three[i]))
                        return 3;
        return 2;
}

void pg_fmt_amount(char *buf, size_t size, int64_t minor, const char *cur)
{
        /* for readable reasons only: amounts in outputs stay in minor
         * units */
        int exp = pg_currency_exponent(cur);
        int64_t div = exp == 0 ? 1 : exp == 2 ? 100 : 1000;
        const char *sign = minor < 0 ? "-" : "";
        uint64_t m =
            minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
        if (exp == 0)
                snprintf(buf, size, "%s%" PRIu64 " %s", sign, m, cur);
        else
                snprintf(buf, size, "%s%" PRIu64 ".%0*" PRIu64 " %s", sign,
                         m / (uint64_t)div, exp, m % (uint64_t)div, cur);
}

/* ---- processing ---- */

/* An upsert may have made f outlive its charge's txn_id string. */
static void renew_txn(pg_engine_t *e, pg_fact_t *f)
{
        uint64_t pos =
            pg_strlog_renew(e->strings, f->charge_txn, pg_table_expiry(f));
        if (!pos && f->charge_txn)
                e->st.state_full++;
        f->charge_txn = pos;
}

/* The fact and the followups of an rrn, both live, after an upsert of
 * either: both get the later expiry, so that the rrn's state lives as long
 * as its longest-lived record asked for, whichever table that record
 * wrote (and the charge's txn_id string with it). */
static void align_rrn(pg_engine_t *e, pg_fact_t *f, pg_followup_t *v)
{
        int64_t x = pg_table_expiry(f);
        if (v) {
                int64_t xv = pg_table_expiry(v);
                if (xv > x) {
                        pg_table_extend(e->facts, f, xv);
                        x = xv;
                } else {
                        pg_table_extend(e->followups, v, x);
                }
        }
        if (f->has_charge)
                renew_txn(e, f);
}

pg_followup_t *pg_engine_followup_upsert(pg_engine_t *e, pg_key_t k,
                                         int64_t expire_at)
{
        bool created;
        pg_followup_t *v =
            pg_table_upsert(e->followups, k, e->now, expire_at, &created);
        pg_fact_t *f = pg_engine_fact(e, k);
        if (!v) {
                e->st.state_full++;
                if (f)
                        f->followups_lost = 1;
                return NULL;
        }
        if (f)
                align_rrn(e, f, v);
        return v;
}

/* Step 2: facts of one record (cancellations and charges). */
static void register_facts(pg_engine_t *e, pg_record_t *rec)
{
        if (rec->status != PG_STATUS_APPROVED)
                return;
        if (rec->kind == PG_KIND_REVERSAL || rec->kind == PG_KIND_VOID) {
                pg_followup_t *v = pg_engine_followup_upsert(
                    e, rec->k.orig,
                    max64(rec->event_time, e->now) + e->short_h);
                if (!v)
                        return;
                if (!v->has_cancel || rec->event_time < v->cancel_at)
                        v->cancel_at = rec->event_time;
                v->has_cancel = 1;
        } else if (rec->kind == PG_KIND_PURCHASE) {
                bool created;
                pg_fact_t *f = pg_table_upsert(
                    e->facts, rec->k.rrn, e->now,
                    max64(rec->event_time, e->now) + e->long_h, &created);
                if (!f) {
                        e->st.state_full++;
                        return;
                }
                if (f->has_charge)
                        e->st.rrn_conflicts++;
                align_rrn(e, f, pg_engine_followup(e, rec->k.rrn));
                if (f->has_charge)
                        return;
                /* kept as long as the fact */
                uint64_t pos =
                    pg_strlog_add(e->strings, rec->txn_id.s, rec->txn_id.len,
                                  pg_table_expiry(f));
                if (!pos) {
                        e->st.state_full++;
                        return;
                }
                f->has_charge = 1;
                f->charge_t = rec->event_time;
                f->charge_amount = rec->amount;
                f->card_fp = rec->k.card.lo;
                memcpy(f->currency, rec->currency.s, 4);
                f->charge_txn = pos;
                rec->txn_str = pos;
        }
}

/* Step 3: the detectors, rule file order. */
static void run_detectors(pg_engine_t *e, const pg_record_t *rec)
{
        const pg_ruleset_t *rs = e->rs;
        pg_claims_t claims;
        claims.n = 0;
        bool charge = pg_record_is_charge(rec);
        bool refund =
            rec->kind == PG_KIND_REFUND && rec->status == PG_STATUS_APPROVED;
        e->cur_rec = rec;
        if (refund) {
                /* Every approved refund counts toward refunded(P), whatever
                 * rules are active (SEMANTICS.md 3, refund_anomaly). */
                pg_followup_t *v = pg_engine_followup_upsert(
                    e, rec->k.orig,
                    max64(rec->event_time, e->now) + e->short_h);
                if (v)
                        v->refunded += rec->amount;
        }
        for (int i = 0; i < rs->n_rules; i++) {
                /* the rule-level filter (where / except): a record that
                 * fails it is not judged by the rule; a pairing rule still
                 * remembers it as a possible original */
                const pg_expr_t *flt = rs->rules[i].filter;
                e->judge = !flt || pg_expr_eval(flt, rec);
                if (!e->judge &&
                    rs->rules[i].detector != PG_DET_RETRY_DUPLICATE &&
                    rs->rules[i].detector != PG_DET_REPEATED_SWIPE)
                        continue;
                switch (rs->rules[i].detector) {
                case PG_DET_RETRY_DUPLICATE:
                        if (charge)
                                pg_detect_retry(e, i, rec, &claims);
                        break;
                case PG_DET_REPEATED_SWIPE:
                        if (charge)
                                pg_detect_swipe(e, i, rec, &claims);
                        break;
                case PG_DET_AMOUNT_MISMATCH:
                        if (charge)
                                pg_detect_mismatch(e, i, rec, &claims);
                        break;
                case PG_DET_REFUND_ANOMALY:
                        if (refund)
                                pg_detect_refund(e, i, rec);
                        break;
                case PG_DET_AGGREGATE:
                        /* an incident rule is fed by alerts, not here */
                        if (!rs->rules[i].on_findings)
                                pg_detect_aggregate(e, i, rec);
                        break;
                default:
                        break;
                }
        }
        e->cur_rec = NULL;
        if (claims.n)
                pg_refund_enqueue(e, rec, &claims);
}

/* Aggregate windows every group: an event leaving the window changes the
 * value (this is semantics, not housekeeping). The chains' rings only when
 * memory is due (every EXPIRE_EVERY groups), and the facts' txn_id strings:
 * their readers check liveness themselves, so expiry there only returns
 * memory; each call may drop EXPIRE_EVERY x PG_EXPIRE_WORK members, the
 * same bound per group as expiring every group. The tables sweep themselves as
 * entries are created (state_table.c). */
#define EXPIRE_EVERY 16

static void expire_all(pg_engine_t *e)
{
        bool memory = ++e->groups % EXPIRE_EVERY == 0;
        /* A chain member may refer to its charge's txn_id in the strings
         * (pg_chain_ref_str), kept there for long_h after the charge; the
         * chains' expiry is bounded per step, so a member can stay in its
         * ring longer than that, and be walked (a late record, through a
         * group newer members keep alive). The strings go no further
         * than long_h after the oldest member of any ring. */
        int64_t strings_now = e->now;
        for (int i = 0; i < e->rs->n_rules; i++) {
                pg_chain_t *c = e->rule_state[i].chain;
                if (c) {
                        int64_t t;
                        if (!memory)
                                continue;
                        pg_chain_expire(c, e->now,
                                        EXPIRE_EVERY * PG_EXPIRE_WORK);
                        if (pg_chain_oldest(c, &t) &&
                            t + e->long_h - 1 < strings_now)
                                strings_now = t + e->long_h - 1;
                } else if (e->rs->rules[i].detector == PG_DET_AGGREGATE) {
                        pg_detect_aggregate_expire(e, i);
                }
        }
        if (memory)
                pg_strlog_expire(e->strings, strings_now,
                                 EXPIRE_EVERY * PG_EXPIRE_WORK);
}

/* Process one group: the records popped from the reorder buffer with equal
 * event time t (or one late record). */
static void process_group(pg_engine_t *e, pg_record_t **grp, size_t n)
{
        int64_t t = grp[0]->event_time;
        if (!e->have_now || t > e->now) {
                pg_refund_resolve_before(e, t, false);
                e->now = t;
                e->have_now = true;
        }
        expire_all(e);
        for (size_t i = 0; i < n; i++)
                register_facts(e, grp[i]);
        for (size_t i = 0; i < n; i++)
                run_detectors(e, grp[i]);
}

#define GROUP_MAX 256

/* Start loading the state the next record to be processed will touch
 * first: the fact and followups of its rrn (a charge's own, or the one a
 * refund, reversal or void names: align_rrn reads both either way), and a
 * charge's groups of its pairing chains. Processing a
 * record takes about a microsecond, a load from memory a tenth of that, so
 * one record ahead is enough for the loads to be there when it comes; the
 * hint changes nothing else (a record that is not released soon only
 * wasted the hint). */
static void prefetch_next(pg_engine_t *e)
{
        const pg_record_t *r = pg_reorder_peek(e->reorder);
        if (!r || r->status != PG_STATUS_APPROVED)
                return;
        bool charge = r->kind == PG_KIND_PURCHASE;
        pg_key_t rrn = charge ? r->k.rrn : r->k.orig;
        pg_table_prefetch(e->facts, rrn);
        pg_table_prefetch(e->followups, rrn);
        if (!charge)
                return;
        for (int i = 0; i < e->rs->n_rules; i++) {
                pg_chain_t *c = e->rule_state[i].chain;
                if (!c)
                        continue;
                pg_chain_prefetch(c, e->rs->rules[i].detector ==
                                             PG_DET_RETRY_DUPLICATE
                                         ? r->k.retry
                                         : r->k.swipe);
        }
}

/* Release every buffered record with t < limit (or all when flush), in
 * groups of equal event time. A group larger than GROUP_MAX is processed in
 * parts: identical times beyond 256 records are ties in arrival order, so
 * only the same-time cancellation rule could notice, and it is counted. */
static void release(pg_engine_t *e, int64_t limit, bool flush)
{
        pg_record_t *grp[GROUP_MAX];
        for (;;) {
                const pg_record_t *top = pg_reorder_peek(e->reorder);
                if (!top || (!flush && top->event_time >= limit))
                        break;
                int64_t t = top->event_time;
                size_t n = 0;
                while (n < GROUP_MAX && (top = pg_reorder_peek(e->reorder)) &&
                       top->event_time == t)
                        grp[n++] = pg_reorder_pop(e->reorder);
                prefetch_next(e);
                process_group(e, grp, n);
                for (size_t i = 0; i < n; i++)
                        pg_reorder_release(e->reorder, grp[i]);
        }
}

/* The keys of rec's fields that its kind uses, hashed once for every
 * index (record.h). */
static void field_keys(const pg_record_t *rec, struct pg_record_keys *k)
{
        if (rec->status != PG_STATUS_APPROVED)
                return;
        k->card = pg_key_str(PG_TAG_CARD, &rec->card_token);
        if (rec->kind == PG_KIND_PURCHASE) {
                k->rrn = pg_key_str(PG_TAG_RRN, &rec->rrn);
                k->stan = pg_key_str(PG_TAG_STAN, &rec->stan);
                k->terminal = pg_key_str(PG_TAG_TERMINAL, &rec->terminal_id);
                k->merchant = pg_key_str(PG_TAG_MERCHANT, &rec->merchant_id);
                if (rec->order_id.len)
                        k->order = pg_key_str(PG_TAG_ORDER, &rec->order_id);
        } else {
                k->orig = pg_key_str(PG_TAG_RRN, &rec->original_rrn);
        }
}

void pg_engine_push(pg_engine_t *e, const pg_record_t *rec)
{
        int64_t t = rec->event_time;
        /* Transport dedupe at arrival (SEMANTICS.md 2). The dedupe table
         * holds every txn_id of the horizon, far more than the caches do:
         * its slot is asked for first and the field keys are hashed while
         * it comes (wasted only on a duplicate). */
        struct pg_record_keys k;
        memset(&k, 0, sizeof(k));
        k.txn = pg_key_str(PG_TAG_TXN, &rec->txn_id);
        pg_table_prefetch(e->dedupe, k.txn);
        field_keys(rec, &k);
        int64_t now = e->have_max ? max64(e->max_t, t) : t;
        bool created;
        void *d = pg_table_upsert(e->dedupe, k.txn, now,
                                  t + e->rs->dedupe_horizon_ms, &created);
        if (d && !created) {
                e->st.duplicates++;
                return;
        }
        if (!d)
                e->st.state_full++;
        e->st.records++;
        if (e->have_max && t < e->max_t - e->rs->allowed_lateness_ms)
                e->st.late++;
        e->max_t = now;
        e->have_max = true;

        pg_record_t *r = pg_reorder_push(e->reorder, rec, ++e->seq);
        r->k = k;
        r->txn_str = 0;
        /* the pairing keys, from the field keys */
        if (rec->status == PG_STATUS_APPROVED &&
            rec->kind == PG_KIND_PURCHASE) {
                if (e->has_retry)
                        r->k.retry = pg_retry_key(r);
                if (e->has_swipe)
                        r->k.swipe = pg_swipe_key(r);
        }
        release(e, e->max_t - e->rs->allowed_lateness_ms, false);
}

void pg_engine_flush(pg_engine_t *e)
{
        release(e, 0, true);
        pg_refund_resolve_before(e, 0, true);
}

void pg_engine_stats(const pg_engine_t *e, pg_engine_stats_t *out)
{
        *out = e->st;
        out->state_full += e->budget.refused;
        out->state_bytes = e->budget.used;
        out->state_bytes_peak = e->budget.peak;
}

size_t pg_engine_state_parts(const pg_engine_t *e, pg_state_part_t *out,
                             size_t max)
{
        size_t n = 0;
#define PART(tb, ru, en, by)                                                   \
        do {                                                                   \
                if (n < max)                                                   \
                        out[n] = (pg_state_part_t){tb, ru, en, by};            \
                n++;                                                           \
        } while (0)
        PART("dedupe", "", pg_table_count(e->dedupe),
             pg_table_bytes(e->dedupe));
        PART("facts", "", pg_table_count(e->facts),
             pg_table_bytes(e->facts) + pg_strlog_bytes(e->strings));
        PART("followups", "", pg_table_count(e->followups),
             pg_table_bytes(e->followups));
        PART("caps", "", pg_table_count(e->caps), pg_table_bytes(e->caps));
        PART("cooldown", "", pg_table_count(e->cooldown),
             pg_table_bytes(e->cooldown));
        PART("reorder", "", pg_reorder_len(e->reorder),
             pg_reorder_bytes(e->reorder));
        PART("pending", "", e->npend, e->pend_alloc * sizeof(pg_pending_t));
        for (int i = 0; i < e->rs->n_rules; i++) {
                const pg_rule_t *r = &e->rs->rules[i];
                const pg_rule_state_t *s = &e->rule_state[i];
                if (s->chain)
                        PART("pairing", r->id, pg_chain_count(s->chain),
                             pg_chain_bytes(s->chain));
                else if (r->detector == PG_DET_AGGREGATE)
                        PART("aggregate", r->id, pg_table_count(s->agg.groups),
                             pg_detect_aggregate_bytes(e, i));
        }
#undef PART
        return n;
}
