/*
 * util_text.c - see util_text.h.
 */
#include "util_text.h"

#include <stdio.h>
#include <string.h>

const char *pg_show(char *buf, size_t size, const char *s, size_t len,
                    size_t max)
{
        if (!buf || size == 0)
                return "";
        size_t o = 0;
        size_t i;
        for (i = 0; i < len && i < max && o + 5 < size; i++) {
                unsigned char ch = (unsigned char)s[i];
                if (ch >= 0x20 && ch < 0x7f && ch != '\\')
                        buf[o++] = (char)ch;
                else
                        o += (size_t)snprintf(buf + o, size - o, "\\x%02x", ch);
        }
        if (i < len && o + 4 < size) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        buf[o] = '\0';
        return buf;
}

void pg_json_str_write(FILE *f, const char *s)
{
        fputc('"', f);
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c < 0x20)
                        fprintf(f, "\\u%04x", c);
                else
                        fputc(c, f);
        }
        fputc('"', f);
}
