#!/bin/sh
# Installs the Debian packages Carillon needs at run time (libopus0 for opuslib) and the
# venv module when the system Python lacks it. Does nothing when they are present; when
# apt-get is unavailable or we are not root, says what is missing and goes on.
set -eu
missing=""
if ! ldconfig -p 2>/dev/null | grep -q 'libopus\.so\.0'; then
    missing="$missing libopus0"
fi
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    missing="$missing python3-venv"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
    echo "warning: please install these Debian packages:$missing" >&2
fi
