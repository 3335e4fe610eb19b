# Shared by the benchmark scripts of the gateway's request path (sourced, not
# run): the release build, a development PKI and the Tianjin hospital's
# payloads in $WORK, the upstream stand-in, and the gateway's configuration.
# Needs ROOT and WORK set.

# The hospital whose messages are sent: a Tianjin hospital, speaking tj XML.
HOSPITAL=H12010100789
mkdir -p "$WORK"
echo "scratch folder: $WORK"

PIDS=()
cleanup() {
    if [ "${KEEP:-0}" != 1 ]; then
        for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
        wait 2>/dev/null || true
    fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until FILE has a line "listening on https://…".
wait_listening() {
    for _ in $(seq 1 300); do
        grep -q "listening on" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$1: did not start" >&2; cat "$1" >&2; exit 1
}

# Builds the gateway and the upstream stand-in (release); sets BIN and STANDIN.
bench_build() {
    echo "building release"
    (cd "$ROOT" && cargo build --release -q -p gateway --bin jjj-gateway --example upstream_standin)
    BIN=$ROOT/target/release/jjj-gateway
    STANDIN=$ROOT/target/release/examples/upstream_standin
}

# A development PKI in $WORK/certs (sets CERTS), and the tj fixtures as the
# Tianjin hospital sends them in $WORK/bodies: its code and its region
# (LC_ALL=C: the files are GB18030; every pattern starts with '<', which is
# never the second byte of a GB18030 character).
bench_pki_and_bodies() {
    CERTS=$WORK/certs
    rm -rf "$CERTS" "$WORK/data"
    "$BIN" certs init --out "$CERTS" --client "$HOSPITAL" >/dev/null
    mkdir -p "$WORK/bodies"
    local n
    for n in 1101 2204 2301 2207; do
        LC_ALL=C sed -e "s#<DDJGBH>H11010500123</DDJGBH>#<DDJGBH>$HOSPITAL</DDJGBH>#" \
                     -e "s#<JYDQH>110000</JYDQH>#<JYDQH>120000</JYDQH>#" \
                     -e "s#<BWID>H11010500123#<BWID>$HOSPITAL#" \
                     "$ROOT/contracts/fixtures/tj/$n-request.xml" >"$WORK/bodies/$n.xml"
    done
}

# Starts the upstream stand-in on PORT (mTLS, the fixtures' canned answers).
start_standin() {
    "$STANDIN" --listen "127.0.0.1:$1" --ca "$CERTS/ca.pem" --cert "$CERTS/server.pem" \
        --key "$CERTS/server.key" --fixtures "$ROOT/contracts/fixtures" >"$WORK/standin.log" 2>&1 &
    PIDS+=($!)
    wait_listening "$WORK/standin.log"
}

# The gateway's configuration on stdout: listening on PORT, the SQLite ledger
# on (synchronous=FULL) unless the third argument is "bare", every region
# routed in the national dialect to the stand-in on STANDIN_PORT, the Tianjin
# hospital speaking tj. Paths are relative to $WORK.
gateway_config() {
    local port=$1 standin_port=$2 mode=${3:-ledger}
    local up="https://127.0.0.1:$standin_port/fsi/api/rsfComIfsService/callService"
    cat <<CONF
[server]
listen = "127.0.0.1:$port"
ca = "certs/ca.pem"
cert = "certs/server.pem"
key = "certs/server.key"
concurrency_max = 4096

[limits]
institution_per_second = 1000000
institution_burst = 1000000
region_per_second = 1000000
region_burst = 1000000
CONF
    if [ "$mode" != bare ]; then
        printf '\n[ledger]\nurl = "sqlite://data/ledger.db"\n'
    fi
    local r
    for r in "110000 北京" "120000 天津" "130000 河北"; do
        set -- $r
        cat <<CONF

[[regions]]
admdvs = "$1"
name = "$2"
dialect = "national"
upstreams = ["$up"]
ca = "certs/ca.pem"
client_cert = "certs/gateway.pem"
client_key = "certs/gateway.key"
CONF
    done
    cat <<CONF

[[institutions]]
code = "$HOSPITAL"
name = "天津市示例医院"
role = "hospital"
admdvs = "120101"
level = 3
dialect = "tj"
CONF
}
