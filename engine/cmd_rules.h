/*
 * cmd_rules.h - the rule workflow commands (cmd_rules.c).
 *
 *   posguard test [--rules FILE] DIR...        rule fixtures
 *   posguard backtest --rules NEW [--baseline OLD] --input FILE [--json F]
 *
 * Each returns the process exit status.
 */
#ifndef PG_CMD_RULES_H
#define PG_CMD_RULES_H

int pg_cmd_test(int argc, char **argv);
int pg_cmd_backtest(int argc, char **argv);

#endif
