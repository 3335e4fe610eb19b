#!/usr/bin/env bash
# Builds deploy/Containerfile with podman and proves the image works.
#
# Run by hand, as root, from anywhere in the repository:
#     bash deploy/container/check.sh
# It is NOT part of CI: with a release build of the workspace inside a
# container it takes about 15 minutes from no image on two cores, about 5 with
# the images and podman's build cache present (deploy/OPERATIONS.md,
# "Container image"). Needs Debian bookworm's podman, buildah, runc and debootstrap
# (apt-get install -y podman buildah runc debootstrap), curl, and a Rust
# toolchain installed by rustup on the host.
#
# What it does, each check printing PASS or FAIL (exit status 1 if any failed):
#  1. The two base images, made locally when missing (or always with
#     REBUILD_BASE=1), because Docker Hub may not be reachable:
#     - docker.io/library/debian:bookworm-slim from `debootstrap --variant=minbase`
#       (apt sources at deb.debian.org, documentation excluded as in -slim);
#     - docker.io/library/rust:1-bookworm from that image, build-essential,
#       pkg-config, git, curl, the host's own rustup toolchain and the host's
#       local CA certificates (deploy/container/rust-bookworm.Containerfile).
#  2. That apt and crates.io answer from inside a container (podman's default
#     network); if crates.io does not, the build runs with --network host.
#  3. `podman build -f deploy/Containerfile -t jjj-gateway .` (timed, niced).
#  4. A development PKI and configuration from the image's own binary
#     (`jjj-gateway demo --data-dir ... --visits 6`, run on the host), the gateway's
#     configuration changed to listen on 0.0.0.0:8443 and to keep its SQLite
#     ledger on the volume.
#  5. A pod publishing 127.0.0.1:$PORT -> 8443 with two containers of the
#     image: the sandbox platforms (`sandbox --config`, a test fixture) and the
#     gateway, run as the image says (`serve`, user 10001), configuration and
#     certificates mounted read-only at /etc/jjj-gateway, a named volume at
#     /var/lib/jjj-gateway. From the host, with client certificates: /healthz
#     and /readyz answer 200, one settlement (2207) goes through to the
#     sandbox; the process runs as uid 10001; the ledger file is on the
#     volume; `podman stop` ends it with SIGTERM, exit status 0; the ledger
#     export (read from the volume afterwards) lists the settlement.
# It removes its pod, containers and volume on exit and leaves the images.
#
# Settings (environment): WORK (scratch folder, default /tmp/ctr-check),
# IMAGE (default jjj-gateway), PORT (host port, default 18443), REBUILD_BASE=1,
# SKIP_BUILD=1 (use the existing $IMAGE), TOOLCHAIN (default: rustup's default
# toolchain), BUILD_NETWORK (e.g. host; default: podman's default network).
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=${WORK:-/tmp/ctr-check}
IMAGE=${IMAGE:-jjj-gateway}
PORT=${PORT:-18443}
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
RUST_IMAGE=docker.io/library/rust:1-bookworm
MIRROR=http://deb.debian.org/debian
POD=jjj-check
VOLUME=jjj-check-data
RUSTUP_DIR=${RUSTUP_HOME:-$HOME/.rustup}
CARGO_BIN=${CARGO_HOME:-$HOME/.cargo}/bin

FAILED=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@" >/dev/null; then pass "$what"; else fail "$what"; fi
}
die() {
    fail "$*"
    echo "stopped after a failure that later checks depend on"
    exit 1
}
step() { echo; echo "== $*"; }

cleanup() { # -v: also the anonymous volumes of the image's VOLUME
    podman rm -f -v -t 5 jjj-check-gateway jjj-check-sandbox jjj-check-extract jjj-check-export >/dev/null 2>&1 || true
    podman pod rm -f -t 5 "$POD" >/dev/null 2>&1 || true
    podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "run as root (rootful podman, debootstrap)"; exit 2; }
for tool in podman debootstrap curl tar; do
    command -v "$tool" >/dev/null || { echo "missing: $tool"; exit 2; }
done
mkdir -p "$WORK"
cleanup

