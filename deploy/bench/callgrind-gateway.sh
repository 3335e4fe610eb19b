#!/usr/bin/env bash
# Instructions per request on the gateway's whole request path, counted by
# callgrind: the same count for the same binary and inputs whatever else the
# machine is doing, so a change to the request path can be measured on a busy
# machine (BENCHMARKS.md, issue 9). Time per request follows instructions only
# roughly: callgrind counts each byte of a large copy, and no kernel work.
#
#   deploy/bench/callgrind-gateway.sh [a|b]
#
#   a (default): the Tianjin hospital's 1101, 2204 and 2301 (tj XML) in turn,
#                through the gateway without a ledger;
#   b:           its 2207 with a fresh msgid each, through the gateway with its
#                SQLite ledger (pending and final journal writes).
#
# Builds release, starts the upstream stand-in, and `jjj-gateway serve` under
# `valgrind --tool=callgrind`; sends 200 requests to warm up, zeroes the
# counts, sends N (default 1000) at RATE per second (default 100) over 4
# connections with `jjj-gateway load`, dumps the counts, and prints the
# instructions per request and the functions that spend most of them (self).
# The count includes the 4 connections' TLS handshakes (about 11 k
# instructions a request at N=1000): compare runs with the same N.
# Environment: N, RATE, WORK (scratch folder), KEEP=1 keeps the servers.
# About 2 minutes after the build.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SET=${1:-a}
N=${N:-1000}
RATE=${RATE:-100}
WORK=${WORK:-$(mktemp -d /tmp/jjj-callgrind.XXXXXX)}
command -v valgrind >/dev/null || { echo "valgrind is needed (Debian package valgrind)" >&2; exit 2; }

# shellcheck source=deploy/bench/common.sh
. "$ROOT/deploy/bench/common.sh"
bench_build
bench_pki_and_bodies

STANDIN_PORT=$(free_port); GATEWAY_PORT=$(free_port)
start_standin "$STANDIN_PORT"
case $SET in
    a) gateway_config "$GATEWAY_PORT" "$STANDIN_PORT" bare >"$WORK/gateway.toml"
       BODIES=(--body "$WORK/bodies/1101.xml" --body "$WORK/bodies/2204.xml" --body "$WORK/bodies/2301.xml") ;;
    b) gateway_config "$GATEWAY_PORT" "$STANDIN_PORT" >"$WORK/gateway.toml"
       BODIES=(--body "$WORK/bodies/2207.xml" --unique-msgid) ;;
    *) echo "usage: $0 [a|b]" >&2; exit 2 ;;
esac
mkdir -p "$WORK/data"
OUT=$WORK/callgrind.out
(cd "$WORK" && exec valgrind --tool=callgrind --callgrind-out-file="$OUT" \
    "$BIN" serve --config gateway.toml >"$WORK/gateway.log" 2>"$WORK/gateway.err") &
GATEWAY_PID=$!
PIDS+=($GATEWAY_PID)
wait_listening "$WORK/gateway.log"

LOAD=("$BIN" load --target "https://127.0.0.1:$GATEWAY_PORT/v1/messages/tj" --ca "$CERTS/ca.pem"
      --cert "$CERTS/$HOSPITAL.pem" --key "$CERTS/$HOSPITAL.key" --threads 1 --connections 4 --json "${BODIES[@]}")
"${LOAD[@]}" --rate 50 --duration 4 >"$WORK/warm.json"
# The subshell became valgrind (exec): its pid is callgrind's.
callgrind_control --zero "$GATEWAY_PID" >/dev/null
"${LOAD[@]}" --rate "$RATE" --duration $((N / RATE)) >"$WORK/run.json"
callgrind_control --dump "$GATEWAY_PID" >/dev/null
sleep 1
OK=$(jq .ok "$WORK/run.json")
ERRORS=$(jq .errors_total "$WORK/run.json")
DUMP=$(ls -t "$OUT".* | head -n1)
python3 - "$DUMP" "$OK" "$ERRORS" "$SET" <<'PY'
import collections, re, sys
path, ok, errors, which = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# Self cost per function, from callgrind's format (names compressed as "(id) name").
names, own = {}, collections.Counter()
def name(kind, text):
    m = re.match(r"\((\d+)\)(?: (.*))?", text)
    if not m:
        return text
    if m.group(2) is not None:
        names[(kind, m.group(1))] = m.group(2)
    return names.get((kind, m.group(1)), text)
fn, after_call = None, False
for line in open(path, errors="replace"):
    line = line.rstrip("\n")
    if line.startswith("fn="):
        fn = name("fn", line[3:])
    elif line.startswith("cfn="):
        name("fn", line[4:])
    elif line.startswith(("fl=", "fi=", "fe=")):
        name("fl", line[3:])
    elif line.startswith(("cfi=", "cfl=")):
        name("fl", line[4:])
    elif line.startswith(("ob=", "cob=")):
        name("ob", line[line.index("=") + 1:])
    elif line.startswith("calls="):
        after_call = True
    elif line and (line[0].isdigit() or line[0] in "+-*"):
        if after_call:
            after_call = False  # the cost of a call, counted in the callee
        elif fn is not None:
            parts = line.split()
            if len(parts) >= 2:
                own[fn] += int(parts[1])
total = sum(own.values())
print(f"({which}) {ok} requests answered, {errors} errors")
print(f"instructions per request: {total / max(ok, 1):,.0f}")
print("most of them (self, per request):")
for f, c in own.most_common(15):
    print(f"  {c / max(ok, 1):>9,.0f}  {100 * c / total:4.1f}%  {f[:110]}")
PY
echo "callgrind's file: $DUMP (callgrind_annotate --inclusive=yes for callers' totals)"
