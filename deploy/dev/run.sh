#!/usr/bin/env bash
# Local development: one baton-server (SQLite under ./.baton) and one agent.
# Started by `make run`, which builds bin/ first. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/../.."

addr=${BATON_ADDR:-127.0.0.1:8484}
state=${BATON_RUN_STATE:-.baton}
url="http://$addr"
mkdir -p "$state"

if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
  echo "make run needs a running Docker engine (docker info failed)." >&2
  exit 1
fi
if ! docker image inspect baton/busybox:latest >/dev/null 2>&1; then
  echo "Building the default step image baton/busybox:latest from /bin/busybox ..."
  bin/baton-agent build-image || {
    echo "Could not build it: install a static busybox (Debian: apt-get install busybox-static)." >&2
    exit 1
  }
fi

pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "Stopping ..."
  # The agent drains on SIGTERM; the server shuts down gracefully.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

bin/baton-server --addr "$addr" --data-dir "$state/server" --agent-eviction 10s > >(sed -u 's/^/[server] /') 2>&1 &
pids+=($!)

for _ in $(seq 1 600); do
  curl -fsS "$url/readyz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "baton-server exited; see the lines above." >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$url/readyz" >/dev/null || { echo "baton-server is not ready at $url" >&2; exit 1; }

admin_file="$state/server/admin-token"
auth="Authorization: Bearer $(cat "$admin_file")"
reg=$(curl -fsS -X POST -H "$auth" "$url/api/v1/registration-tokens" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$reg" ] || { echo "could not create a registration token" >&2; exit 1; }

BATON_REGISTRATION_TOKEN="$reg" bin/baton-agent --server "$url" --state-dir "$state/agent" --name local-agent \
  > >(sed -u 's/^/[agent]  /') 2>&1 &
pids+=($!)

cat <<EOT

  Baton is running.
    Web UI:      $url/  (first visit: the setup page asks for the admin token below,
                 then you choose the first admin's name and password)
    API:         $url/api/v1/
    Admin token: $admin_file
  Run the example (waits for the result and prints each step's log):
    deploy/dev/submit.sh examples/hello/runbook.yml
  Or with curl alone:
    curl -sS -H "Authorization: Bearer \$(cat $admin_file)" -H 'Content-Type: application/yaml' --data-binary @examples/hello/runbook.yml '$url/api/v1/runs?project=hello'
  Press Ctrl-C to stop.

EOT
wait -n "${pids[@]}" || true
