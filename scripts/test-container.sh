#!/usr/bin/env bash
# Container test (`make test-container`): build the Dockerfile with podman, start the image,
# and drive a real meeting through the container's ports, then check that the meeting and the
# attendee survive a new container on the same data volume.
#
# No Docker engine and no registry here (../shared/spec/containers.md), so the script:
#   1. installs podman, runc and debootstrap when missing, and gives podman the settings this
#      sandbox needs (no default ulimits, cgroupfs; --runtime runc --network=host everywhere);
#   2. makes the Dockerfile's base image from Debian itself: a debootstrap bookworm minbase,
#      tagged under the FROM name (BASE_IMAGE, default python:3.11-slim-bookworm), which
#      has no python3, so the Dockerfile's "install Debian's python3 when missing" path runs.
#      The debootstrap tarball is cached in $CACHE_DIR and the base image stays in podman's
#      store between runs; an existing image of that name (a real one) is used as it is;
#   3. builds the image (--pull=never), runs it on non-default ports with a named volume,
#      waits for /health, runs the image's HEALTHCHECK, checks the user is not root;
#   4. runs tests/container/drive_meeting.py: boto3 control plane, WebSocket signaling with
#      ClientSignalingSession, UDP media with bench.litepeer.LitePeer, audio must arrive;
#   5. removes that container, starts a new one on the same volume, and checks GetMeeting and
#      GetAttendee answer exactly as before and the attendee can join again with audio;
#   6. removes the containers, the volume and the built image (the base image is kept).
#
# Environment: PYTHON (default .venv/bin/python, needs boto3: `make install-test`),
# CARILLON_TEST_HTTP_PORT (18080), CARILLON_TEST_UDP_PORT (13478), CARILLON_TEST_CACHE
# (/var/cache/carillon-container-test), CARILLON_TEST_KEEP_LAYERS=1 to keep podman's build
# cache between runs (faster rebuilds; leaves intermediate images behind).
set -euo pipefail
cd "$(dirname "$0")/.."

T0=$(date +%s)
PYTHON=${PYTHON:-.venv/bin/python}
HTTP_PORT=${CARILLON_TEST_HTTP_PORT:-18080}
UDP_PORT=${CARILLON_TEST_UDP_PORT:-13478}
CACHE_DIR=${CARILLON_TEST_CACHE:-/var/cache/carillon-container-test}
KEEP_LAYERS=${CARILLON_TEST_KEEP_LAYERS:-0}
RUN_ID="$$-$(date +%s)"
IMAGE="localhost/carillon-test:$RUN_ID"
CONTAINER="carillon-test-$RUN_ID"
VOLUME="carillon-test-data-$RUN_ID"
WORK=$(mktemp -d /tmp/carillon-container-test.XXXXXX)
RUNTIME=(--runtime runc)
ACCESS_KEY_ID="AKIDCONTAINERTEST001"
SECRET_ACCESS_KEY=$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')
BUILD_SECONDS=""

# podman 4.3 reports, on every start and removal, that it cannot reach systemd to time the
# HEALTHCHECK (there is no systemd here); those lines are dropped, everything else is kept.
podman() { command podman "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

log() { printf '[test-container +%ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
fail() { log "FAILED: $*"; exit 1; }

cleanup() {
    local status=$?
    set +e
    if [ "$status" != 0 ] && podman container exists "$CONTAINER" 2>/dev/null; then
        log "container log (last 80 lines):"
        podman logs --tail 80 "$CONTAINER" 2>&1 | sed 's/^/    /'
    fi
    podman rm -f -t 5 "$CONTAINER" >/dev/null 2>&1
    podman volume rm -f "$VOLUME" >/dev/null 2>&1
    podman rmi -f "$IMAGE" >/dev/null 2>&1
    rm -rf "$WORK"
    if [ "$status" = 0 ]; then
        log "container test passed: build ${BUILD_SECONDS}s, total $(($(date +%s) - T0))s"
    else
        log "container test FAILED (exit $status) after $(($(date +%s) - T0))s"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. tools and podman settings --------------------------------------------------------

[ "$(id -u)" = 0 ] || fail "run as root (podman here runs rootful with runc)"
[ -x "$PYTHON" ] || fail "$PYTHON not found: run 'make install-test' first"
missing=()
for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi

# Without default_ulimits = [] runc fails on setrlimit (no CAP_SYS_RESOURCE in this sandbox);
# without cgroupfs podman refuses the hybrid cgroup layout. An existing containers.conf that
# lacks them is left alone and a private copy is passed through CONTAINERS_CONF instead.
CONF_BODY='[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"'
SYSTEM_CONF=/etc/containers/containers.conf
if [ ! -e "$SYSTEM_CONF" ]; then
    mkdir -p /etc/containers
    printf '%s\n' "$CONF_BODY" >"$SYSTEM_CONF"
    log "wrote $SYSTEM_CONF"
elif ! grep -q '^default_ulimits *= *\[\]' "$SYSTEM_CONF" \
    || ! grep -q '^cgroup_manager *= *"cgroupfs"' "$SYSTEM_CONF"; then
    printf '%s\n' "$CONF_BODY" >"$WORK/containers.conf"
    export CONTAINERS_CONF="$WORK/containers.conf"
    log "$SYSTEM_CONF lacks the sandbox settings; using $CONTAINERS_CONF"
fi

# Host networking: the test's ports must be free on this machine.
if ! "$PYTHON" - "$HTTP_PORT" "$UDP_PORT" <<'EOF'
import socket
import sys

for kind, port in ((socket.SOCK_STREAM, sys.argv[1]), (socket.SOCK_DGRAM, sys.argv[2])):
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:  # a connection in TIME_WAIT is no listener
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", int(port)))
EOF
then
    podman ps -a --filter name=carillon-test- --format '{{.Names}} {{.Status}}' >&2
    fail "port $HTTP_PORT/tcp or $UDP_PORT/udp is in use (set CARILLON_TEST_HTTP_PORT/UDP_PORT)"
fi

# --- 2. the base image -------------------------------------------------------------------

# The FROM name as podman stores it: python:3.11-slim-bookworm -> docker.io/library/...
BASE_ARG=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile | head -n 1)
[ -n "$BASE_ARG" ] || fail "Dockerfile has no 'ARG BASE_IMAGE=' line"
case "$BASE_ARG" in
    */*/*) BASE_IMAGE=$BASE_ARG ;;
    */*) BASE_IMAGE="docker.io/$BASE_ARG" ;;
    *) BASE_IMAGE="docker.io/library/$BASE_ARG" ;;
