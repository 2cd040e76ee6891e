# shellcheck shell=sh disable=SC1091
# perry.fleet: secret environment for the workspace user (written 0600 by perry_workspace in place; never in /etc/environment).
if [ -r "$HOME/.config/perry/secrets.env" ] && [ "$(id -u)" = "$(id -u workspace 2>/dev/null)" ]; then
  set -a
  . "$HOME/.config/perry/secrets.env"
  set +a
fi
