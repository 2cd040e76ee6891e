#!/usr/bin/env bash
# perry-entrypoint: boot a Perry workspace container (runs under tini; plain bash, no bun needed).
#  1. container env -> /etc/environment (non-secret); keys named in PERRY_SECRET_ENV_KEYS (0.1.0 containers; now
#     perry_workspace writes secrets.env in place) -> ~workspace/.config/perry/secrets.env (0600), then removed
#     from the env of everything started here
#  2. SSH_PUBLIC_KEY -> ~workspace/.ssh/authorized_keys
#  3. engine: DOCKER_HOST set -> external engine, no dockerd (with PERRY_ENGINE_RELAY, the user's own podman socket
#     mounted for root only, socat relays it to DOCKER_HOST's socket, owned by workspace 0600; restarted if it dies);
#     else start dockerd (DinD) and wait up to PERRY_DOCKERD_WAIT s (default 30). A failing dockerd is logged and
#     the container STAYS UP (no restart loop).
#  4. sshd (host keys generated here when missing; the image ships none)
#  5. supervise `/usr/local/bin/perry worker serve` as user workspace (pidfile, restart within ~2 s); before that,
#     PERRY_WORKER_TOKEN (the host-derived per-workspace token) -> /etc/perry/worker.auth (root:workspace 0640,
#     one `Authorization: Bearer <t>` line for the worker and for `curl -H @file`) and out of the environment;
#     no token given -> a random one (only exec can then reach the worker); PERRY_WORKER_AUTH=none -> no file,
#     an open worker (unsafe: every peer on the bridge can read and delete sessions)
#  6. start tasks (perry-start-tasks boot, as workspace, in the background): the repo cloned once, post-start scripts;
#     a failure is in ~/.cache/perry/post-start.log and start-tasks.json, never a reason to exit
#  7. monitor sshd/dockerd every 10 s; SIGTERM/SIGINT -> stop everything and exit promptly
# With arguments (`docker run IMAGE CMD...`) it only does step 1 and execs CMD.
# Root never follows the workspace user: the image runs this script as `/bin/bash perry-entrypoint` (the shebang's
# env would look bash up on the image's PATH, where ~/.local/bin comes first), with a fixed PATH (the image's puts ~/.local/bin first),
# and everything written in the home (secrets.env, authorized_keys) or in /tmp (the worker log) is written by the
# workspace user (as_user), so a link the user planted leads only where the user could write anyway.
set -u
CONTAINER_PATH="${PATH:-/usr/local/bin:/usr/bin:/bin}"   # the image's PATH: for /etc/environment, the worker, CMD
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

LOG=/var/log/perry-entrypoint.log
WORKER_BIN=/usr/local/bin/perry
WORKER_PIDFILE=/run/perry-worker.pid
WORKER_LOG=/tmp/perry-worker.log
WORKER_PATTERN='(^|/)[p]erry( |/current/cli[.]js )worker serve'
WS_USER=workspace
WS_HOME=/home/workspace
SECRETS_FILE="$WS_HOME/.config/perry/secrets.env"
DOCKERD_LOG=/var/log/dockerd.log
DOCKERD_WAIT="${PERRY_DOCKERD_WAIT:-30}"
READY_MARKER=/run/perry-entrypoint.ready

log() {
  local line
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) perry-entrypoint[$$]: $*"
  printf '%s\n' "$line" >>"$LOG" 2>/dev/null
  printf '%s\n' "$line"
}

as_user() {  # run "$@" as the workspace user (no capabilities kept), with the home as HOME
  /usr/bin/setpriv --reuid="$WS_USER" --regid="$WS_USER" --init-groups -- \
    /usr/bin/env HOME="$WS_HOME" USER="$WS_USER" LOGNAME="$WS_USER" PATH="$PATH" "$@"
}

is_alive() {  # pid exists and is not a zombie
  local state
  [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] || return 1
  state="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
  [ -n "$state" ] && [ "$state" != Z ]
}

