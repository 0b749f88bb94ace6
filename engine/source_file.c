/*
 * source_file.c - bounded line reader (see source_file.h).
 *
 * One buffer of twice the maximum line: lines are found with memchr in the
 * filled part; when no newline is left, the remainder is moved to the front
 * and the buffer refilled with one large read. Work per byte is O(1).
 */
#include "source_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec_json.h"
#include "util_mem.h"

#define BUF_SIZE (2 * PG_JSON_MAX_LINE + 2)

struct pg_source_file {
        FILE *f;
        bool own;
        char *buf;
        size_t start, end; /* unread bytes are buf[start, end) */
        bool eof;
        bool skipping; /* inside the tail of a too-long line */
        uint64_t read; /* bytes read from f so far */
        uint64_t size; /* of a regular file, else 0 */
};

pg_source_file_t *pg_source_file_open(const char *path, char *errstr,
                                      size_t errstr_size)
{
        FILE *f = stdin;
        bool own = false;
        if (strcmp(path, "-") != 0) {
                f = fopen(path, "rb");
                if (!f) {
                        snprintf(errstr, errstr_size, "%s: %s", path,
                                 strerror(errno));
                        return NULL;
                }
                own = true;
        }
        pg_source_file_t *s = pg_xcalloc(1, sizeof(*s));
        s->f = f;
        s->own = own;
        s->buf = pg_xmalloc(BUF_SIZE);
        struct stat st;
        if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode))
                s->size = (uint64_t)st.st_size;
        return s;
}

void pg_source_file_close(pg_source_file_t *s)
{
        if (!s)
                return;
        if (s->own)
                fclose(s->f);
        free(s->buf);
        free(s);
}

static int fill(pg_source_file_t *s, char *errstr, size_t errstr_size)
{
        if (s->start > 0) {
                memmove(s->buf, s->buf + s->start, s->end - s->start);
                s->end -= s->start;
                s->start = 0;
        }
        size_t n = fread(s->buf + s->end, 1, BUF_SIZE - s->end, s->f);
        s->end += n;
        s->read += n;
        if (n == 0) {
                if (ferror(s->f)) {
                        snprintf(errstr, errstr_size, "read error: %s",
                                 strerror(errno));
                        return -1;
                }
                s->eof = true;
        }
        return 0;
}

int pg_source_file_next(pg_source_file_t *s, const char **line, size_t *len,
                        bool *too_long, char *errstr, size_t errstr_size)
{
        for (;;) {
                char *p = s->buf + s->start;
                size_t avail = s->end - s->start;
                char *nl = memchr(p, '\n', avail);
                if (s->skipping) {
                        if (nl) {
                                s->start += (size_t)(nl - p) + 1;
                                s->skipping = false;
                                continue;
                        }
                        s->start = s->end = 0;
                        if (s->eof)
                                return 0;
                        if (fill(s, errstr, errstr_size) < 0)
                                return -1;
                        continue;
                }
                size_t n = nl ? (size_t)(nl - p) : avail;
                if (n > PG_JSON_MAX_LINE) {
                        /* Return a prefix for the dead-letter entry, skip
                         * the rest. */
                        *line = p;
                        *len = 1024;
                        *too_long = true;
                        if (nl) {
                                s->start += n + 1;
                        } else {
                                s->start = s->end = 0;
                                s->skipping = true;
                                /* the prefix is still in buf: refill only
                                 * on the next call */
                        }
                        return 1;
                }
                if (nl || (s->eof && avail)) {
                        *line = p;
                        *len = n;
                        *too_long = false;
                        s->start += nl ? n + 1 : n;
                        if (*len && p[*len - 1] == '\r')
                                (*len)--;
                        return 1;
                }
                if (s->eof)
                        return 0;
                if (fill(s, errstr, errstr_size) < 0)
                        return -1;
        }
}

uint64_t pg_source_file_done(const pg_source_file_t *s)
{
        return s->read - (s->end - s->start);
}

uint64_t pg_source_file_size(const pg_source_file_t *s)
{
        return s->size;
}
