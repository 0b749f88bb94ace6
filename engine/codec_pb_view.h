/*
 * codec_pb_view.h - protobuf Alert / RefundCommand back into the engine's
 * output structs, for readers of the output topics (posguard watch, tests).
 * Not on the engine's hot path: decoding uses the default allocator.
 */
#ifndef PG_CODEC_PB_VIEW_H
#define PG_CODEC_PB_VIEW_H

#include <stddef.h>

#include "output.h"

/* Decode and call fn with the result (its strings live only during the
 * call). Returns 0, or -1 when buf is not a valid message. */
int pg_codec_pb_alert_view(const void *buf, size_t len,
                           void (*fn)(const pg_alert_t *, void *), void *ctx);
int pg_codec_pb_refund_view(const void *buf, size_t len,
                            void (*fn)(const pg_refund_t *, void *), void *ctx);

#endif
