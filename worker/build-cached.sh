#!/bin/sh
# Build the worker once per source hash: ./build-cached.sh CACHE_DIR
# Prints the directory holding dist/ (JS bundle), perry (compiled binary) and VERSION for this source.
# A second call with unchanged sources costs a hash of the sources and nothing else.
set -eu
cd "$(dirname "$0")"
cache="${1:?usage: build-cached.sh CACHE_DIR}"
hash=$(find src build.sh -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
out="$cache/$hash"
if [ ! -f "$out/.complete" ]; then
  mkdir -p "$cache"
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
