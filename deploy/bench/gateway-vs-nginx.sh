#!/usr/bin/env bash
# The gateway against nginx as a plain mutual-TLS reverse proxy, side by side
# in one run on this machine, with the same generator (`jjj-gateway load`),
# the same connections and the same payloads (issue 9; BENCHMARKS.md).
#
#   deploy/bench/gateway-vs-nginx.sh
#
# What it does:
#  1. builds release (jjj-gateway and the example upstream_standin);
#  2. makes a development PKI (`jjj-gateway certs init`) for a Tianjin hospital;
#  3. starts the upstream stand-in: a minimal mTLS HTTP/1.1 server answering
#     each request with the canned answer of its transaction from
#     contracts/fixtures/ (national JSON for national requests, tj XML for tj);
#  4. starts nginx (Debian's package; installed with apt-get if missing) as a
#     mutual-TLS reverse proxy passing everything through to the stand-in;
#  5. starts the gateway with its journal on (SQLite ledger, synchronous=FULL)
#     and every region routed to the stand-in in the national dialect;
#  6. drives both with the Tianjin hospital H12010100789's tj-XML requests
#     (contracts/fixtures/tj/, its own code and region put in), POSTed to
#     /v1/messages/tj:
#       (a) lookups and fee uploads (1101, 2204, 2301 round-robin; not journalled),
#       (b) settlements (2207, a fresh msgid per request: every one journalled
#           pending and final), each
#       - closed loop at maximum with $CONNECTIONS connections (throughput, p99),
#       - open loop at 70% of nginx's maximum rate of the same set (p99 from
#         the scheduled send time);
#     and full mTLS handshakes per second without resumption (a fresh
#     connection per GET /healthz, $HS_CONNECTIONS at a time);
#  7. times the journal's added latency: the same 2207s at a low open-loop
#     rate through the gateway with and without its ledger at the same time,
#     against two fsyncs timed alone just before and after;
#  8. runs the ledger alone (`journal_tps`: $CONNECTIONS writers journalling
#     settlements pending then final, each durable, replies the size of the
#     2207 answer; no TLS, no translation): the most settlements per second
#     this machine's disk and SQLite allow at this concurrency, a ceiling on
#     (b) whatever the gateway does, printed as a ratio to nginx's (b);
#  9. prints the gateway/nginx ratios, with the servers' CPU time per request
#     (from /proc: the gateway's process, nginx's workers), and writes every
#     run's JSON to $WORK.
#
# Environment: DURATION (s per run, default 10), CONNECTIONS (default 32),
# HS_CONNECTIONS (default 16), LOAD_THREADS (generator threads, default 1),
# WORK (scratch folder, default a new one under /tmp), KEEP=1 leaves the
# servers running at the end, PERF=1 records `perf record -g` of the gateway
# during its closed-loop runs into $WORK/perf-*.data.
# Ten runs of DURATION seconds, warm-up and the build: about 5 minutes with defaults.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
HS_CONNECTIONS=${HS_CONNECTIONS:-16}
LOAD_THREADS=${LOAD_THREADS:-1}
WORK=${WORK:-$(mktemp -d /tmp/jjj-bench.XXXXXX)}

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "installing nginx (Debian package)"
    apt-get install -y nginx >/dev/null || { apt-get update >/dev/null && apt-get install -y nginx >/dev/null; }
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# shellcheck source=deploy/bench/common.sh
. "$ROOT/deploy/bench/common.sh"
bench_build
(cd "$ROOT" && cargo build --release -q -p ledger --example journal_tps)
bench_pki_and_bodies

STANDIN_PORT=$(free_port); NGINX_PORT=$(free_port); GATEWAY_PORT=$(free_port); BARE_PORT=$(free_port)

start_standin "$STANDIN_PORT"

mkdir -p "$WORK/nginx/tmp"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    client_max_body_size 4m;
    client_body_buffer_size 1m;
    keepalive_requests 10000000;
    upstream standin {
        server 127.0.0.1:$STANDIN_PORT;
        keepalive 256;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $CERTS/server.pem;
        ssl_certificate_key $CERTS/server.key;
        ssl_client_certificate $CERTS/ca.pem;
        ssl_verify_client on;
        ssl_session_tickets off;
        ssl_session_cache off;
        location = /healthz { return 200 "ok\n"; }
        location / {
            proxy_pass https://standin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_certificate $CERTS/gateway.pem;
            proxy_ssl_certificate_key $CERTS/gateway.key;
            proxy_ssl_trusted_certificate $CERTS/ca.pem;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_session_reuse on;
        }
    }
}
EOF
"$NGINX" -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" &
NGINX_PID=$!
PIDS+=($NGINX_PID)