# ---------------------------------------------------------------- 1. environment
valid_key() { [[ "$1" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; }
sq() { local v="${1//\'/\'\\\'\'}"; printf "'%s'" "$v"; }  # POSIX single-quoting

declare -A SECRET=()
IFS=',' read -r -a _secret_keys <<<"${PERRY_SECRET_ENV_KEYS:-}"
for k in "${_secret_keys[@]}"; do
  k="${k//[[:space:]]/}"
  [ -n "$k" ] && valid_key "$k" && SECRET["$k"]=1
done

# Never in /etc/environment: per-process/session values and our own control variables.
DENY=" HOME HOSTNAME USER LOGNAME SHELL TERM PWD OLDPWD SHLVL _ container PERRY_SECRET_ENV_KEYS SSH_PUBLIC_KEY \
PERRY_WORKER_TOKEN PERRY_ENGINE_RELAY \
SSH_CLIENT SSH_CONNECTION SSH_TTY SSH_AUTH_SOCK MAIL "

write_env_files() {
  local k v tmp n_env=0 n_sec=0
  tmp="$(mktemp /etc/.environment.XXXXXX)"
  {
    echo "# Written by perry-entrypoint at container start (non-secret container env)."
  } >"$tmp"
  while IFS= read -r k; do
    valid_key "$k" || continue
    [ -n "${SECRET[$k]:-}" ] && continue
    case "$DENY" in *" $k "*) continue ;; esac
    v="${!k}"
    [ "$k" = PATH ] && v="$CONTAINER_PATH"
    case "$v" in
      *$'\n'* | *'"'*) log "env $k not written to /etc/environment (newline or double quote in value)"; continue ;;
    esac
    if [[ "$v" =~ [[:space:]#\'\\] ]]; then printf '%s="%s"\n' "$k" "$v"; else printf '%s=%s\n' "$k" "$v"; fi >>"$tmp"
    n_env=$((n_env + 1))
  done < <(compgen -e | sort)
  chmod 0644 "$tmp" && mv -f "$tmp" /etc/environment

  # Secrets: perry_workspace writes ~/.config/perry/secrets.env in place (never through the container's env). Only
  # a container whose env names secret keys (perry.fleet 0.1.0, or a hand-made `docker run`) gets that file from
  # here; with no keys named the file is left alone, so a restart never clobbers the secrets written in place.
  if [ "${#SECRET[@]}" -eq 0 ]; then
    log "env: $n_env variables -> /etc/environment"
    return 0
  fi
  # 0600 file owned by workspace, sourced by /etc/profile.d/perry-secrets.sh (login + interactive bash).
  # Written by the workspace user from stdin (never argv): temporary name beside it, then renamed over it.
  for k in "${!SECRET[@]}"; do [ -n "${!k+x}" ] && n_sec=$((n_sec + 1)); done
  # shellcheck disable=SC2016  # the inner script expands its own arguments
  if {
    echo "# Written by perry-entrypoint: secret env (keys from PERRY_SECRET_ENV_KEYS). Do not share."
    for k in "${!SECRET[@]}"; do
      if [ -n "${!k+x}" ]; then printf '%s=%s\n' "$k" "$(sq "${!k}")"; fi
    done
  } | as_user /bin/sh -c 'set -e; umask 077; d=${1%/*}; mkdir -p -m 0700 "$d"
      t=$(mktemp "$d/.secrets.XXXXXX"); trap '\''rm -f "$t"'\'' EXIT; cat >"$t"; chmod 0600 "$t"; mv -fT "$t" "$1"' \
      sh "$SECRETS_FILE"; then
    log "env: $n_env variables -> /etc/environment, $n_sec secret(s) -> $SECRETS_FILE (0600)"
  else
    log "env: $n_env variables -> /etc/environment; writing $SECRETS_FILE as $WS_USER FAILED ($n_sec secret(s) not written)"
  fi
  # Nothing started from here on inherits the secrets.
  for k in "${!SECRET[@]}"; do unset "$k"; done
}

# ---------------------------------------------------------------- 2. ssh key
install_ssh_key() {
  [ -n "${SSH_PUBLIC_KEY:-}" ] || return 0
  local d="$WS_HOME/.ssh"
  # As the workspace user (the key on stdin): ~/.ssh is the user's, root must not follow a link planted there.
  # shellcheck disable=SC2016  # the inner script expands its own arguments
  if printf '%s\n' "$SSH_PUBLIC_KEY" | as_user /bin/sh -c 'set -e; umask 077; mkdir -p -m 0700 "$1"; chmod 0700 "$1"
      k=$(cat); f="$1/authorized_keys"; touch "$f"; grep -qxF -- "$k" "$f" || printf "%s\n" "$k" >>"$f"; chmod 0600 "$f"' \
      sh "$d"; then
    log "ssh: SSH_PUBLIC_KEY added to $d/authorized_keys"
  else
    log "ssh: writing $d/authorized_keys as $WS_USER FAILED"
  fi
}

# ---------------------------------------------------------------- 3. engine
DOCKERD_PID=""
RELAY_PID=""
RELAY_LOG=/var/log/perry-engine-relay.log
ENGINE_RELAY="${PERRY_ENGINE_RELAY:-}"
ENGINE_MODE=none
has_cap_sys_admin() {
  local eff
  eff="$(awk '/^CapEff:/{print $2}' /proc/self/status)"
  [ -n "$eff" ] && (( (16#$eff >> 21) & 1 ))
}
start_dockerd() {
  : >>"$DOCKERD_LOG"
  # shellcheck disable=SC2086  # PERRY_DOCKERD_ARGS is a word list on purpose
  setsid dockerd --host=unix:///var/run/docker.sock ${PERRY_DOCKERD_ARGS:-} >>"$DOCKERD_LOG" 2>&1 </dev/null &
  DOCKERD_PID=$!
}
# The user's own podman socket is mounted where only root (here: that host user) may open it; the workspace user
# gets a relay of it at DOCKER_HOST's path, in a root-owned directory (nothing the user could have planted there).
start_engine_relay() {
  local listen="${DOCKER_HOST#unix://}"
  if ! command -v socat >/dev/null 2>&1; then
    log "engine: PERRY_ENGINE_RELAY is set but this image has no socat; rebuild it with the perry.fleet.image role"
    return 0
  fi
  install -d -o root -g root -m 0755 "${listen%/*}"
  setsid socat "UNIX-LISTEN:$listen,fork,unlink-early,user=$WS_USER,group=$WS_USER,mode=0600" \
    "UNIX-CONNECT:$ENGINE_RELAY" >>"$RELAY_LOG" 2>&1 </dev/null &
  RELAY_PID=$!
  log "engine: relaying $ENGINE_RELAY (the user's own podman) to $listen for $WS_USER (socat pid $RELAY_PID)"
}
dockerd_ready() { timeout 5 env -u DOCKER_HOST docker version >/dev/null 2>&1; }
setup_engine() {
  if [ -n "${DOCKER_HOST:-}" ]; then
    ENGINE_MODE=external
    log "engine: external engine at DOCKER_HOST=$DOCKER_HOST; dockerd is not started"
    [ -n "$ENGINE_RELAY" ] && start_engine_relay
    ( if timeout 10 docker version >/dev/null 2>&1; then log "engine: DOCKER_HOST answers (docker version ok)";
      else log "engine: DOCKER_HOST does not answer yet (docker version failed); the client is $(command -v docker || echo missing)"; fi ) &
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    ENGINE_MODE=none
    log "engine: DOCKER_HOST is not set and this image has no dockerd (RUNTIME=$(cat /etc/perry-runtime 2>/dev/null || echo ?)); set DOCKER_HOST to an external engine. Staying up."
    return 0
  fi
  log "engine: DOCKER_HOST not set; starting dockerd (Docker-in-Docker, log $DOCKERD_LOG)"
  start_dockerd
  local i
  for ((i = 0; i < DOCKERD_WAIT; i++)); do
    if dockerd_ready; then ENGINE_MODE=dind; log "engine: dockerd ready after ${i} s"; return 0; fi
    is_alive "$DOCKERD_PID" || break
    sleep 1
  done
  ENGINE_MODE=failed
  local why="did not answer within ${DOCKERD_WAIT} s"
  if ! is_alive "$DOCKERD_PID"; then wait "$DOCKERD_PID" 2>/dev/null; why="exited with status $?"; fi
  has_cap_sys_admin || why="$why; the container is not privileged (no CAP_SYS_ADMIN): run it with --privileged or set DOCKER_HOST"
  log "engine: dockerd FAILED: $why. The container stays up for diagnosis (no restart loop). Last lines of $DOCKERD_LOG:"
  tail -n 20 "$DOCKERD_LOG" 2>/dev/null | sed 's/^/  dockerd| /' | tee -a "$LOG"
}

# ---------------------------------------------------------------- 4. sshd
start_sshd() {
  mkdir -p /run/sshd && chmod 0755 /run/sshd
  if ! ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1; then
    ssh-keygen -A >/dev/null 2>&1 && log "sshd: generated host keys"
  fi
  if /usr/sbin/sshd -E /var/log/sshd.log; then log "sshd: started (key-only)"; else log "sshd: FAILED to start (see /var/log/sshd.log)"; fi
}
sshd_running() { [ -s /run/sshd.pid ] && is_alive "$(cat /run/sshd.pid 2>/dev/null)"; }

# ---------------------------------------------------------------- 5. worker token, worker supervisor
WORKER_AUTH_FILE=/etc/perry/worker.auth
write_worker_auth() {
  local token="${PERRY_WORKER_TOKEN:-}" tmp
  unset PERRY_WORKER_TOKEN
  if [ "${PERRY_WORKER_AUTH:-}" = none ]; then
    rm -f "$WORKER_AUTH_FILE"
    log "worker: PERRY_WORKER_AUTH=none: the worker requires NO token (unsafe: any peer on the bridge can read and delete sessions)"
    return 0
  fi
  if ! [[ "$token" =~ ^[A-Za-z0-9._~-]{16,256}$ ]]; then
    [ -n "$token" ] && log "worker: PERRY_WORKER_TOKEN is malformed; using a random token (only exec reaches the worker)"
    [ -z "$token" ] && log "worker: no PERRY_WORKER_TOKEN (workspace created without one); using a random token (only exec reaches the worker)"
    token="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
  fi
  # root-owned directory and file: the workspace user may read its own token but not replace it or plant a link
  install -d -o root -g root -m 0755 /etc/perry
  tmp="$(mktemp /etc/perry/.worker.auth.XXXXXX)"
  printf 'Authorization: Bearer %s\n' "$token" >"$tmp"
  chown "root:$WS_USER" "$tmp" && chmod 0640 "$tmp" && mv -f "$tmp" "$WORKER_AUTH_FILE"
  log "worker: token -> $WORKER_AUTH_FILE (root:$WS_USER 0640)"
}

find_worker() {  # prints the pid of a running worker: ours (pidfile) or one started from outside
  local pid
  pid="$(cat "$WORKER_PIDFILE" 2>/dev/null)"
  if is_alive "$pid"; then echo "$pid"; return 0; fi
  # The worker itself (WORKER_PATTERN, the same as plugins/module_utils/worker_process.py PATTERN: a unit test
  # keeps them equal): ".../perry worker serve" (binary) or "bun .../perry/current/cli.js worker serve".
  for pid in $(pgrep -f "$WORKER_PATTERN" 2>/dev/null); do
    if is_alive "$pid"; then echo "$pid"; return 0; fi
  done
  return 1
}
start_worker() {
  (
    cd "$WS_HOME" 2>/dev/null || cd /
    # The log (in world-writable /tmp) is opened by the worker's own user, never by root.
    # shellcheck disable=SC2016  # the inner script expands its own arguments
    exec /usr/bin/env HOME="$WS_HOME" USER="$WS_USER" LOGNAME="$WS_USER" SHELL=/bin/bash PATH="$CONTAINER_PATH" \
      /usr/bin/setpriv --reuid="$WS_USER" --regid="$WS_USER" --init-groups -- \
      /bin/sh -c 'exec "$0" worker serve >>"$1" 2>&1' "$WORKER_BIN" "$WORKER_LOG"
  ) </dev/null >/dev/null 2>&1 &
  echo $! >"$WORKER_PIDFILE"
  log "worker: started $WORKER_BIN worker serve as $WS_USER (pid $!, log $WORKER_LOG)"
}
supervise_worker() {
  trap - TERM INT
  local pid adopted="" started=0 quick=0
  while :; do
    if [ -x "$WORKER_BIN" ]; then
      if pid="$(find_worker)"; then
        if [ "$pid" != "$(cat "$WORKER_PIDFILE" 2>/dev/null)" ]; then
          echo "$pid" >"$WORKER_PIDFILE"
          [ "$pid" != "$adopted" ] && log "worker: adopted running worker pid $pid"
          adopted="$pid"
        fi
      else
        if [ "$started" -gt 0 ]; then
          if [ $((SECONDS - started)) -lt 10 ]; then quick=$((quick + 1)); else quick=0; fi
          log "worker: not running (exited or killed); restarting"
          if [ "$quick" -ge 5 ]; then log "worker: dies quickly ($quick times); backing off 10 s"; sleep 10; fi
        fi
        start_worker
        started=$SECONDS
      fi
    fi
    sleep 1
  done
}

# ---------------------------------------------------------------- shutdown
SUPERVISOR_PID=""
SLEEP_PID=""
shutdown() {
  log "shutdown: signal received; stopping services"
  local p
  [ -n "$SUPERVISOR_PID" ] && kill "$SUPERVISOR_PID" 2>/dev/null
  [ -n "$SLEEP_PID" ] && kill "$SLEEP_PID" 2>/dev/null
  p="$(cat "$WORKER_PIDFILE" 2>/dev/null)"; is_alive "$p" && kill "$p" 2>/dev/null
  p="$(cat /run/sshd.pid 2>/dev/null)"; is_alive "$p" && kill "$p" 2>/dev/null
  is_alive "$RELAY_PID" && kill "$RELAY_PID" 2>/dev/null
  if is_alive "$DOCKERD_PID"; then
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 40); do is_alive "$DOCKERD_PID" || break; sleep 0.2; done
  fi
  rm -f "$READY_MARKER" "$WORKER_PIDFILE"
  log "shutdown: done"
  exit 0
}

# ---------------------------------------------------------------- main
mkdir -p "$(dirname "$LOG")"
log "starting (runtime image: $(cat /etc/perry-runtime 2>/dev/null || echo unknown), pid $$)"
# The home itself (a mount point under root's /home, not a link the user can plant): only its owner, never -R.
[ -d "$WS_HOME" ] && [ ! -L "$WS_HOME" ] && [ "$(stat -c %U "$WS_HOME")" != "$WS_USER" ] && chown -h "$WS_USER:$WS_USER" "$WS_HOME"
write_env_files
write_worker_auth

if [ "$#" -gt 0 ]; then
  log "command given; exec $*"
  PATH="$CONTAINER_PATH" exec "$@"
fi

trap shutdown TERM INT
install_ssh_key
setup_engine
start_sshd
supervise_worker &
SUPERVISOR_PID=$!
if [ -x /usr/local/bin/perry-start-tasks ]; then
  (cd "$WS_HOME" 2>/dev/null || cd /; as_user setsid /usr/local/bin/perry-start-tasks boot) </dev/null >/dev/null 2>&1 &
  log "start tasks: perry-start-tasks boot started (status ~/.cache/perry/start-tasks.json)"
fi
echo "engine=$ENGINE_MODE" >"$READY_MARKER"
log "ready: engine=$ENGINE_MODE sshd=$(sshd_running && echo up || echo down) worker=$([ -x "$WORKER_BIN" ] && echo supervised || echo "absent ($WORKER_BIN)")"

tick=0
while :; do
  sleep 2 &
  SLEEP_PID=$!
  wait "$SLEEP_PID"
  tick=$((tick + 1))
  [ $((tick % 5)) -eq 0 ] || continue   # every 10 s
  if ! sshd_running; then log "monitor: sshd is not running; restarting"; start_sshd; fi
  if [ -n "$RELAY_PID" ] && ! is_alive "$RELAY_PID"; then log "monitor: engine relay died; restarting"; start_engine_relay; fi
  if [ "$ENGINE_MODE" = dind ] && ! is_alive "$DOCKERD_PID"; then
    log "monitor: dockerd died; restarting"
    start_dockerd
  fi
  if ! is_alive "$SUPERVISOR_PID"; then supervise_worker & SUPERVISOR_PID=$!; fi
done
