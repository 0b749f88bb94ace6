/*
 * source_file.h - JSON lines from a file or stdin, with bounded memory.
 *
 * Lines are returned in place from one fixed buffer. A line longer than
 * PG_JSON_MAX_LINE is not kept: its first bytes are returned with
 * *too_long set and the rest is skipped up to the next newline, so a
 * hostile input without newlines cannot make the reader grow.
 */
#ifndef PG_SOURCE_FILE_H
#define PG_SOURCE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct pg_source_file pg_source_file_t;

/* path "-" is stdin. Returns NULL with errstr set when it cannot open. */
pg_source_file_t *pg_source_file_open(const char *path, char *errstr,
                                      size_t errstr_size);
/* Next line without its '\n' (and without a trailing '\r'). Returns 1 and
 * sets *line and *len (valid until the next call), 0 at end of input, -1 on a
 * read error (errstr set). *too_long: the line was cut (see above). */
int pg_source_file_next(pg_source_file_t *s, const char **line, size_t *len,
                        bool *too_long, char *errstr, size_t errstr_size);
void pg_source_file_close(pg_source_file_t *s);
/* Bytes consumed so far, and the input's size (0: not a regular file, a
 * pipe or stdin): for progress. */
uint64_t pg_source_file_done(const pg_source_file_t *s);
uint64_t pg_source_file_size(const pg_source_file_t *s);

#endif
