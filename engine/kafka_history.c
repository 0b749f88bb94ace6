/*
 * kafka_history.c - a topic's messages between two times, for backtests
 * (kafka_history.h).
 *
 * The range is [from, to) by message timestamp (posguard produce sets it to
 * the record's event time): offsets_for_times gives the first offset at or
 * after each bound, per partition. Messages are read with read_committed by
 * a consumer that assigns the partitions itself (no group, no commits) and
 * kept in memory per partition, so that both rule sets of a backtest see
 * exactly the same records.
 */
#include "kafka_history.h"

#include <stdlib.h>
#include <string.h>

#include "codec_pb.h"
#include "util_mem.h"
#include "util_progress.h"

typedef struct msg {
        size_t len;
        char *data;
} msg_t;

typedef struct hpart {
        int32_t id;
        msg_t *v;
        size_t n, cap;
} hpart_t;

struct pg_history {
        hpart_t *parts;
        int nparts;
        uint64_t total;
};

static void add_msg(hpart_t *p, const void *data, size_t len)
{
        if (p->n == p->cap) {
                p->cap = p->cap ? 2 * p->cap : 1024;
                p->v = pg_xrealloc(p->v, p->cap * sizeof(*p->v));
        }
        msg_t *m = &p->v[p->n++];
        m->len = len;
        m->data = pg_xmalloc(len ? len : 1);
        if (len)
                memcpy(m->data, data, len);
}

