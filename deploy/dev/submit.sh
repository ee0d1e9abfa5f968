#!/usr/bin/env bash
# Submit a runbook to the local server started by `make run`, wait for the run
# to end, and print its steps and their logs. Exit status 0 iff it succeeded.
#   deploy/dev/submit.sh RUNBOOK [PROJECT]
set -euo pipefail
cd "$(dirname "$0")/../.."
runbook=${1:?usage: deploy/dev/submit.sh RUNBOOK [PROJECT]}
project=${2:-$(basename "$(dirname "$runbook")")}
url="http://${BATON_ADDR:-127.0.0.1:8484}"
state=${BATON_RUN_STATE:-.baton}
auth="Authorization: Bearer $(cat "$state/server/admin-token")"

created=$(curl -sS -H "$auth" -H 'Content-Type: application/yaml' --data-binary @"$runbook" "$url/api/v1/runs?project=$project")
id=$(printf '%s' "$created" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
if [ -z "$id" ]; then
  echo "run not created: $created" >&2
  exit 1
fi
echo "run $id created; waiting for it to finish ..."

# The run's own state is the first "state" key of the run document.
run_state() { sed -n 's/^[^[]*"state":"\([a-z]*\)".*/\1/p'; }
deadline=$((SECONDS + ${BATON_SUBMIT_TIMEOUT:-300}))
while :; do
  run=$(curl -sS -H "$auth" "$url/api/v1/runs/$id")
  st=$(printf '%s' "$run" | run_state)
  case "$st" in succeeded|failed|cancelled) break ;; esac
  [ $SECONDS -lt $deadline ] || { echo "run $id still $st after ${BATON_SUBMIT_TIMEOUT:-300}s" >&2; exit 1; }
  sleep 0.5
done

printf '%s' "$run" | grep -o '{"name":"[^"]*","state":"[a-z]*"[^}]*"exit_code":[-0-9a-z]*' |
  sed 's/{"name":"\([^"]*\)","state":"\([a-z]*\)".*"exit_code":\(.*\)/\1 \2 \3/' |
  while read -r name sstate code; do
    echo "── step $name: $sstate (exit code $code)"
    curl -sS -H "$auth" "$url/api/v1/runs/$id/steps/$name/log"
  done
echo "run $id $st"
[ "$st" = succeeded ]
