#!/bin/sh
# Build the Perry-compatible worker:
#   dist/cli.js      JS bundle (run with `bun dist/cli.js worker serve`; ship dist/ + a bun wrapper)
#   dist-bin/perry   self-contained compiled binary (bun build --compile)
# Usage: ./build.sh [all|dist|bin]
# Bun is taken from $BUN (when set, only from there), then /opt/perry-fleet/bun (npm-installed), then PATH.
# Exit 3: no bun (the workspace role then takes the JS dist shipped in the collection).
set -eu
cd "$(dirname "$0")"

find_bun() {
  if [ -n "${BUN:-}" ]; then
    [ -x "$BUN" ] && { echo "$BUN"; return 0; }
    echo "build.sh: BUN=$BUN is not an executable bun" >&2
    return 3
  fi
  for c in \
    /opt/perry-fleet/bun/node_modules/.bin/bun \
    /opt/perry-fleet/bun/node_modules/bun/bin/bun.exe \
    /opt/perry-fleet/bun/node_modules/bun/bin/bun \
    /opt/perry-fleet/bun/node_modules/@oven/bun-linux-x64/bin/bun \
    /opt/perry-fleet/bun/node_modules/@oven/bun-linux-aarch64/bin/bun; do
    if [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  command -v bun 2>/dev/null && return 0
  echo "build.sh: bun not found (set BUN=/path/to/bun)" >&2
  return 3
}
BUN_BIN=$(find_bun) || exit 3
echo "bun: $BUN_BIN ($("$BUN_BIN" --version))"

what=${1:-all}
if [ "$what" = all ] || [ "$what" = dist ]; then
  rm -rf dist
  "$BUN_BIN" build src/cli.js --target=bun --outdir dist
  # the bundle keeps the shebang; make it directly runnable too
  chmod 755 dist/cli.js
  echo "dist: $(pwd)/dist/cli.js"
fi
if [ "$what" = all ] || [ "$what" = bin ]; then
  rm -rf dist-bin && mkdir -p dist-bin
  "$BUN_BIN" build src/cli.js --compile --target=bun --outfile dist-bin/perry
  echo "binary: $(pwd)/dist-bin/perry ($(./dist-bin/perry --version))"
fi

echo "source sha256 (sorted src/ files, combined):"
find src -type f -name '*.js' | LC_ALL=C sort | xargs sha256sum
echo "combined: $(find src -type f -name '*.js' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)"
if [ -f dist/cli.js ]; then sha256sum dist/cli.js; fi
if [ -f dist-bin/perry ]; then sha256sum dist-bin/perry; fi
