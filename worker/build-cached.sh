#!/bin/sh
# Build the worker once per source hash: ./build-cached.sh CACHE_DIR
# Prints the directory holding dist/ (JS bundle), perry (compiled binary) and VERSION for this source.
# A second call with unchanged sources costs a hash of the sources and nothing else.
set -eu
cd "$(dirname "$0")"
cache="${1:?usage: build-cached.sh CACHE_DIR}"
hash=$(find src build.sh -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
out="$cache/$hash"
mkdir -p "$cache"
# One build at a time (parallel test processes ask at once): the others wait, then find it complete. Without the lock
# a second build's final rm -rf would pull the first one's files from under a reader.
exec 9>"$cache/.lock"
flock -w 600 9 || { echo "build-cached.sh: waited 600 s for another build of the worker ($cache/.lock)" >&2; exit 1; }
if [ ! -f "$out/.complete" ]; then
  tmp=$(mktemp -d "$cache/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # build.sh writes next to itself; build a private copy so concurrent builds cannot collide.
  cp -r src build.sh "$tmp/"
  # build.sh's exit code is kept: 3 means no bun on this machine.
  rc=0; (cd "$tmp" && ./build.sh >build.log 2>&1) || rc=$?
  if [ "$rc" != 0 ]; then cat "$tmp/build.log" >&2; exit "$rc"; fi
  mkdir -p "$tmp/out"
  mv "$tmp/dist" "$tmp/out/dist" && mv "$tmp/dist-bin/perry" "$tmp/out/perry"
  "$tmp/out/perry" --version >"$tmp/out/VERSION"
  chmod -R a+rX "$tmp/out"
  touch "$tmp/out/.complete"
  rm -rf "$out" && mv "$tmp/out" "$out"
fi
echo "$out"
