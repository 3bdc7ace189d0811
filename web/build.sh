#!/bin/sh
# Build the demo page bundle web/dist/app.js from the npm-installed amazon-chime-sdk-js.
#
#   sh web/build.sh               npm ci (exact versions from package-lock.json) unless
#                                 node_modules already matches the lock file, then bundle
#   sh web/build.sh --no-install  bundle only
#
# The SDK ships CommonJS only. Its messaging client (@aws-sdk/client-chime-sdk-messaging,
# unused by meetings) resolves to a Node build that imports node:* modules, so the bundle
# aliases it to the package's ESM build, whose "browser" field swaps in the browser runtime
# (chime-signaling-protocol.md §9.1). Some dependencies read the Node global `global`,
# which browsers call `globalThis`.
set -eu
cd "$(dirname "$0")"

if [ "${1:-}" != "--no-install" ]; then
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
fi

mkdir -p dist
./node_modules/.bin/esbuild src/app.js \
    --bundle --minify --format=iife --platform=browser --target=chrome110 \
    --main-fields=browser,module,main --define:global=globalThis \
    --alias:@aws-sdk/client-chime-sdk-messaging=./node_modules/@aws-sdk/client-chime-sdk-messaging/dist-es/index.js \
    --log-level=warning \
    --outfile=dist/app.js
echo "built $(pwd)/dist/app.js"
