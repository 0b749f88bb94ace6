/*
 * codec_pb.h - protobuf (schemas/posguard.proto) <-> records, alerts,
 * refund commands and dead-letter envelopes.
 *
 * The same contract as codec_json.h: a record decoded from protobuf is
 * checked by the same rules (docs/SEMANTICS.md section 1) and rejected with
 * the same reasons (pg_reject_t), naming the field. Decoding allocates
 * nothing.
 */
#ifndef PG_CODEC_PB_H
#define PG_CODEC_PB_H

#include <stddef.h>
#include <stdint.h>

#include "codec_json.h"
#include "output.h"
#include "record.h"

/* Decode one protobuf Record message into *out, with every check of
 * pg_codec_json_parse. Returns PG_REJ_NONE or the reject, with *field and
 * errstr as in codec_json.h (a message that is not valid protobuf:
 * PG_REJ_MALFORMED; one over PG_JSON_MAX_LINE bytes: PG_REJ_LINE_TOO_LONG).
 * out->seq is not touched. The reject order is at the top of codec_pb.c.
 * Allocates nothing: one walk over the wire format finds every field, and
 * the values are read from the message where the walk found them. */
pg_reject_t pg_codec_pb_parse(const void *buf, size_t len, pg_record_t *out,
                              const char **field, char *errstr,
                              size_t errstr_size);

/* The reference decoder: the same walk and checks, with the numbers taken
 * from protobuf-c's unpacking of the message (allocating from the caller's
 * arena, never with malloc). It gives the same answer as pg_codec_pb_parse
 * for every input, record and error text alike; test_codec_pb and the
 * fuzz_pb target hold the two to it. */
typedef struct pg_pb_arena {
        unsigned char *base;
        size_t size, used;
        size_t overflow; /* requests it could not satisfy (decode fails) */
} pg_pb_arena_t;

void pg_pb_arena_init(pg_pb_arena_t *a, void *buf, size_t size);
static inline void pg_pb_arena_reset(pg_pb_arena_t *a)
{
        a->used = 0;
}
/* An arena of this many bytes always holds what decoding one record needs,
 * whatever the message holds (unknown fields and oversize strings are left
 * out before protobuf-c allocates). The reference decoder gives back what
 * it took before it returns, so the arena never fills up across records.
 * An arena too small for the record: PG_REJ_MALFORMED, arena->overflow
 * counts it. A NULL arena: a PG_PB_ARENA_MIN one on the stack is used. */
#define PG_PB_ARENA_MIN 8192
pg_reject_t pg_codec_pb_parse_reference(pg_pb_arena_t *arena, const void *buf,
                                        size_t len, pg_record_t *out,
                                        const char **field, char *errstr,
                                        size_t errstr_size);

/* Encode a record as a protobuf Record (used by the traffic producer and
 * tests). Returns bytes written or -1 when buf is too small. Fields go out
 * as they are, unchecked (a test may encode a bad record); required strings
 * are always written, "" included, original_rrn only when not empty. */
int pg_codec_pb_record(void *buf, size_t size, const pg_record_t *rec);

/* Encode an alert / refund command as protobuf. Returns bytes written or -1
 * when buf is too small (PG_PB_OUT_MAX is always enough). Strings that are
 * not valid UTF-8 go out with U+FFFD for each bad byte; NULL ones as "". */
#define PG_PB_OUT_MAX 4096
int pg_codec_pb_alert(void *buf, size_t size, const pg_alert_t *a);
int pg_codec_pb_refund(void *buf, size_t size, const pg_refund_t *r);

/* Where a rejected message came from. */
typedef struct pg_source_pos {
        const char *topic;
        int32_t partition;
        int64_t offset;
        int64_t timestamp_ms; /* Kafka message timestamp, -1 if none */
} pg_source_pos_t;

/* Encode a dead-letter envelope: reject reason, field, detail, the source
 * position (pos may be NULL) and the payload (at most PG_JSON_RAW_MAX bytes,
 * with every run of 13-19 ASCII digits that passes the Luhn check masked to
 * first 6 / last 4, so no clear card number leaves the engine). */
int pg_codec_pb_reject(void *buf, size_t size, pg_reject_t code,
                       const char *field, const char *detail,
                       const pg_source_pos_t *pos, const void *raw,
                       size_t raw_len);

#endif
