#!/bin/sh
# Installs what the browser tests (tests/browser/) and the demo page need: Debian's
# Chromium (/usr/bin/chromium; browser tests never download a browser of their own) and,
# if missing, Node.js with npm; then builds the page (web/build.sh: npm ci + esbuild).
# Does nothing that is already done. Without root or sudo, says what is missing and fails.
set -eu
cd "$(dirname "$0")/.."

missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        sudo=""
    elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "error: please install these Debian packages:$missing" >&2
        exit 1
    fi
    echo "installing Debian packages:$missing"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

sh web/build.sh
