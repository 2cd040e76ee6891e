# shellcheck shell=sh disable=SC1091
# perry.fleet: the workspace user's environment, written in place by perry_workspace (never in /etc/environment):
# env.sh (0644, the `env` option) first, then secrets.env (0600, `secret_env`), so a secret wins over a plain value.
if [ "$(id -u)" = "$(id -u workspace 2>/dev/null)" ]; then
  for perry_env_file in "$HOME/.config/perry/env.sh" "$HOME/.config/perry/secrets.env"; do
    if [ -r "$perry_env_file" ]; then
      set -a
      . "$perry_env_file"
      set +a
    fi
  done
  unset perry_env_file
fi
