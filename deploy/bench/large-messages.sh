#!/usr/bin/env bash
# The latency of a counter's small messages while another connection uploads
# large fee lists (BENCHMARKS.md, issue 9, "Large messages").
#
#   deploy/bench/large-messages.sh [BINARY...]
#
# For each gateway binary (default: this checkout's release build), in turn:
# starts it without a ledger in front of the upstream stand-in, then drives
# the Tianjin hospital's 1101 and 2301 (tj XML) open loop at RATE per second
# over 16 connections for DURATION seconds, first alone, then beside a
# closed loop of one connection sending a 2204 of LINES fee lines (the
# fixture's first line repeated, about 510 bytes a line). Prints the small
# messages' throughput and latency percentiles in both runs, and the large
# uploads' own. Environment: RATE (default 2000), DURATION (default 8),
# LINES (default 7000, 3.5 MB: under the gateway's 4 MiB default), ROUNDS
# (default 1), WORK. About 30 s a binary after the build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RATE=${RATE:-2000}
DURATION=${DURATION:-8}
LINES=${LINES:-7000}
ROUNDS=${ROUNDS:-1}
WORK=${WORK:-$(mktemp -d /tmp/jjj-large.XXXXXX)}

# shellcheck source=deploy/bench/common.sh
. "$ROOT/deploy/bench/common.sh"
bench_build
bench_pki_and_bodies
BINARIES=("$@")
[ ${#BINARIES[@]} -gt 0 ] || BINARIES=("$BIN")

# The large upload, edited as bytes: its markers are ASCII, which GB18030
# never uses inside a character.
python3 - "$WORK/bodies/2204.xml" "$WORK/bodies/large-2204.xml" "$LINES" <<'PY'
import sys
source, target, lines = sys.argv[1], sys.argv[2], int(sys.argv[3])
xml = open(source, "rb").read()
start, end = xml.index(b"<ROW>"), xml.index(b"</ROW>") + len(b"</ROW>")
row = xml[start:end]
serial = row.index(b"F0001")
rows = b"".join(row[:serial] + b"F%04d" % (n % 10000) + row[serial + 5:] + b"\n" for n in range(lines))
out = xml[:start] + rows + xml[xml.index(b"</FYMX>"):]
open(target, "wb").write(out)
print(f"large upload: {lines} lines, {len(out):,} bytes")
PY

STANDIN_PORT=$(free_port)
start_standin "$STANDIN_PORT"

run() {
    local binary=$1 port pid
    port=$(free_port)
    gateway_config "$port" "$STANDIN_PORT" bare >"$WORK/gateway.toml"
    (cd "$WORK" && exec "$binary" serve --config gateway.toml >"$WORK/gateway.log" 2>"$WORK/gateway.err") &
    pid=$!
    wait_listening "$WORK/gateway.log"
    local load=("$BIN" load --target "https://127.0.0.1:$port/v1/messages/tj" --ca "$CERTS/ca.pem"
                --cert "$CERTS/$HOSPITAL.pem" --key "$CERTS/$HOSPITAL.key" --threads 1 --json)
    local small=(--body "$WORK/bodies/1101.xml" --body "$WORK/bodies/2301.xml" --rate "$RATE" --connections 16)
    "${load[@]}" "${small[@]}" --duration 2 >/dev/null
    "${load[@]}" "${small[@]}" --duration "$DURATION" >"$WORK/alone.json"
    "${load[@]}" --body "$WORK/bodies/large-2204.xml" --connections 1 --duration $((DURATION + 2)) >"$WORK/large.json" &
    local large=$!
    sleep 1
    "${load[@]}" "${small[@]}" --duration "$DURATION" >"$WORK/beside.json"
    wait "$large"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$binary" "$WORK" <<'PY'
import json, sys
binary, work = sys.argv[1:]
print(binary)
for name, what in (("alone", "small, alone"), ("beside", "small, beside large"), ("large", "large uploads")):
    d = json.load(open(f"{work}/{name}.json"))
    l = d["latency_ms"]
    print(f"  {what:20} {d['throughput_rps']:8,.0f}/s  p50 {l['p50']:6.2f}  p99 {l['p99']:6.2f}  "
          f"p99.9 {l['p999']:6.2f}  max {l['max']:6.2f} ms  errors {d['errors_total']}")
PY
}

for round in $(seq 1 "$ROUNDS"); do
    for binary in "${BINARIES[@]}"; do run "$binary"; done
done