esac

# The Debian mirror apt on this machine uses (deb822 .sources or one-line .list entries).
debian_mirror() {
    python3 - <<'EOF'
import glob
import re

entries = []  # (uri, suites)
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*"))]:
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in re.split(r"\n\s*\n", text):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.split()
            if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"])[0] != "no":
                for uri in fields.get("uris", []):
                    entries.append((uri, fields.get("suites", [])))
    elif path.endswith(".list"):
        for line in text.splitlines():
            line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(line) >= 3 and line[0] == "deb":
                entries.append((line[1], [line[2]]))
for wanted in ("bookworm", None):
    for uri, suites in entries:
        if "security" in uri:
            continue
        if any(s == wanted or (wanted is None and "-" not in s) for s in suites):
            print(uri.rstrip("/"))
            raise SystemExit(0)
print("http://deb.debian.org/debian")
EOF
}

# Extra CA certificates this machine trusts (a TLS-inspecting egress proxy, for example) go
# into the base image, so that pip and npm inside the build reach their registries as the
# machine's own clients do. A label records which ones, so a change rebuilds the base.
shopt -s nullglob
EXTRA_CAS=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob
if [ ${#EXTRA_CAS[@]} -gt 0 ]; then
    CA_HASH=$(cat "${EXTRA_CAS[@]}" | sha256sum | cut -c1-16)
else
    CA_HASH=none
fi

base_ok() {
    podman image exists "$BASE_IMAGE" || return 1
    local label
    label=$(podman image inspect --format '{{ index .Labels "carillon.test.base-ca" }}' \
        "$BASE_IMAGE" 2>/dev/null || true)
    # An image we did not make (a real python image) has no label: use it as it is.
    [ -z "$label" ] || [ "$label" = "<no value>" ] || [ "$label" = "$CA_HASH" ]
}

if base_ok; then
    log "base image $BASE_IMAGE present"
else
    ARCH=$(dpkg --print-architecture)
    TARBALL="$CACHE_DIR/debian-bookworm-minbase-$ARCH.tar"
    mkdir -p "$CACHE_DIR"
    if [ ! -s "$TARBALL" ]; then
        MIRROR=$(debian_mirror)
        log "debootstrap bookworm minbase from $MIRROR"
        ROOTFS="$WORK/rootfs"
        debootstrap --variant=minbase --include=ca-certificates bookworm "$ROOTFS" "$MIRROR" \
            >"$WORK/debootstrap.log" 2>&1 || {
            tail -n 30 "$WORK/debootstrap.log"
            fail "debootstrap"
        }
        rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
        tar -C "$ROOTFS" -cf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
        rm -rf "$ROOTFS"
    fi
    log "importing $TARBALL"
    podman import -q --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' \
        "$TARBALL" localhost/carillon-test-debian:bookworm >/dev/null
    mkdir -p "$WORK/base/cas"
    for ca in "${EXTRA_CAS[@]}"; do cp "$ca" "$WORK/base/cas/"; done
    cat >"$WORK/base/Containerfile" <<EOF
FROM localhost/carillon-test-debian:bookworm
COPY cas/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null 2>&1
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \\
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
LABEL carillon.test.base-ca=$CA_HASH
EOF
    podman build "${RUNTIME[@]}" --network=host --pull=never --layers=false -q \
        -t "$BASE_IMAGE" "$WORK/base" >/dev/null
    podman rmi localhost/carillon-test-debian:bookworm >/dev/null
    log "base image $BASE_IMAGE built from debootstrap (tarball cached in $CACHE_DIR)"
fi

# --- 3. build and start ------------------------------------------------------------------

LAYERS=(--layers=false)
[ "$KEEP_LAYERS" = 1 ] && LAYERS=(--layers=true)
log "podman build (log in $WORK/build.log)"
B0=$(date +%s)
if ! timeout 2400 podman build "${RUNTIME[@]}" --network=host --pull=never --format docker \
    --jobs 2 "${LAYERS[@]}" -t "$IMAGE" -f Dockerfile . >"$WORK/build.log" 2>&1; then
    tail -n 60 "$WORK/build.log"
    mkdir -p "$CACHE_DIR" && cp "$WORK/build.log" "$CACHE_DIR/last-failed-build.log"
    fail "podman build (whole log: $CACHE_DIR/last-failed-build.log)"
fi
BUILD_SECONDS=$(($(date +%s) - B0))
SIZE=$(podman image inspect --format '{{ .Size }}' "$IMAGE")
log "built $IMAGE in ${BUILD_SECONDS}s ($((SIZE / 1000000)) MB)"

podman volume create "$VOLUME" >/dev/null

# $1: the bind address, or "" for the image's default (0.0.0.0). The image's HEALTHCHECK is
# kept but not timed (podman's timer needs systemd): the script runs it once by hand.
start_container() {
    local bind=()
    [ -n "$1" ] && bind=(-e "CARILLON_HOST=$1")
    podman run -d --name "$CONTAINER" "${RUNTIME[@]}" --network=host \
        --health-interval=disable \
        -v "$VOLUME:/data" \
        "${bind[@]}" \
        -e CARILLON_PUBLIC_HOST=127.0.0.1 \
        -e CARILLON_HTTP_PORT="$HTTP_PORT" \
        -e CARILLON_UDP_PORT="$UDP_PORT" \
        -e CARILLON_ACCESS_KEY_ID="$ACCESS_KEY_ID" \
        -e CARILLON_SECRET_ACCESS_KEY="$SECRET_ACCESS_KEY" \
        "$IMAGE" >/dev/null
    local deadline=$(($(date +%s) + 60))
    until "$PYTHON" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$HTTP_PORT/health', timeout=1)" \
        >/dev/null 2>&1; do
        [ "$(podman inspect --format '{{ .State.Running }}' "$CONTAINER")" = true ] \
            || fail "the container exited"
        [ "$(date +%s)" -lt "$deadline" ] || fail "/health did not answer within 60 s"
        sleep 0.5
    done
    log "container $CONTAINER healthy on http://127.0.0.1:$HTTP_PORT (udp $UDP_PORT)"
}

stop_container() {
    podman stop -t 15 "$CONTAINER" >/dev/null
    local code
    code=$(podman inspect --format '{{ .State.ExitCode }}' "$CONTAINER")
    [ "$code" = 0 ] || fail "carillon exited with $code on SIGTERM"
    podman rm "$CONTAINER" >/dev/null
}

start_container 127.0.0.1
podman healthcheck run "$CONTAINER" >/dev/null || fail "the image's HEALTHCHECK failed"
log "HEALTHCHECK passes"
USER_ID=$(podman exec "$CONTAINER" id -u)
[ "$USER_ID" != 0 ] || fail "the server runs as root"
log "server runs as uid $USER_ID"

# --- 4. a meeting through the container's ports ------------------------------------------

DRIVE=("$PYTHON" -m tests.container.drive_meeting
    --endpoint "http://127.0.0.1:$HTTP_PORT"
    --access-key-id "$ACCESS_KEY_ID" --secret-access-key "$SECRET_ACCESS_KEY"
    --state "$WORK/meeting.json")
DEMO=()
[ -f web/build.sh ] && DEMO=(--demo-page) # the image then serves the page web/ builds
timeout 180 "${DRIVE[@]}" join "${DEMO[@]}" || fail "drive_meeting.py join"
podman exec "$CONTAINER" test -s /data/carillon.sqlite3 || fail "no SQLite store in /data"

# --- 5. a new container on the same volume -----------------------------------------------

log "replacing the container (same volume; this one binds the image's default 0.0.0.0)"
stop_container
start_container ""
podman healthcheck run "$CONTAINER" >/dev/null || fail "the image's HEALTHCHECK failed"
timeout 180 "${DRIVE[@]}" verify || fail "drive_meeting.py verify"
stop_container
