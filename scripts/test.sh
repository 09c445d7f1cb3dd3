#!/usr/bin/env bash
# The whole test suite: unit tests, the malformed-inventory corpus, and the
# end-to-end tests on real lab machines (they need root; without it they say
# why and skip).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
  scripts/install-deps.sh
fi
cargo build --workspace --all-targets
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# --no-fail-fast: one CI run reports every failing test binary, not the first.
# Lab tests boot machines; run test binaries one at a time so two labs do not
# compete for the 2 cores, but tests inside a binary in parallel.
cargo test --workspace --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
