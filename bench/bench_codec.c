/*
 * bench_codec.c - the JSON record parser alone: records/s over a JSON-lines
 * file held in memory. It is the baseline that bench/run.sh prints next to
 * the whole replay, so the engine's own cost per record is visible.
 *
 *   bench_codec FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec_json.h"

static double now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: bench_codec FILE\n");
                return 2;
        }
        FILE *f = fopen(argv[1], "rb");
        if (!f) {
                perror(argv[1]);
                return 1;
        }
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)size + 1);
        if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
                fprintf(stderr, "cannot read %s\n", argv[1]);
                return 1;
        }
        fclose(f);
        static pg_record_t rec;
        char err[256];
        const char *field;
        unsigned long ok = 0, bad = 0;
        double t0 = now_s();
        for (char *p = buf, *end = buf + size; p < end;) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
                if (len <= PG_JSON_MAX_LINE &&
                    pg_codec_json_parse(p, len, &rec, &field, err,
                                        sizeof(err)) == PG_REJ_NONE)
                        ok++;
                else
                        bad++;
                p += len + 1;
        }
        double secs = now_s() - t0;
        printf("codec_json_parse: %lu records (%lu rejected) in %.3f s = "
               "%.0f records/s, %.1f MB/s\n",
               ok + bad, bad, secs, (double)(ok + bad) / secs,
               (double)size / secs / 1e6);
        free(buf);
        return 0;
}
