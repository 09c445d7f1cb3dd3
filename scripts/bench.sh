#!/usr/bin/env bash
# The benchmarks of docs/benchmarks.md: ezctl against a loop of OpenSSH
# processes and against Ansible, on lab machines the bench boots itself.
#
#   scripts/bench.sh                  # full run: N = 10 and 40, 3 reps (about 1 h on 2 cores)
#   scripts/bench.sh --smoke          # N = 2, 1 rep: every path once (a few minutes)
#   scripts/bench.sh --sizes 10 --only exec,a --reps 5 --json-out /tmp/bench.json
#   scripts/bench.sh --only growth --reps 1 --ansible default   # light hosts, N = 10 ... 1000
#
# Needs root (the lab) and, the first time, PyPI (ansible-core is installed
# into a cached virtualenv under /var/cache/ezbench). Prints the table on
# stdout, progress on stderr. Arguments go to `ezbench` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "bench: must run as root (the lab boots systemd-nspawn machines)" >&2
  exit 1
fi
scripts/install-deps.sh >&2
# Release builds: the product is measured as shipped. Workload B installs
# the real etcd and containerd from the build cache.
cargo build --release -q -p ezctl -p ez-bench
scripts/build-lab-components.sh >&2
# A private copy, so a build running meanwhile cannot swap a binary mid-run.
bins=$(mktemp -d /var/tmp/ezbench-bin.XXXXXX)
trap 'rm -rf "$bins"' EXIT
for b in ezbench ezctl; do
  cp "${CARGO_TARGET_DIR:-target}/release/$b" "$bins/"
done
"$bins/ezbench" --ezctl "$bins/ezctl" --repo "$PWD" "$@"
