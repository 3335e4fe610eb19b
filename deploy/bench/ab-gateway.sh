#!/usr/bin/env bash
# Two builds of the gateway side by side: the same closed-loop run (or open
# loop with RATE) through each in turn, ROUNDS times, alternating, with the
# same upstream stand-in, generator, certificates and payloads as
# gateway-vs-nginx.sh; prints each run's throughput, p50, p99 and the
# gateway's CPU time per answered request (utime + stime from /proc).
# For changes too small to show in the noise between two whole-script runs
# (BENCHMARKS.md, issue 9).
#
#   deploy/bench/ab-gateway.sh OLD_BINARY NEW_BINARY [a|b]
#
#   a (default): the Tianjin hospital's 1101, 2204 and 2301, no ledger;
#   b:           its 2207 with a fresh msgid each, SQLite ledger.
#
# Build the older binary from its commit into another target folder, e.g.
#   git worktree add /tmp/old COMMIT && (cd /tmp/old && \
#     CARGO_TARGET_DIR=/work/target-old cargo build --release -p gateway --bin jjj-gateway)
# Environment: ROUNDS (default 3), DURATION (s per run, default 8),
# CONNECTIONS (default 32), RATE (open loop at this rate instead), WORK.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY [a|b]" >&2; exit 2; }
BINARIES=("$1" "$2")
SET=${3:-a}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
CONNECTIONS=${CONNECTIONS:-32}
WORK=${WORK:-$(mktemp -d /tmp/jjj-ab.XXXXXX)}

# shellcheck source=deploy/bench/common.sh
. "$ROOT/deploy/bench/common.sh"
bench_build   # the generator and the stand-in come from this checkout
bench_pki_and_bodies
STANDIN_PORT=$(free_port)
start_standin "$STANDIN_PORT"
case $SET in
    a) MODE=bare; BODIES=(--body "$WORK/bodies/1101.xml" --body "$WORK/bodies/2204.xml" --body "$WORK/bodies/2301.xml") ;;
    b) MODE=ledger; BODIES=(--body "$WORK/bodies/2207.xml" --unique-msgid) ;;
    *) echo "usage: $0 OLD_BINARY NEW_BINARY [a|b]" >&2; exit 2 ;;
esac

run() {
    local binary=$1 port pid t0 t1
    port=$(free_port)
    rm -rf "$WORK/data"; mkdir -p "$WORK/data"
    gateway_config "$port" "$STANDIN_PORT" "$MODE" >"$WORK/gateway.toml"
    (cd "$WORK" && exec "$binary" serve --config gateway.toml >"$WORK/gateway.log" 2>"$WORK/gateway.err") &
    pid=$!
    wait_listening "$WORK/gateway.log"
    local load=("$BIN" load --target "https://127.0.0.1:$port/v1/messages/tj" --ca "$CERTS/ca.pem"
                --cert "$CERTS/$HOSPITAL.pem" --key "$CERTS/$HOSPITAL.key" --threads 1
                --connections "$CONNECTIONS" --json "${BODIES[@]}")
    "${load[@]}" --duration 2 >"$WORK/warm.json"
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    "${load[@]}" ${RATE:+--rate "$RATE"} --duration "$DURATION" >"$WORK/run.json"
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$WORK/run.json" "$binary" "$t0" "$t1" "$DURATION" "$(getconf CLK_TCK)" <<'PY'
import json, sys
run, binary, t0, t1, duration, tck = sys.argv[1:]
d = json.load(open(run))
answered = d["throughput_rps"] * float(duration)
cpu_us = (float(t1) - float(t0)) / float(tck) * 1e6 / max(answered, 1)
errors = {k: v for k, v in d["errors"].items() if v} or "none"
print(f"{binary}: {d['throughput_rps']:.0f}/s, p50 {d['latency_ms']['p50']:.2f} ms, "
      f"p99 {d['latency_ms']['p99']:.2f} ms, CPU {cpu_us:.0f} µs/request, errors {errors}")
PY
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round"
    for binary in "${BINARIES[@]}"; do run "$binary"; done
done
