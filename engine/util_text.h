/*
 * util_text.h - user text made safe to quote in a message.
 */
#ifndef PG_UTIL_TEXT_H
#define PG_UTIL_TEXT_H

#include <stddef.h>
#include <stdio.h>

/* Copy s (len bytes, not necessarily NUL-terminated) into buf for an error
 * message: printable ASCII as is, any other byte and '\' as \xNN, cut at max
 * input bytes with "..." after, so that hostile input cannot flood or
 * corrupt a terminal or a log. Returns buf, always NUL-terminated. */
const char *pg_show(char *buf, size_t size, const char *s, size_t len,
                    size_t max);

/* The JSON form of one byte of a string: \" and \\ for quote and
 * backslash, \u00XX for control characters, the byte itself otherwise.
 * Writes it to out (at most 6 bytes, no NUL) and returns its length. */
size_t pg_json_esc(unsigned char c, char out[6]);

/* Write s to f as a JSON string (pg_json_esc), for reports. */
void pg_json_str_write(FILE *f, const char *s);

#endif
