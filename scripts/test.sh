#!/usr/bin/env bash
# The whole test suite: unit tests, the malformed-inventory corpus, and the
# end-to-end tests on real lab machines (they need root; without it they say
# why and skip, except under CI=true or EZ_REQUIRE_LAB=1, where a test that
# cannot run is a failure).
#
# Ends with one summary line: how many lab tests ran and how many skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
if [ "$(id -u)" -eq 0 ]; then
  scripts/install-deps.sh
fi
cargo build --workspace --all-targets
built_rust=$SECONDS

# The real components the lab runs, built from their Go modules into
# /var/cache/ezctl-build (seconds when warm; see docs/real-kubernetes.md for
# cold times). Tests never build them: a missing one fails the test.
if [ "$(id -u)" -eq 0 ]; then
  scripts/build-lab-components.sh
fi
built_components=$SECONDS
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# --no-fail-fast: one CI run reports every failing test binary, not the first.
# Lab tests boot machines; run test binaries one at a time so two labs do not
# compete for the 2 cores, but tests inside a binary in parallel.
# Every lab test appends "ran|skipped|failed-skip <test>" to this tally
# (ez_lab::testing): the summary below is read from it, not from cargo's
# output, so a test that returned early cannot count as having run.
tally=$(mktemp /tmp/ez-test-tally.XXXXXX)
chmod 0666 "$tally"
trap 'rm -f "$tally"' EXIT
rc=0
EZ_TEST_TALLY=$tally cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-4}" || rc=$?

ran=$(awk -F'\t' '$1=="ran"{print $2}' "$tally" | sort -u | wc -l)
skipped=$(awk -F'\t' '$1=="skipped"||$1=="failed-skip"{print $2}' "$tally" | sort -u | wc -l)
echo "test.sh: lab tests: $ran executed, $skipped skipped (cargo test exit code $rc)"
echo "test.sh: times: Rust build $((built_rust - started)) s, components $((built_components - built_rust)) s, checks and tests $((SECONDS - built_components)) s"
if [ "$skipped" -gt 0 ]; then
  awk -F'\t' '$1!="ran"{print "  " $1 ": " $2}' "$tally" | sort -u
fi
if [ "${CI:-}" = true ] || [ "${EZ_REQUIRE_LAB:-}" = 1 ]; then
  if [ "$skipped" -gt 0 ] || [ "$ran" -eq 0 ]; then
    echo "test.sh: CI requires every lab test to run" >&2
    rc=1
  fi
fi
exit "$rc"
