#!/usr/bin/env bash
# Run trama's cargo-fuzz targets one after the other, each for a bounded time,
# and print one summary line per target. Not run by CI (it needs nightly Rust
# and cargo-fuzz: `cargo install cargo-fuzz`).
#
#   scripts/fuzz.sh                 # every target, 60 s each
#   scripts/fuzz.sh 600             # every target, 10 minutes each
#   scripts/fuzz.sh 600 stream chat # only these targets
#
# Targets run one at a time under `nice -n 19`, with `--sanitizer none` (no
# target has unsafe code). Each run's log goes to target/fuzz-logs/TARGET.log;
# a crash leaves its input under the fuzz crate's artifacts/TARGET/ and makes
# the script exit with status 1 after the remaining targets ran.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${1:-60}"
shift || true

# target -> fuzz crate folder
declare -A CRATE=(
  [decoder]=crates/protocol/fuzz
  [reader]=crates/protocol/fuzz
  [stream]=crates/protocol/fuzz
  [chat]=crates/backend/fuzz
  [files]=crates/backend/fuzz
  [mesh]=crates/backend/fuzz
)
ORDER=(decoder reader stream chat files mesh)
if [ "$#" -gt 0 ]; then
  ORDER=("$@")
fi

TOOLCHAIN="${FUZZ_TOOLCHAIN:-+nightly}"
LOGS="$ROOT/target/fuzz-logs"
mkdir -p "$LOGS"
status=0
for target in "${ORDER[@]}"; do
  dir="${CRATE[$target]:-}"
  if [ -z "$dir" ]; then
    echo "unknown target $target (known: ${!CRATE[*]})" >&2
    exit 2
  fi
  log="$LOGS/$target.log"
  (cd "$ROOT/$dir" && nice -n 19 cargo "$TOOLCHAIN" fuzz run --sanitizer none "$target" -- \
      -max_total_time="$SECS" -print_final_stats=1) >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  corpus=$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    result="no crash"
  else
    result="FAILED (exit $rc), see $log"
    status=1
  fi
  echo "$target: ${runs:-?}, ${cov:-cov: ?}, ${corpus:-corp: ?}: $result"
done
exit "$status"
