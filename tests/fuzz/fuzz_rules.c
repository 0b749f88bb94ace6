/*
 * fuzz_rules.c - libFuzzer target for the rule file parser: arbitrary bytes
 * go to pg_rules_load_buffer, and the result (or the error) is released.
 * Rule files come from people and from deploy tooling, so the loader must
 * refuse any input cleanly: no crash, no leak, no read past the buffer, an
 * error message that is NUL-terminated and starts with "FILE:".
 *
 * The same bytes are also compiled as a `where` expression and, when they
 * compile, evaluated on two fixed records, so the filter language is
 * fuzzed directly and not only through YAML strings.
 *
 * Build and run (seed corpus in tests/fuzz/corpus_rules/):
 *   clang -fsanitize=fuzzer,address,undefined -Iengine tests/fuzz/fuzz_rules.c
 * \
 *     engine/rules_load.c engine/rules_expr.c engine/record.c
 * engine/util_text.c -lyaml \ -o /tmp/fuzz_rules /tmp/fuzz_rules
 * -max_total_time=60 tests/fuzz/corpus_rules/
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "rules_expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void set_str(pg_str_t *s, const char *v)
{
        size_t n = strlen(v);
        s->len = (uint8_t)n;
        memcpy(s->s, v, n + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char err[512];
        /* An exact-size copy, so ASan sees any read past the end. */
        char *buf = malloc(size ? size : 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);

        pg_ruleset_t *rs =
            pg_rules_load_buffer("fuzz.yaml", buf, size, err, sizeof(err));
        if (rs) {
                if (rs->n_rules < 0 || rs->n_rules > 256)
                        abort();
                pg_rules_free(rs);
        } else if (strncmp(err, "fuzz.yaml:", 10) != 0 ||
                   strlen(err) >= sizeof(err)) {
                abort();
        }

        size_t off = 0;
        pg_expr_t *e = pg_expr_compile(buf, size, err, sizeof(err), &off);
        if (e) {
                pg_record_t r;
                memset(&r, 0, sizeof(r));
                set_str(&r.txn_id, "T1");
                set_str(&r.merchant_id, "M1");
                set_str(&r.card_token, "tok");
                set_str(&r.currency, "EUR");
                r.amount = 1000;
                (void)pg_expr_eval(e, &r);
                set_str(&r.order_id, "O1");
                r.has_expected = true;
                r.expected_amount = 100;
                r.entry_mode = PG_ENTRY_SWIPE;
                r.kind = PG_KIND_REFUND;
                r.retransmission = true;
                (void)pg_expr_eval(e, &r);
                pg_expr_free(e);
        } else if (off > size || !err[0]) {
                abort();
        }
        free(buf);
        return 0;
}
