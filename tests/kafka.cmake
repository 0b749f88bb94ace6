# Real-broker tests: scripts/kafka.sh runs a single-node Apache Kafka 4.x
# (KRaft) on 127.0.0.1 from jars fetched once with Maven into
# ${XDG_CACHE_HOME:-~/.cache}/posguard (PG_KAFKA_CACHE overrides). Needs Java
# 17+, kcat, python3, and mvn the first time. Each test picks free ports,
# so they may run in parallel. Run them alone with: ctest -L kafka
add_test(NAME kafka_smoke COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/kafka_smoke.sh)
set_tests_properties(kafka_smoke PROPERTIES LABELS "kafka" TIMEOUT 300)

# posguard run end to end against the real broker, outputs checked against
# the oracle partition by partition; one test per fault (tests/kafka_e2e.sh).
foreach(mode plain json kill9 broker rebalance fenced reload prometheus dashboard)
  add_test(NAME kafka_e2e_${mode}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/kafka_e2e.sh
                   $<TARGET_FILE:posguard> ${CMAKE_SOURCE_DIR}/rules/default.yaml
                   ${mode})
  set_tests_properties(kafka_e2e_${mode} PROPERTIES LABELS "kafka;e2e"
                       TIMEOUT 600
                       ENVIRONMENT "PG_TEST_ARTIFACTS=${CMAKE_BINARY_DIR}/artifacts")
endforeach()

# Error handling under injected request errors and a broker outage, with
# librdkafka's in-process mock cluster (tests/test_kafka_faults.c; not a
# stand-in for the real-broker tests above: the mock cannot prove
# exactly-once).
set_tests_properties(test_kafka_faults PROPERTIES LABELS "kafka;mock"
                     TIMEOUT 300)

# docs/RULES.md's walk-through for a newcomer: write, check, test, backtest
# and hot-reload a rule (scripts/rules-walkthrough.sh).
add_test(NAME rules_walkthrough
         COMMAND ${CMAKE_SOURCE_DIR}/scripts/rules-walkthrough.sh)
set_tests_properties(rules_walkthrough PROPERTIES LABELS "kafka;e2e" TIMEOUT 300
                     ENVIRONMENT "POSGUARD=$<TARGET_FILE:posguard>")
