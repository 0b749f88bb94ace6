/*
 * rules_expr.h - filter expressions (`where:`), compiled once, evaluated
 * per record without allocation or string parsing.
 *
 * Grammar (case-sensitive keywords, whitespace free):
 *   expr    := or
 *   or      := and ( "or" and )*
 *   and     := unary ( "and" unary )*
 *   unary   := "not" unary | "(" expr ")" | cmp
 *   cmp     := FIELD OP literal | FIELD ["not"] "in" "[" literal ("," literal)*
 * "]" | FIELD                      (bool field, or "is present") OP      :=
 * "==" | "!=" | "<" | "<=" | ">" | ">=" literal := integer | 'single' or
 * "double" quoted string | bare word FIELD is a record field name (record.h).
 * Enum fields compare against their value names (checked at compile time); int
 * fields take < <= > >=; a missing optional field makes every comparison false
 * except "!=".
 */
#ifndef PG_RULES_EXPR_H
#define PG_RULES_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#include "record.h"

typedef struct pg_expr pg_expr_t;

/* Limits that keep hostile rule files cheap: nesting of "not" and "(" (so
 * compile and eval recursion stay shallow), literals in one "in [...]"
 * list, and bytes of source. */
#define PG_EXPR_MAX_DEPTH 64
#define PG_EXPR_MAX_LIST 64
#define PG_EXPR_MAX_LEN 65536

/* Compile src. On error returns NULL, writes the reason into errstr and the
 * 0-based byte offset of the problem into *err_offset. The caller owns the
 * result (pg_expr_free). */
pg_expr_t *pg_expr_compile(const char *src, size_t len, char *errstr,
                           size_t errstr_size, size_t *err_offset);
/* Thread-safe: the compiled expression is read-only. */
bool pg_expr_eval(const pg_expr_t *e, const pg_record_t *rec);
void pg_expr_free(pg_expr_t *e);

#endif