pg_history_t *pg_history_read(const pg_kconf_t *conf, const char *topic,
                              int64_t from_ms, int64_t to_ms, char *err,
                              size_t errsz)
{
        rd_kafka_conf_t *cc = pg_kconf_rdkafka(conf, "consumer", err, errsz);
        if (!cc)
                return NULL;
        rd_kafka_conf_set(cc, "group.id", "posguard-backtest", NULL, 0);
        rd_kafka_conf_set(cc, "enable.auto.commit", "false", NULL, 0);
        rd_kafka_conf_set(cc, "isolation.level", "read_committed", NULL, 0);
        rd_kafka_conf_set(cc, "enable.partition.eof", "false", NULL, 0);
        char e2[512];
        rd_kafka_t *k = rd_kafka_new(RD_KAFKA_CONSUMER, cc, e2, sizeof(e2));
        if (!k) {
                snprintf(err, errsz, "consumer: %s", e2);
                return NULL;
        }
        pg_history_t *h = pg_xcalloc(1, sizeof(*h));
        rd_kafka_topic_t *t = rd_kafka_topic_new(k, topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t me = rd_kafka_metadata(k, 0, t, &md, 10000);
        if (me || md->topic_cnt != 1 || md->topics[0].err) {
                snprintf(err, errsz, "topic %s: %s", topic,
                         rd_kafka_err2str(me ? me : md->topics[0].err));
                if (md)
                        rd_kafka_metadata_destroy(md);
                rd_kafka_topic_destroy(t);
                rd_kafka_destroy(k);
                free(h);
                return NULL;
        }
        int n = md->topics[0].partition_cnt;
        h->nparts = n;
        h->parts = pg_xcalloc((size_t)(n ? n : 1), sizeof(hpart_t));
        rd_kafka_topic_partition_list_t *lo =
            rd_kafka_topic_partition_list_new(n);
        rd_kafka_topic_partition_list_t *hi =
            rd_kafka_topic_partition_list_new(n);
        for (int i = 0; i < n; i++) {
                int32_t id = md->topics[0].partitions[i].id;
                h->parts[i].id = id;
                rd_kafka_topic_partition_list_add(lo, topic, id)->offset =
                    from_ms;
                rd_kafka_topic_partition_list_add(hi, topic, id)->offset =
                    to_ms;
        }
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(t);
        rd_kafka_resp_err_t oe = rd_kafka_offsets_for_times(k, lo, 10000);
        if (!oe)
                oe = rd_kafka_offsets_for_times(k, hi, 10000);
        int64_t *end = pg_xcalloc((size_t)(n ? n : 1), sizeof(int64_t));
        int active = 0;
        for (int i = 0; !oe && i < n; i++) {
                int64_t low, high;
                oe = rd_kafka_query_watermark_offsets(k, topic, h->parts[i].id,
                                                      &low, &high, 10000);
                if (oe)
                        break;
                /* no message at or after a bound: the partition's end */
                if (lo->elems[i].offset < 0)
                        lo->elems[i].offset = high;
                end[i] = hi->elems[i].offset < 0 ? high : hi->elems[i].offset;
                if (lo->elems[i].offset < end[i])
                        active++;
        }
        if (oe) {
                snprintf(err, errsz, "topic %s: offsets: %s", topic,
                         rd_kafka_err2str(oe));
                pg_history_free(h);
                h = NULL;
                goto out;
        }
        if (active && rd_kafka_assign(k, lo)) {
                snprintf(err, errsz, "topic %s: cannot assign", topic);
                pg_history_free(h);
                h = NULL;
                goto out;
        }
        /* read until every partition reached its end offset (a read
         * committed consumer skips aborted and control records, so the
         * position, not the last offset seen, says when a partition is
         * done) */
        int idle = 0;
        uint64_t want = 0;
        for (int i = 0; i < n; i++)
                if (lo->elems[i].offset < end[i])
                        want += (uint64_t)(end[i] - lo->elems[i].offset);
        pg_progress_t prog;
        pg_progress_start(&prog, topic, want);
        while (active > 0 && idle < 300) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(k, 100);
                if (m && !m->err) {
                        idle = 0;
                        for (int i = 0; i < n; i++)
                                if (h->parts[i].id == m->partition &&
                                    m->offset < end[i]) {
                                        add_msg(&h->parts[i], m->payload,
                                                m->len);
                                        h->total++;
                                }
                        pg_progress_update(&prog, h->total, h->total);
                } else if (!m) {
                        idle++;
                }
                if (m)
                        rd_kafka_message_destroy(m);
                active = 0;
                rd_kafka_topic_partition_list_t *pos =
                    rd_kafka_topic_partition_list_copy(lo);
                rd_kafka_position(k, pos);
                for (int i = 0; i < n; i++)
                        if (lo->elems[i].offset < end[i] &&
                            (pos->elems[i].offset < 0 ||
                             pos->elems[i].offset < end[i]))
                                active++;
                rd_kafka_topic_partition_list_destroy(pos);
        }
        pg_progress_end(&prog);
        if (active > 0) {
                snprintf(err, errsz,
                         "topic %s: %d partitions did not reach the end of "
                         "the range within 30 s of silence",
                         topic, active);
                pg_history_free(h);
                h = NULL;
        }
out:
        free(end);
        rd_kafka_topic_partition_list_destroy(lo);
        rd_kafka_topic_partition_list_destroy(hi);
        rd_kafka_consumer_close(k);
        rd_kafka_destroy(k);
        return h;
}

int pg_history_partitions(const pg_history_t *h)
{
        return h->nparts;
}

uint64_t pg_history_count(const pg_history_t *h)
{
        return h->total;
}

void pg_history_feed(const pg_history_t *h, int i, pg_engine_t *e, int json,
                     pg_replay_counts_t *c)
{
        const hpart_t *p = &h->parts[i];
        for (size_t k = 0; k < p->n; k++) {
                pg_record_t rec;
                const char *field;
                char why[256];
                pg_reject_t r;
                c->lines++;
                if (json) {
                        r = pg_codec_json_parse(p->v[k].data, p->v[k].len, &rec,
                                                &field, why, sizeof(why));
                } else {
                        r = pg_codec_pb_parse(p->v[k].data, p->v[k].len, &rec,
                                              &field, why, sizeof(why));
                }
                if (r == PG_REJ_NONE) {
                        pg_engine_push(e, &rec);
                } else {
                        c->rejected++;
                        c->by_reason[r]++;
                }
        }
}

void pg_history_free(pg_history_t *h)
{
        if (!h)
                return;
        for (int i = 0; i < h->nparts; i++) {
                for (size_t k = 0; k < h->parts[i].n; k++)
                        free(h->parts[i].v[k].data);
                free(h->parts[i].v);
        }
        free(h->parts);
        free(h);
}
