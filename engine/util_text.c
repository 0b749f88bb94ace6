/*
 * util_text.c - see util_text.h.
 */
#include "util_text.h"

#include "codec_common.h"

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

size_t pg_json_esc(const char *s, size_t n, size_t *i, char out[6])
{
        static const char hex[] = "0123456789abcdef";
        unsigned char c = (unsigned char)s[*i];
        if (c >= 0x80) {
                size_t k = pg_utf8_len((const unsigned char *)s + *i, n - *i);
                if (!k) {
                        (*i)++;
                        memcpy(out, "\\ufffd", 6);
                        return 6;
                }
                memcpy(out, s + *i, k);
                *i += k;
                return k;
        }
        (*i)++;
        if (c == '"' || c == '\\') {
                out[0] = '\\';
                out[1] = (char)c;
                return 2;
        }
        if (c < 0x20) {
                memcpy(out, "\\u00", 4);
                out[4] = hex[c >> 4];
                out[5] = hex[c & 15];
                return 6;
        }
        out[0] = (char)c;
        return 1;
}

void pg_json_str_write(FILE *f, const char *s)
{
        fputc('"', f);
        char e[6];
        for (size_t i = 0, n = strlen(s); i < n;)
                fwrite(e, 1, pg_json_esc(s, n, &i, e), f);
        fputc('"', f);
}
