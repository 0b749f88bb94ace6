/*
 * replay.c - see replay.h.
 */
#include "replay.h"

#include <string.h>

#include "source_file.h"
#include "util_progress.h"

static void push_engine(void *opaque, const pg_record_t *rec)
{
        pg_engine_push(opaque, rec);
}

int pg_replay_feed(pg_engine_t *e, const char *path, FILE *dlq,
                   pg_replay_counts_t *counts, char *err, size_t errsz)
{
        return pg_replay_feed_fn(push_engine, e, path, dlq, counts, err, errsz);
}

int pg_replay_feed_fn(void (*push)(void *opaque, const pg_record_t *rec),
                      void *opaque, const char *path, FILE *dlq,
                      pg_replay_counts_t *counts, char *err, size_t errsz)
{
        pg_source_file_t *src = pg_source_file_open(path, err, errsz);
        if (!src)
                return -1;
        const char *line;
        size_t len;
        bool too_long;
        int got;
        pg_record_t rec;
        char dbuf[PG_JSON_OUT_MAX];
        uint64_t line_no = 0;
        pg_progress_t prog;
        pg_progress_start(&prog, strcmp(path, "-") ? path : "stdin",
                          pg_source_file_size(src));
        while ((got = pg_source_file_next(src, &line, &len, &too_long, err,
                                          errsz)) > 0) {
                line_no++;
                pg_progress_update(&prog, line_no, pg_source_file_done(src));
                /* blank lines are not records: skipped, not counted */
                size_t k = 0;
                while (!too_long && k < len &&
                       (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
                        k++;
                if (!too_long && k == len)
                        continue;
                counts->lines++;
                const char *field = NULL;
                pg_reject_t why;
                char detail[256];
                if (too_long) {
                        why = PG_REJ_LINE_TOO_LONG;
                        snprintf(detail, sizeof(detail),
                                 "line longer than %d bytes", PG_JSON_MAX_LINE);
                } else {
                        why = pg_codec_json_parse(line, len, &rec, &field,
                                                  detail, sizeof(detail));
                }
                if (why == PG_REJ_NONE) {
                        push(opaque, &rec);
                        continue;
                }
                counts->rejected++;
                counts->by_reason[why]++;
                if (dlq) {
                        int n =
                            pg_codec_json_reject(dbuf, sizeof(dbuf), why, field,
                                                 detail, line_no, line, len);
                        if (n > 0)
                                fwrite(dbuf, 1, (size_t)n, dlq);
                }
        }
        pg_progress_end(&prog);
        pg_source_file_close(src);
        return got < 0 ? -1 : 0;
}
