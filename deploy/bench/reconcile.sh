#!/usr/bin/env bash
# Streaming reconciliation of N settlements (default 10 million) against the
# three regions' statements, next to reading the same bytes with cat, in one
# run on this machine. Writes the synthetic day to DIR (default /tmp/jjj-day,
# about 340 bytes per settlement across the four files) and prints the ratio.
#
#   deploy/bench/reconcile.sh [N] [DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10000000}
DIR=${2:-/tmp/jjj-day}
cargo build --release -q -p gateway --bin jjj-gateway --example clearing_day
if [ ! -s "$DIR/gateway.csv" ] || [ "$(cat "$DIR/.n" 2>/dev/null)" != "$N" ]; then
  "${CARGO_TARGET_DIR:-target}"/release/examples/clearing_day "$N" "$DIR"
  echo "$N" > "$DIR/.n"
fi
FILES=("$DIR/gateway.csv" "$DIR/110000.csv" "$DIR/120000.csv" "$DIR/130000.csv")
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%F)"
echo "input: $(du -cb "${FILES[@]}" | tail -1 | cut -f1) bytes"
cat "${FILES[@]}" > /dev/null   # warm the page cache for both
best() { sort -n | head -1; }
cat_times=(); rec_times=(); rec_mem=()
for i in 1 2 3; do
  s=$(date +%s.%N); cat "${FILES[@]}" > /dev/null; e=$(date +%s.%N)
  cat_times+=("$(echo "$e - $s" | bc)")
  out=$( { /usr/bin/time -f '%e %M' "${CARGO_TARGET_DIR:-target}"/release/jjj-gateway reconcile \
      --config deploy/gateway.example.toml --date 2026-11-26 --gateway "$DIR/gateway.csv" \
      --statement 110000="$DIR/110000.csv" --statement 120000="$DIR/120000.csv" \
      --statement 130000="$DIR/130000.csv" --out "$DIR/report" > "$DIR/report.txt" || true; } 2>&1 | tail -1)
  rec_times+=("${out% *}"); rec_mem+=("${out#* }")
done
c=$(printf '%s\n' "${cat_times[@]}" | best)
r=$(printf '%s\n' "${rec_times[@]}" | best)
m=$(printf '%s\n' "${rec_mem[@]}" | sort -n | tail -1)
grep -E "details" "$DIR/report.txt" || true
echo "cat:       ${c} s (best of 3)"
echo "reconcile: ${r} s (best of 3), peak RSS $((m / 1024)) MiB"
echo "ratio:     $(echo "scale=1; $r / $c" | bc)x"
