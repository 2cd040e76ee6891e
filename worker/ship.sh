#!/bin/sh
# Ship the built JS worker inside the collection (roles/workspace/files/worker/), so an installed collection
# provisions workspaces on a controller without bun. Run it after changing worker/src; a unit test
# (tests/unit/test_shipped_worker.py) fails while the shipped copy is older than the sources.
#   worker/ship.sh
set -eu
cd "$(dirname "$0")"
dest=../roles/workspace/files/worker
hash=$(find src build.sh -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)  # = build-cached.sh
out=$(./build.sh dist)
bun_bin=$(printf '%s\n' "$out" | sed -n 's/^bun: \(.*\) (.*$/\1/p')
rm -rf "$dest" && mkdir -p "$dest/dist"
cp dist/cli.js "$dest/dist/cli.js" && chmod 0644 "$dest/dist/cli.js"   # run by bun, never executed itself
"$bun_bin" dist/cli.js --version >"$dest/VERSION"
echo "$hash" >"$dest/SOURCE"
echo "shipped worker $(cat "$dest/VERSION") (sources $hash) in roles/workspace/files/worker"
