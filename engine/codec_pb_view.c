/*
 * codec_pb_view.c - see codec_pb_view.h.
 */
#include "codec_pb_view.h"

#include <stdio.h>
#include <string.h>

#include "posguard.pb-c.h"

int pg_codec_pb_alert_view(const void *buf, size_t len,
                           void (*fn)(const pg_alert_t *, void *), void *ctx)
{
        Posguard__V1__Alert *m =
            posguard__v1__alert__unpack(NULL, len, (const uint8_t *)buf);
        if (!m)
                return -1;
        pg_alert_t a;
        memset(&a, 0, sizeof(a));
        snprintf(a.alert_id, sizeof(a.alert_id), "%s", m->alert_id);
        a.rule_id = m->rule_id;
        a.rule_version = m->rule_version;
        a.rule_hash = m->rule_hash;
        a.detector = m->detector;
        a.finding = m->finding;
        a.severity = m->severity;
        a.mode = m->mode;
        a.merchant_id = m->merchant_id;
        a.terminal_id = m->terminal_id;
        size_t n = m->n_txn_ids;
        if (n > PG_MAX_RELATED + 1)
                n = PG_MAX_RELATED + 1;
        for (size_t i = 0; i < n; i++)
                a.txn_ids[i] = m->txn_ids[i];
        a.n_txn_ids = (int)n;
        a.amount = m->amount;
        a.currency = m->currency;
        a.pan_masked = m->pan_masked;
        snprintf(a.reason, sizeof(a.reason), "%s", m->reason);
        a.event_time = m->event_time;
        a.detected_at = m->detected_at;
        a.suppressed = m->suppressed;
        fn(&a, ctx);
        posguard__v1__alert__free_unpacked(m, NULL);
        return 0;
}

int pg_codec_pb_refund_view(const void *buf, size_t len,
                            void (*fn)(const pg_refund_t *, void *), void *ctx)
{
        Posguard__V1__RefundCommand *m = posguard__v1__refund_command__unpack(
            NULL, len, (const uint8_t *)buf);
        if (!m)
                return -1;
        pg_refund_t r;
        memset(&r, 0, sizeof(r));
        snprintf(r.refund_id, sizeof(r.refund_id), "%s", m->refund_id);
        snprintf(r.alert_id, sizeof(r.alert_id), "%s", m->alert_id);
        r.rule_id = m->rule_id;
        r.txn_id = m->txn_id;
        r.rrn = m->rrn;
        r.merchant_id = m->merchant_id;
        r.terminal_id = m->terminal_id;
        r.card_token = m->card_token;
        r.amount = m->amount;
        r.currency = m->currency;
        r.reason = m->reason;
        r.decided_at = m->decided_at;
        fn(&r, ctx);
        posguard__v1__refund_command__free_unpacked(m, NULL);
        return 0;
}