gateway_config "$GATEWAY_PORT" "$STANDIN_PORT" >"$WORK/gateway.toml"
mkdir -p "$WORK/data"
# The same gateway without a ledger: the journal's added latency is the difference.
gateway_config "$BARE_PORT" "$STANDIN_PORT" bare >"$WORK/gateway-bare.toml"
"$BIN" serve --config "$WORK/gateway-bare.toml" >"$WORK/gateway-bare.log" 2>"$WORK/gateway-bare.err" &
BARE_PID=$!
PIDS+=($BARE_PID)
wait_listening "$WORK/gateway-bare.log"
"$BIN" serve --config "$WORK/gateway.toml" >"$WORK/gateway.log" 2>"$WORK/gateway.err" &
GATEWAY_PID=$!
PIDS+=($GATEWAY_PID)
wait_listening "$WORK/gateway.log"

CURL=(curl -sS --cacert "$CERTS/ca.pem" --cert "$CERTS/$HOSPITAL.pem" --key "$CERTS/$HOSPITAL.key")
for _ in $(seq 1 100); do
    "${CURL[@]}" -f "https://127.0.0.1:$GATEWAY_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
for _ in $(seq 1 100); do
    "${CURL[@]}" -f "https://127.0.0.1:$NGINX_PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

GATEWAY_URL="https://127.0.0.1:$GATEWAY_PORT/v1/messages/tj"
BARE_URL="https://127.0.0.1:$BARE_PORT/v1/messages/tj"
NGINX_URL="https://127.0.0.1:$NGINX_PORT/v1/messages/tj"
# One request of each kind through both, to see that they answer successfully.
for n in 1101 2204 2301 2207; do
    for url in "$GATEWAY_URL" "$NGINX_URL"; do
        answer=$("${CURL[@]}" -H 'content-type: application/xml' --data-binary @"$WORK/bodies/$n.xml" "$url" | LC_ALL=C grep -ao '<JYZTM>[^<]*</JYZTM>' || true)
        if [ "$answer" != "<JYZTM>0</JYZTM>" ]; then
            echo "$n via $url did not succeed: '$answer'" >&2; exit 1
        fi
    done
done

A_BODIES=(--body "$WORK/bodies/1101.xml" --body "$WORK/bodies/2204.xml" --body "$WORK/bodies/2301.xml")
B_BODIES=(--body "$WORK/bodies/2207.xml" --unique-msgid)

# CPU time (user + system, clock ticks) of the processes PIDS... so far.
cpu_ticks() {
    local total=0 pid fields
    for pid in "$@"; do
        read -r -a fields <"/proc/$pid/stat" || continue
        total=$((total + fields[13] + fields[14]))
    done
    echo "$total"
}

# The processes that serve a run: the gateway's, or nginx's workers.
servers_of() {
    case $1 in
        gateway-*) echo "$GATEWAY_PID" ;;
        nginx-*) pgrep -P "$NGINX_PID" | tr '\n' ' ' ;;
        bare-*) echo "$BARE_PID" ;;
    esac
}

