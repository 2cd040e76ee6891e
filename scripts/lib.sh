# Shared paths and helpers for scripts/*. Sourced, not run.
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables below are read by the scripts that source this file
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PERRY_FLEET_HOME="${PERRY_FLEET_HOME:-/opt/perry-fleet}"       # venv, bun, runtime wrapper
PERRY_FLEET_CACHE="${PERRY_FLEET_CACHE:-/var/cache/perry-fleet}" # debootstrap tarball, build caches
# The venv is built from Debian's python (not a per-user pyenv one) so that every user, rootless
# test users and `become` targets included, can run it.
SYSTEM_PYTHON=/usr/bin/python3
REQ_HASH="$( (cat "$REPO_ROOT/requirements.txt"; echo "$SYSTEM_PYTHON") | sha256sum | cut -c1-12)"
VENV="$PERRY_FLEET_HOME/venv-$REQ_HASH"
BUN_VERSION="1.4.4"
BUN="$PERRY_FLEET_HOME/bun/node_modules/bun/bin/bun.exe"  
BASE_IMAGE="localhost/perry-base:bookworm"
ROOTLESS_USER="${PERRY_ROOTLESS_USER:-perry-rootless}"   # the integration tests' rootless topology
# Users whose workspace gets the user's own podman (perry_workspace_engine=user_socket), which must be alone in that
# podman: tests/integration/test_user_socket.py's, and the two hosts of the podman-rootless Molecule scenario. Each
# has its own, so they run beside the rootless tests (pytest -n) and a workspace one of them left never blocks another.
USER_SOCKET_TEST_USER="${PERRY_USER_SOCKET_TEST_USER:-perry-rootless2}"
MOLECULE_ROOTLESS_USERS=(perry-rootless3 perry-rootless4)
ROOTLESS_USERS=("$ROOTLESS_USER" "$USER_SOCKET_TEST_USER" "${MOLECULE_ROOTLESS_USERS[@]}")

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

# Run a command as a rootless test user with a usable XDG_RUNTIME_DIR (there is no systemd/logind here).
as_rootless_user() {
  local user="$1" uid; shift
  uid="$(id -u "$user")"
  runuser -u "$user" -- env -i HOME="$(getent passwd "$user" | cut -d: -f6)" \
    PATH=/usr/local/bin:/usr/bin:/bin XDG_RUNTIME_DIR="/run/user/$uid" "$@"
}
as_rootless() { as_rootless_user "$ROOTLESS_USER" "$@"; }

# Collections tree ansible uses: this checkout (linked as perry.fleet inside it, so two checkouts on
# one machine never see each other's code) + the ones bundled in the ansible package.
export ANSIBLE_COLLECTIONS_PATH="$REPO_ROOT/.collections"
