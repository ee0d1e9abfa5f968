#!/usr/bin/env bash
# Installs baton-agent as the systemd service baton-agent.service (as root):
#   deploy/systemd/install.sh [--binary PATH] [--server URL] [--token TOKEN] [--root DIR] [--no-start]
# It creates the system user baton (in the docker group's reach through the
# unit's SupplementaryGroups=docker), installs the binary as
# /usr/local/bin/baton-agent and the unit, writes /etc/baton/agent.env from
# agent.env.example (0600; an existing one is kept), enables the unit and
# starts it when the env file names a server and a token. Running it again
# upgrades the binary and the unit; restart the agent yourself then
# (systemctl restart baton-agent drains first). --root DIR installs into the
# file tree under DIR instead (packaging, tests): nothing is started.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
binary=$here/../../bin/baton-agent
server=
token=
root=
start=yes
usage() { sed -n '2,3p' "$0" | sed 's/^# *//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?}; shift 2 ;;
    --server) server=${2:?}; shift 2 ;;
    --token) token=${2:?}; shift 2 ;;
    --root) root=$(cd "${2:?}" && pwd); shift 2 ;;
    --no-start) start=no; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
[ -x "$binary" ] || { echo "install.sh: no agent binary at $binary (make build, or --binary PATH)" >&2; exit 1; }
case "$token" in *[!A-Za-z0-9_-]*) echo "install.sh: --token: not a registration token" >&2; exit 1 ;; esac
case "$server" in ''|http://*|https://*) ;; *) echo "install.sh: --server must be an http(s) URL" >&2; exit 1 ;; esac
case "$server" in *[[:space:]\|\&\\]*) echo "install.sh: --server: not a URL" >&2; exit 1 ;; esac

prefix=()
[ -n "$root" ] && prefix=(--prefix "$root")
# The unit runs with SupplementaryGroups=docker: without the group it fails.
if ! grep -q '^docker:' "$root/etc/group"; then
  echo "install.sh: there is no docker group: install Docker Engine first" >&2
  exit 1
fi
if ! grep -q '^baton:' "$root/etc/passwd"; then
  useradd "${prefix[@]}" --system --user-group --home-dir /var/lib/baton-agent --no-create-home \
    --shell /usr/sbin/nologin --comment 'Baton CI agent' baton
  echo "created the system user baton"
fi

install -d -m 0755 "$root/usr/local/bin" "$root/etc/systemd/system"
install -m 0755 "$binary" "$root/usr/local/bin/baton-agent.new"
mv -f "$root/usr/local/bin/baton-agent.new" "$root/usr/local/bin/baton-agent"
install -m 0644 "$here/baton-agent.service" "$root/etc/systemd/system/baton-agent.service"
echo "installed /usr/local/bin/baton-agent and /etc/systemd/system/baton-agent.service"

install -d -m 0755 "$root/etc/baton"
env_file=$root/etc/baton/agent.env
if [ -e "$env_file" ]; then
  echo "kept /etc/baton/agent.env"
else
  # umask: the file holds the registration token from its first byte.
  (umask 077 && sed -e "s|@SERVER@|$server|" -e "s|@TOKEN@|$token|" "$here/agent.env.example" > "$env_file.new")
  chmod 0600 "$env_file.new"
  mv "$env_file.new" "$env_file"
  echo "wrote /etc/baton/agent.env (0600)"
fi

if [ -n "$root" ]; then
  systemctl --root="$root" enable baton-agent.service
  exit 0
fi
if [ ! -d /run/systemd/system ]; then
  echo "install.sh: systemd is not running here: enable and start baton-agent.service yourself" >&2
  exit 0
fi
systemctl daemon-reload
systemctl enable baton-agent.service
configured=yes
grep -q '^BATON_SERVER=..*' "$env_file" || configured=no
grep -q '^BATON_REGISTRATION_TOKEN=..*' "$env_file" || configured=no
if systemctl -q is-active baton-agent.service; then
  echo "baton-agent is running the old binary: systemctl restart baton-agent (it drains first)"
elif [ "$start" = yes ] && [ "$configured" = yes ]; then
  systemctl start baton-agent.service
  echo "started baton-agent: journalctl -u baton-agent -f"
else
  echo "set BATON_SERVER and BATON_REGISTRATION_TOKEN in /etc/baton/agent.env, then: systemctl start baton-agent"
fi
