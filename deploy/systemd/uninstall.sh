#!/usr/bin/env bash
# Removes baton-agent.service (as root):
#   deploy/systemd/uninstall.sh [--purge] [--root DIR]
# Stopping drains the agent: running steps get up to the eviction time.
# The binary and the unit go; /etc/baton/agent.env, the state dir (the
# agent's identity) and the user baton stay unless --purge. Delete the agent
# in the API (DELETE /api/v1/agents/{id}) if it is not coming back.
# --root DIR works on the file tree under DIR (packaging, tests).
set -euo pipefail
purge=no
root=
usage() { sed -n '2,3p' "$0" | sed 's/^# *//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) purge=yes; shift ;;
    --root) root=$(cd "${2:?}" && pwd); shift 2 ;;
    -h|--help) usage ;;
    *) echo "uninstall.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "uninstall.sh: run as root" >&2; exit 1; }

unit=$root/etc/systemd/system/baton-agent.service
if [ -n "$root" ]; then
  [ -e "$unit" ] && systemctl --root="$root" disable baton-agent.service
elif [ -d /run/systemd/system ]; then
  if systemctl -q is-active baton-agent.service; then
    echo "stopping baton-agent (it drains: running steps may take up to the eviction time) ..."
    systemctl stop baton-agent.service
  fi
  systemctl disable baton-agent.service 2>/dev/null || true
fi
rm -f "$unit" "$root/usr/local/bin/baton-agent"
[ -z "$root" ] && [ -d /run/systemd/system ] && systemctl daemon-reload
echo "removed baton-agent.service and /usr/local/bin/baton-agent"

if [ "$purge" = yes ]; then
  rm -rf "$root/etc/baton/agent.env" "$root/var/lib/baton-agent" "$root/var/lib/baton-work" \
    "$root/var/lib/private/baton-agent" "$root/var/lib/private/baton-work"
  rmdir "$root/etc/baton" 2>/dev/null || true
  if grep -q '^baton:' "$root/etc/passwd"; then
    prefix=()
    [ -n "$root" ] && prefix=(--prefix "$root")
    userdel "${prefix[@]}" baton
  fi
  echo "purged /etc/baton/agent.env, /var/lib/baton-agent, /var/lib/baton-work and the user baton"
else
  echo "kept /etc/baton/agent.env and /var/lib/baton-agent (the agent's identity); --purge removes them"
fi