# load NAME URL ARGS...: one run, its JSON in $WORK/NAME.json, with the
# servers' CPU time per answered request added as `server_cpu_us_per_request`.
load() {
    local name=$1 url=$2; shift 2
    local perf_pid="" servers before
    servers=$(servers_of "$name")
    # shellcheck disable=SC2086
    before=$(cpu_ticks $servers)
    if [ "${PERF:-0}" = 1 ] && [[ $name == gateway-*-max ]]; then
        perf record -g -F 499 -p "$GATEWAY_PID" -o "$WORK/perf-$name.data" >/dev/null 2>&1 &
        perf_pid=$!
        sleep 0.5
    fi
    "$BIN" load --target "$url" --ca "$CERTS/ca.pem" --cert "$CERTS/$HOSPITAL.pem" \
        --key "$CERTS/$HOSPITAL.key" --threads "$LOAD_THREADS" --json "$@" >"$WORK/$name.json"
    if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; fi
    # shellcheck disable=SC2086
    local ticks=$(( $(cpu_ticks $servers) - before ))
    jq --argjson ticks "$ticks" --argjson hz "$(getconf CLK_TCK)" \
        '. + {server_cpu_us_per_request: (if .ok > 0 then $ticks / $hz * 1e6 / .ok else null end)}' \
        "$WORK/$name.json" >"$WORK/$name.json.tmp" && mv "$WORK/$name.json.tmp" "$WORK/$name.json"
    jq -r --arg n "$name" '"\($n): \(.throughput_rps|floor)/s ok, p50 \(.latency_ms.p50) p99 \(.latency_ms.p99) p99.9 \(.latency_ms.p999) max \(.latency_ms.max) ms, handshakes \(.handshakes_per_s|floor)/s, server CPU \(.server_cpu_us_per_request // 0 | floor) µs/request, errors \(.errors_total) \(.errors|with_entries(select(.value>0)))"' "$WORK/$name.json"
}

echo "warming up (2 s each, not counted)"
load warm-nginx "$NGINX_URL" "${A_BODIES[@]}" --connections "$CONNECTIONS" --duration 2 >/dev/null
load warm-gateway "$GATEWAY_URL" "${A_BODIES[@]}" --connections "$CONNECTIONS" --duration 2 >/dev/null
load warm-gateway-b "$GATEWAY_URL" "${B_BODIES[@]}" --connections "$CONNECTIONS" --duration 2 >/dev/null

echo "closed loop at maximum, $CONNECTIONS connections, $DURATION s each"
load nginx-a-max "$NGINX_URL" "${A_BODIES[@]}" --connections "$CONNECTIONS" --duration "$DURATION"
load gateway-a-max "$GATEWAY_URL" "${A_BODIES[@]}" --connections "$CONNECTIONS" --duration "$DURATION"
load nginx-b-max "$NGINX_URL" "${B_BODIES[@]}" --connections "$CONNECTIONS" --duration "$DURATION"
load gateway-b-max "$GATEWAY_URL" "${B_BODIES[@]}" --connections "$CONNECTIONS" --duration "$DURATION"

RATE_A=$(jq '.throughput_rps * 0.7 | floor' "$WORK/nginx-a-max.json")
RATE_B=$(jq '.throughput_rps * 0.7 | floor' "$WORK/nginx-b-max.json")
echo "open loop at 70% of nginx's maximum: (a) $RATE_A/s, (b) $RATE_B/s, up to $CONNECTIONS connections"
load nginx-a-70 "$NGINX_URL" "${A_BODIES[@]}" --rate "$RATE_A" --connections "$CONNECTIONS" --duration "$DURATION"
load gateway-a-70 "$GATEWAY_URL" "${A_BODIES[@]}" --rate "$RATE_A" --connections "$CONNECTIONS" --duration "$DURATION"
load nginx-b-70 "$NGINX_URL" "${B_BODIES[@]}" --rate "$RATE_B" --connections "$CONNECTIONS" --duration "$DURATION"
load gateway-b-70 "$GATEWAY_URL" "${B_BODIES[@]}" --rate "$RATE_B" --connections "$CONNECTIONS" --duration "$DURATION"

echo "full mTLS handshakes without resumption, $HS_CONNECTIONS at a time, $DURATION s each"
load nginx-hs "https://127.0.0.1:$NGINX_PORT/healthz" --method GET --handshakes --connections "$HS_CONNECTIONS" --duration "$DURATION"
load gateway-hs "https://127.0.0.1:$GATEWAY_PORT/healthz" --method GET --handshakes --connections "$HS_CONNECTIONS" --duration "$DURATION"

# The journal's added latency per settlement (issue 6): the same gateway at a
# low open-loop rate, far from saturation, without journal (a) and with it (b).
JOURNAL_RATE=${JOURNAL_RATE:-100}