# Some machines (a VM whose cgroup v2 hierarchy holds a controller beside the
# v1 ones, which crun refuses; hard limits below the 1048576 open files podman
# asks for) cannot run podman's defaults. Then a containers.conf of our own
# (CONTAINERS_CONF: used instead of the system's) asks for runc and the
# machine's own limits. Decided once the debian image exists (step 1).
podman_works() { podman run --rm "$DEBIAN_IMAGE" true >/dev/null 2>&1; }
adapt_podman() {
    podman_works && return 0
    command -v runc >/dev/null || { echo "podman cannot start a container and runc is missing"; return 1; }
    local nofile nproc pid_max
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    pid_max=$(cat /proc/sys/kernel/pid_max)
    [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ] && nproc=$pid_max
    cat >"$WORK/containers.conf" <<EOF
# Written by deploy/container/check.sh: podman's defaults do not run here.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF=$WORK/containers.conf
    echo "podman's defaults cannot start a container here; using $CONTAINERS_CONF (runc, nofile=$nofile, nproc=$nproc)"
    podman_works
}

# ---- 1. base images ---------------------------------------------------------
step "base image $DEBIAN_IMAGE"
if [ "${REBUILD_BASE:-0}" != 1 ] && podman image exists "$DEBIAN_IMAGE"; then
    echo "kept the existing one (REBUILD_BASE=1 makes it again)"
