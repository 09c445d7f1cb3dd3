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
export EZ_TEST_TALLY=$tally
threads=${TEST_THREADS:-4}
# 1. Everything but ezctl's end-to-end binaries: unit tests, the corpus, the
#    small labs of the lab, ssh and pki crates, the bench smoke test.
cargo test --workspace --exclude ezctl --no-fail-fast -- --test-threads="$threads" || rc=$?
cargo test -p ezctl --bins --test cli --test lab_required --no-fail-fast -- --test-threads="$threads" || rc=$?

# 2. The end-to-end binaries, each with its own lab of real machines, in
#    LAB_LANES lanes (default 2). A lab mostly waits on real components
#    (about a quarter of a core once set up, measured on the 2-core VM), so
#    two at once roughly halve the wall time; set LAB_LANES=1 to run them one
#    by one. Longest first, so the lanes end together; a binary missing from
#    this list still runs (appended), it is only ordered last.
order="e2e_lifecycle e2e_fault_recovery e2e_etcd_members e2e_fault_services e2e_upgrade
e2e_rerun e2e_scale_master e2e_etcd_backup e2e_fault_host_down e2e_secrets e2e_scale_node e2e_light_scale e2e_setup
e2e_start_aio e2e_demo_hint e2e_fault_controller e2e_fault_disk e2e_fault_sshd e2e_fault_input e2e_ssh e2e_engine"
e2e_exes=$(mktemp /tmp/ez-e2e-exes.XXXXXX)
logs=$(mktemp -d /tmp/ez-e2e-logs.XXXXXX)
trap 'rm -f "$tally" "$e2e_exes"; rm -rf "$logs"' EXIT
cargo test -p ezctl --tests --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["kind"] == ["test"] and m["target"]["name"].startswith("e2e_"):
        print(m["target"]["name"], m["executable"])' >"$e2e_exes"
listed=$( (for t in $order; do grep -q "^$t " "$e2e_exes" && echo "$t"; done
  awk '{print $1}' "$e2e_exes" | while read -r t; do case " $(echo $order) " in *" $t "*) ;; *) echo "$t" ;; esac; done) )
run_e2e() { # run_e2e NAME: the binary straight, as cargo would (cwd = its package)
  local name=$1 exe start
  exe=$(awk -v n="$name" '$1==n{print $2}' "$e2e_exes")
  start=$SECONDS
  if (cd crates/ezctl && CARGO_MANIFEST_DIR=$PWD "$exe" --test-threads="$threads") >"$logs/$name.log" 2>&1; then
    echo "ok $name $((SECONDS - start))" >"$logs/$name.rc"
  else
    echo "FAILED $name $((SECONDS - start))" >"$logs/$name.rc"
  fi
  { echo "==== $name ($((SECONDS - start)) s)"; cat "$logs/$name.log"; } >&2
}
export -f run_e2e
export e2e_exes logs threads
echo "$listed" | xargs -P "${LAB_LANES:-2}" -I{} bash -c 'run_e2e {}'
echo "test.sh: end-to-end binaries (seconds):"
for t in $listed; do
  if [ -f "$logs/$t.rc" ]; then
    read -r verdict _ secs <"$logs/$t.rc"
  else
    verdict="NOT RUN" secs=-
  fi
  printf '  %-22s %-8s %s\n' "$t" "$verdict" "$secs"
  [ "$verdict" = ok ] || rc=1
done

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