# Two fsyncs, as the ledger's disk does them: a probe in the ledger's folder
# times pairs of (4 KiB write + fsync) — the two durable commits of a
# settlement, nothing else — at the same rate, for DURATION seconds. It runs
# alone, just before and just after the journalled run, not beside it: beside
# it, its fsyncs and the ledger's wait on each other in the file system's
# journal and both are slowed (measured 2026-11-26: the journalled p99 went from
# 4 ms alone to 23 ms beside the probe). The disk is shared and its fsync time
# moves by 30x over a day: the goal is checked against the mean of the two.
probe() {
    (cd "$WORK/data" && python3 - "$JOURNAL_RATE" "$DURATION" >"$WORK/$1.json" <<'EOF'
import json, os, sys, time
rate, duration = float(sys.argv[1]), float(sys.argv[2])
fd = os.open("fsync-probe", os.O_WRONLY | os.O_CREAT, 0o600)
pairs, singles = [], []
start = time.perf_counter()
n = 0
while time.perf_counter() - start < duration:
    due = start + n / rate
    now = time.perf_counter()
    if due > now:
        time.sleep(due - now)
    t0 = time.perf_counter()
    for k in range(2):
        os.pwrite(fd, os.urandom(4096), ((2 * n + k) % 16) * 4096)
        t = time.perf_counter(); os.fsync(fd); singles.append(time.perf_counter() - t)
    pairs.append(time.perf_counter() - t0)
    n += 1
os.close(fd); os.unlink("fsync-probe")
q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000
print(json.dumps({"fsync_p50_ms": q(singles, 0.5), "pair_p50_ms": q(pairs, 0.5), "pair_p99_ms": q(pairs, 0.99), "pairs": len(pairs)}))
EOF
    )
}

# The journal's added latency per settlement (issue 6): the same settlements
# at a low open-loop rate, far from saturation, through the same gateway
# without its ledger and with it, both at once — the same seconds, the same
# noise from this shared machine; the run without the ledger touches no disk.
echo "the journal's added latency: (b) open loop at $JOURNAL_RATE/s through the gateway without and with its ledger, at the same time; two fsyncs timed alone before and after"
probe fsync-before
load bare-b-low "$BARE_URL" "${B_BODIES[@]}" --rate "$JOURNAL_RATE" --connections "$CONNECTIONS" --duration "$DURATION" &
BARE_LOAD=$!
load gateway-b-low "$GATEWAY_URL" "${B_BODIES[@]}" --rate "$JOURNAL_RATE" --connections "$CONNECTIONS" --duration "$DURATION"
wait "$BARE_LOAD"
probe fsync-after
jq -s '{fsync_p50_ms: (map(.fsync_p50_ms) | add / 2), pair_p50_ms: (map(.pair_p50_ms) | add / 2),
        pair_p99_ms: (map(.pair_p99_ms) | add / 2), pairs: (map(.pairs) | add),
        before: .[0], after: .[1]}' "$WORK/fsync-before.json" "$WORK/fsync-after.json" >"$WORK/fsync.json"
FSYNC_MS=$(jq '.fsync_p50_ms' "$WORK/fsync.json")

echo "the ledger alone: $CONNECTIONS writers, $DURATION s"
mkdir -p "$WORK/ledger-alone"
"$ROOT/target/release/examples/journal_tps" --url "sqlite://$WORK/ledger-alone/ledger.db" \
    --writers "$CONNECTIONS" --seconds "$DURATION" \
    --reply-bytes "$(wc -c <"$ROOT/contracts/fixtures/tj/2207-answer.xml")" >"$WORK/ledger-alone.txt"
grep RESULT "$WORK/ledger-alone.txt"

python3 - "$WORK" "$FSYNC_MS" <<'EOF'
import json, sys
work, fsync = sys.argv[1], float(sys.argv[2])
r = lambda n: json.load(open(f"{work}/{n}.json"))
rows = []
def line(what, g, n, goal, ok):
    rows.append((what, g, n, goal, ok))
