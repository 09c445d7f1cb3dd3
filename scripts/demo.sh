#!/usr/bin/env bash
# The main job on an embedded default: boot a local fleet of real machines and
# provision it with ezctl. Safe to run again: everything is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p ezctl -p ez-lab
export EZCTL_HOME="$PWD"
./target/release/ezlab up 7 --name demo
./target/release/ezctl check demo
cat <<'MSG'

The fleet is up and its inventory is clusters/demo/. Try:
  target/release/ezlab status
  target/release/ezlab ssh <ip> -- hostname
  target/release/ezctl check demo --json
  target/release/ezlab down --name demo      # tear it all down
MSG