else
    rootfs=$WORK/rootfs
    rm -rf "$rootfs"
    nice -n 19 debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || die "debootstrap (log: $WORK/debootstrap.log)"
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # As the official -slim images: no documentation, manual pages or translations.
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
    find "$rootfs/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    rm -rf "$rootfs"/usr/share/{man,info,groff,lintian}/* "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log \
        "$rootfs"/var/log/apt/* "$rootfs"/tmp/*
    : >"$rootfs/etc/resolv.conf"
    echo localhost >"$rootfs/etc/hostname"
    tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
        --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$DEBIAN_IMAGE" >/dev/null || die "podman import of the debootstrap tree"
    rm -rf "$rootfs"
fi
adapt_podman || die "podman runs a container of $DEBIAN_IMAGE"
check "apt inside $DEBIAN_IMAGE reaches deb.debian.org (apt-get update)" \
    podman run --rm "$DEBIAN_IMAGE" sh -c 'apt-get update >/dev/null 2>&1'

step "base image $RUST_IMAGE"
if [ "${REBUILD_BASE:-0}" != 1 ] && podman image exists "$RUST_IMAGE"; then
    echo "kept the existing one (REBUILD_BASE=1 makes it again)"
else
    TOOLCHAIN=${TOOLCHAIN:-$(sed -n 's/^default_toolchain = "\(.*\)"/\1/p' "$RUSTUP_DIR/settings.toml")}
    [ -d "$RUSTUP_DIR/toolchains/$TOOLCHAIN" ] || die "toolchain $RUSTUP_DIR/toolchains/$TOOLCHAIN"
    ctx=$WORK/rust-context
    rm -rf "$ctx"
    mkdir -p "$ctx/rustup/toolchains" "$ctx/cargo/bin"
    tar -C "$RUSTUP_DIR/toolchains" --exclude="$TOOLCHAIN/share/doc" -c "$TOOLCHAIN" \
        | tar -C "$ctx/rustup/toolchains" -x
    printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$TOOLCHAIN" >"$ctx/rustup/settings.toml"
    cp -a "$CARGO_BIN"/rustup "$ctx/cargo/bin/"
    for proxy in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver rust-gdb rust-lldb; do
        ln -s rustup "$ctx/cargo/bin/$proxy"
    done
    mkdir -p "$ctx/local-ca"
    cp /usr/local/share/ca-certificates/*.crt "$ctx/local-ca/" 2>/dev/null || true
    rust_version=$("$RUSTUP_DIR/toolchains/$TOOLCHAIN/bin/rustc" --version | cut -d' ' -f2)
    nice -n 19 podman build --build-arg RUST_VERSION="$rust_version" \
        -f "$REPO/deploy/container/rust-bookworm.Containerfile" -t "$RUST_IMAGE" "$ctx" \
        >"$WORK/rust-image.log" 2>&1 || die "build of $RUST_IMAGE (log: $WORK/rust-image.log)"
    rm -rf "$ctx"
fi
check "$RUST_IMAGE runs cargo and rustc ($(podman run --rm "$RUST_IMAGE" rustc --version 2>&1))" \
    podman run --rm "$RUST_IMAGE" cargo --version
build_network=()
crates_io() { podman run --rm "$@" "$RUST_IMAGE" curl -sS -o /dev/null --max-time 30 -f https://index.crates.io/config.json; }
if [ -n "${BUILD_NETWORK:-}" ]; then
    build_network=(--network "$BUILD_NETWORK")
    check "crates.io answers from inside a container (--network $BUILD_NETWORK)" crates_io "${build_network[@]}"
elif crates_io; then
    pass "crates.io answers from inside a container (podman's default network)"
elif crates_io --network host; then
    pass "crates.io answers from inside a container with --network host (not on the default network): building so"
    build_network=(--network host)
else
    die "crates.io answers from inside a container of $RUST_IMAGE"
fi

# ---- 2. the image -----------------------------------------------------------
step "podman build -f deploy/Containerfile -t $IMAGE ."
if [ "${SKIP_BUILD:-0}" = 1 ] && podman image exists "$IMAGE"; then
    echo "SKIP_BUILD=1: using the existing $IMAGE"
else
    started=$SECONDS
    (cd "$REPO" && nice -n 19 podman build "${build_network[@]}" -f deploy/Containerfile -t "$IMAGE" .) \
        >"$WORK/build.log" 2>&1 || die "podman build (log: $WORK/build.log)"
    pass "podman build -f deploy/Containerfile -t $IMAGE . in $((SECONDS - started)) s (log: $WORK/build.log)"
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $((size / 1000000)) MB ($size bytes), $(podman image inspect --format '{{.Id}}' "$IMAGE" | cut -c1-12)"
check "the image runs as user 10001:10001" \
    test "$(podman image inspect --format '{{.Config.User}}' "$IMAGE")" = 10001:10001
check "the image's binary answers --help" \
    podman run --rm "$IMAGE" --help

# ---- 3. configuration and PKI, from the image's own binary ------------------
step "development PKI and configuration"
bin=$WORK/bin/jjj-gateway
mkdir -p "$WORK/bin"
podman create --name jjj-check-extract "$IMAGE" >/dev/null \
    && podman cp jjj-check-extract:/usr/local/bin/jjj-gateway "$bin" \
    && podman rm -v jjj-check-extract >/dev/null || die "copy the binary out of the image"
demo=$WORK/demo
etc=$WORK/etc
rm -rf "$demo" "$etc"
"$bin" demo --data-dir "$demo" --visits 6 >"$WORK/demo.log" 2>&1 \
    || die "jjj-gateway demo --data-dir $demo (log: $WORK/demo.log)"
mkdir -p "$etc"
cp -a "$demo/certs" "$etc/certs"
sed -e 's|^listen = "127\.0\.0\.1:[0-9]*"|listen = "0.0.0.0:8443"|' \
    -e 's|^url = "sqlite://.*"|url = "sqlite:///var/lib/jjj-gateway/ledger.db"|' \
    "$demo/gateway.toml" >"$etc/gateway.toml"
grep -q '^listen = "0.0.0.0:8443"' "$etc/gateway.toml" \
    && grep -q '^url = "sqlite:///var/lib/jjj-gateway/ledger.db"' "$etc/gateway.toml" \
    || die "gateway.toml for the container (listen, [ledger] url)"
# The container's user must read its files (keys are 0600): as an operator would.
chown -R 10001:10001 "$etc" "$demo"
pass "PKI and configuration made by the image's jjj-gateway (demo ran $(grep -c . "$WORK/demo.log") lines; $etc)"

# ---- 4. run -----------------------------------------------------------------
step "pod $POD: sandbox platforms and the gateway, 127.0.0.1:$PORT -> 8443"
podman volume create "$VOLUME" >/dev/null
podman pod create --name "$POD" --publish "127.0.0.1:$PORT:8443" >/dev/null || die "podman pod create"
podman run -d --pod "$POD" --name jjj-check-sandbox -v "$demo:/demo" \
    "$IMAGE" sandbox --config /demo/sandbox.toml >/dev/null || die "start the sandbox container"
podman run -d --pod "$POD" --name jjj-check-gateway \
    -v "$etc/gateway.toml:/etc/jjj-gateway/gateway.toml:ro" \
    -v "$etc/certs:/etc/jjj-gateway/certs:ro" \
    -v "$VOLUME:/var/lib/jjj-gateway" \
    "$IMAGE" >/dev/null || die "start the gateway container"

certs=$etc/certs
client=H11010500123
get() { # get PATH -> HTTP status
    curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$certs/ca.pem" \
        --cert "$certs/$client.pem" --key "$certs/$client.key" "https://127.0.0.1:$PORT$1"
}
wait_for() { # wait_for PATH SECONDS
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(get "$1")" = 200 ] && return 0
        sleep 1
    done
    return 1
}
check "GET /healthz answers 200 through the published port (client certificate $client)" wait_for /healthz 60
check "GET /readyz answers 200 (the platforms are reachable from the container)" wait_for /readyz 60
check "a request without a client certificate is refused" \
    sh -c "! curl -s -o /dev/null --max-time 5 --cacert '$certs/ca.pem' https://127.0.0.1:$PORT/healthz"

uid=$(podman exec jjj-check-gateway id -u 2>/dev/null)
pid1=$(podman exec jjj-check-gateway sh -c 'tr "\0" " " </proc/1/cmdline; grep ^Uid: /proc/1/status' 2>/dev/null)
echo "process 1: $pid1"
check "the gateway runs as uid 10001 (podman exec id -u: $uid)" \
    sh -c "[ '$uid' = 10001 ] && echo '$pid1' | grep -q '^/usr/local/bin/jjj-gateway serve' && echo '$pid1' | grep -Eq 'Uid:\s+10001\s'"

answer=$WORK/2207-answer.json
status=$(curl -s -o "$answer" -w '%{http_code}' --max-time 30 --cacert "$certs/ca.pem" \
    --cert "$certs/$client.pem" --key "$certs/$client.key" -H 'content-type: application/json' \
    --data-binary @"$REPO/contracts/fixtures/national/2207-request.json" \
    "https://127.0.0.1:$PORT/fsi/api/rsfComIfsService/callService")
setl_id=$(grep -o '"setl_id": *"[^"]*"' "$answer" | head -1 | sed 's/.*"\([^"]*\)"$/\1/')
check "a settlement (2207, contracts/fixtures) goes through to the sandbox: HTTP $status, setl_id ${setl_id:-none}" \
    sh -c "[ '$status' = 200 ] && grep -Eq '\"infcode\": *0[,}]' '$answer' && [ -n '$setl_id' ]"

ledger=$(podman volume inspect --format '{{.Mountpoint}}' "$VOLUME")/ledger.db
check "the ledger is on the volume: $(ls -ln "$ledger" 2>/dev/null | awk '{print $3 ":" $4, $5 " bytes"}') $ledger" \
    sh -c "[ -s '$ledger' ] && [ \"\$(stat -c %u '$ledger')\" = 10001 ]"

step "podman stop"
started=$SECONDS
podman stop -t 30 jjj-check-gateway >/dev/null
took=$((SECONDS - started))
code=$(podman inspect --format '{{.State.ExitCode}}' jjj-check-gateway)
podman logs jjj-check-gateway >"$WORK/gateway.log" 2>&1
echo "last log lines:"
tail -n 3 "$WORK/gateway.log" | cut -c1-300
check "podman stop ends the gateway with SIGTERM: exit status $code after ${took} s (not killed at the 30 s timeout)" \
    sh -c "[ '$code' = 0 ] && [ $took -lt 30 ]"
check "the gateway logged its SIGTERM shutdown" grep -q 'shutting down: no new connections' "$WORK/gateway.log"
check "no error in the gateway's log" sh -c "! grep -q '\"level\":\"ERROR\"' '$WORK/gateway.log'"

day=$(date -u -d '+8 hours' +%F) # the clearing day, Shanghai time
podman run --rm --name jjj-check-export \
    -v "$etc/gateway.toml:/etc/jjj-gateway/gateway.toml:ro" \
    -v "$etc/certs:/etc/jjj-gateway/certs:ro" \
    -v "$VOLUME:/var/lib/jjj-gateway" \
    "$IMAGE" ledger export --config /etc/jjj-gateway/gateway.toml --date "$day" >"$WORK/export.csv" 2>"$WORK/export.err"
check "the ledger on the volume, read again after the stop (ledger export --date $day), lists setl_id ${setl_id:-none}" \
    sh -c "[ -n '$setl_id' ] && grep -q '$setl_id' '$WORK/export.csv'"

echo
if [ "$FAILED" = 0 ]; then
    echo "all checks passed"
else
    echo "$FAILED check(s) failed"
    exit 1
fi