for s, label, tgoal, extra in (("a", "(a) 1101/2204/2301", 1.0, 1.0), ("b", "(b) 2207 journalled", 0.5, 2 * fsync + 1.0)):
    g, n = r(f"gateway-{s}-max"), r(f"nginx-{s}-max")
    ratio = g["throughput_rps"] / n["throughput_rps"]
    line(f"{label} throughput, closed loop", f"{g['throughput_rps']:.0f}/s", f"{n['throughput_rps']:.0f}/s",
         f"ratio {ratio:.2f}x (goal >= {tgoal}x)", ratio >= tgoal)
    line(f"{label} p99, closed loop", f"{g['latency_ms']['p99']:.2f} ms", f"{n['latency_ms']['p99']:.2f} ms",
         f"ratio {g['latency_ms']['p99'] / n['latency_ms']['p99']:.2f}x", None)
    gc, nc = g.get("server_cpu_us_per_request"), n.get("server_cpu_us_per_request")
    if gc and nc:
        line(f"{label} server CPU per request, closed loop", f"{gc:.0f} µs", f"{nc:.0f} µs (workers)",
             f"ratio {gc / nc:.2f}x", None)
    g, n = r(f"gateway-{s}-70"), r(f"nginx-{s}-70")
    limit = n["latency_ms"]["p99"] + extra
    line(f"{label} p99 at {n['rate']}/s (70% of nginx max)", f"{g['latency_ms']['p99']:.2f} ms", f"{n['latency_ms']['p99']:.2f} ms",
         f"ratio {g['latency_ms']['p99'] / n['latency_ms']['p99']:.2f}x; goal <= {limit:.2f} ms", g["latency_ms"]["p99"] <= limit)
alone = dict(kv.split("=") for kv in open(f"{work}/ledger-alone.txt").read().split("RESULT", 1)[1].split())
n = r("nginx-b-max")
ceiling = float(alone["settlements_per_s"]) / n["throughput_rps"]
line("(b) ceiling: the ledger alone (journal_tps), settlements/s", f"{float(alone['settlements_per_s']):.0f}/s", f"{n['throughput_rps']:.0f}/s",
     f"ratio {ceiling:.2f}x: the most (b) can reach here at this concurrency", None)
a, b = r("bare-b-low"), r("gateway-b-low")
probe = json.load(open(f"{work}/fsync.json"))
for q, pair in (("p50", probe["pair_p50_ms"]), ("p99", probe["pair_p99_ms"])):
    added = b["latency_ms"][q] - a["latency_ms"][q]
    line(f"journal's added latency: {q} of (b) with ledger - without, at {b['rate']}/s", f"{added:.2f} ms",
         f"without {a['latency_ms'][q]:.2f} ms, with {b['latency_ms'][q]:.2f} ms",
         f"goal <= two fsyncs ({q} {pair:.2f} ms, mean of before and after) + 1 ms = {pair + 1.0:.2f} ms", added <= pair + 1.0)
g, n = r("gateway-hs"), r("nginx-hs")
ratio = g["handshakes_per_s"] / n["handshakes_per_s"]
line("full mTLS handshakes/s", f"{g['handshakes_per_s']:.0f}/s", f"{n['handshakes_per_s']:.0f}/s", f"ratio {ratio:.2f}x (goal >= 1.0x)", ratio >= 1.0)
errors = {name: r(name)["errors_total"] for name in ("gateway-a-max", "nginx-a-max", "gateway-b-max", "nginx-b-max", "gateway-a-70", "nginx-a-70", "gateway-b-70", "nginx-b-70", "bare-b-low", "gateway-b-low", "gateway-hs", "nginx-hs")}
print()
print(f"fsync on the ledger's disk just before and after the journalled run (mean): median {fsync:.3f} ms; two in a row p50 {probe['pair_p50_ms']:.3f} ms, p99 {probe['pair_p99_ms']:.3f} ms"
      f" (before: p50 {probe['before']['pair_p50_ms']:.3f}, p99 {probe['before']['pair_p99_ms']:.3f}; after: p50 {probe['after']['pair_p50_ms']:.3f}, p99 {probe['after']['pair_p99_ms']:.3f})")
print(f"| measure | gateway | nginx | gateway/nginx | goal met |")
print(f"|---|---|---|---|---|")
for what, g, n, goal, ok in rows:
    print(f"| {what} | {g} | {n} | {goal} | {'' if ok is None else ('yes' if ok else 'no')} |")
print(f"errors per run: {errors}")
json.dump({"fsync_ms": fsync, "fsync_pairs": probe, "rows": rows, "errors": errors}, open(f"{work}/summary.json", "w"), indent=1)
EOF
echo "every run's JSON: $WORK"
