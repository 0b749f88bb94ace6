/*
 * kafka_run.h - the Kafka commands of posguard.
 *
 *   posguard run --config FILE [-X key=value]... [--embedded]
 *       the consumer group member: records in, alerts, refund commands and
 *       dead letters out, exactly once (kafka_run.c)
 *   posguard produce --config FILE [-X ...] --input FILE|- [--rate N]
 *       JSON-lines records into the records topic (traffic for demos and
 *       tests; kafka_tools.c)
 *   posguard watch --config FILE [-X ...] [--count N] [--idle-exit MS]
 *       the alert and refund topics, read_committed, one line per event
 *       (kafka_tools.c)
 *
 * Each returns the process exit status.
 */
#ifndef PG_KAFKA_RUN_H
#define PG_KAFKA_RUN_H

int pg_cmd_run(int argc, char **argv);
int pg_cmd_produce(int argc, char **argv);
int pg_cmd_watch(int argc, char **argv);

#endif
