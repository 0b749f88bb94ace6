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

/* The JSON form of the character at s[*i] of s[0..n): \" and \\ for quote
 * and backslash, \u00XX for control characters, a valid UTF-8 sequence as
 * it is, and \ufffd (the replacement character) for a byte that does not
 * start one, so that text from elsewhere (a file name, a library's message)
 * never makes the JSON invalid. Writes it to out (at most 6 bytes, no NUL),
 * moves *i past it and returns its length. */
size_t pg_json_esc(const char *s, size_t n, size_t *i, char out[6]);

/* Write s to f as a JSON string (pg_json_esc), for reports. */
void pg_json_str_write(FILE *f, const char *s);

#endif
