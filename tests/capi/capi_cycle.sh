#!/usr/bin/env bash
# ctest CApi.DeviceCycleAgainstCoordinator: sets up a coordinator (init, a signed release
# published at 100%), starts it on loopback (TLS, a port the kernel picks), runs the C program
# capi_cycle_test against it, stops it, and checks the committed round in `coordinator status`.
# The release is served with a signed timestamp (`fedlora release timestamp`).
# Bounded: every step has a timeout; the coordinator is stopped on any exit.
set -euo pipefail
fedlora=$1 prog=$2 shared=$3 work=$4
model=$shared/fixtures/hf-tiny-llama/base
adapter=$shared/fixtures/hf-tiny-llama/adapter
rm -rf "$work" && mkdir -p "$work"
coord_pid=
stop_coordinator() {
  if [[ -n $coord_pid ]] && kill -0 "$coord_pid" 2>/dev/null; then
    kill -TERM "$coord_pid" 2>/dev/null || true
    timeout 30 tail --pid="$coord_pid" -f /dev/null || kill -KILL "$coord_pid" 2>/dev/null || true
  fi
}
trap stop_coordinator EXIT

timeout 120 "$fedlora" coordinator init --state "$work/coord" --model "$model" --goal 2 \
  --population 2 --rounds 1 --steps 2 --batch 2 --seq 32 --noise-multiplier 1.0 --tokens 2 \
  --selection-window 1 --phase-deadline 20 --train-deadline 60 > "$work/init.log"
timeout 60 "$fedlora" keys new --out "$work/release.key" > /dev/null
timeout 60 "$fedlora" release create --adapter "$adapter" --base "$model" --version 1 \
  --key "$work/release.key" --out "$work/rel-1" > /dev/null
timeout 60 "$fedlora" release publish "$work/rel-1" --state "$work/coord" \
  --trusted "$work/release.key.pub" --percent 100 > /dev/null
# The operator's signed freshness statement, served with every release answer.
timeout 60 "$fedlora" release timestamp --state "$work/coord" --key "$work/release.key" \
  --days 1 > /dev/null

timeout 400 "$fedlora" coordinator run --state "$work/coord" --listen 127.0.0.1:0 \
  --metrics 127.0.0.1:0 > "$work/coord.out" 2> "$work/coord.err" &
coord_pid=$!
port=
for _ in $(seq 1 300); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/coord.out")
  [[ -n $port ]] && break
  kill -0 "$coord_pid" 2>/dev/null || { cat "$work/coord.err"; exit 1; }
  sleep 0.1
done
[[ -n $port ]] || { echo "the coordinator did not start listening" >&2; cat "$work/coord.err"; exit 1; }

mapfile -t tokens < "$work/coord/enroll-tokens.txt"
status=0
timeout 300 "$prog" "$model" "$work" "127.0.0.1:$port" "$work/coord/tls/ca.pem" \
  "${tokens[0]}" "${tokens[1]}" "$work/release.key.pub" || status=$?
stop_coordinator
if [[ $status -ne 0 ]]; then
  echo "--- coordinator log" >&2; tail -30 "$work/coord.out" >&2; tail -30 "$work/coord.err" >&2
  exit "$status"
fi
summary=$(timeout 60 "$fedlora" coordinator status --json --state "$work/coord")
grep -q '"rounds_committed":1' <<< "$summary" || { echo "status: $summary" >&2; exit 1; }
echo "coordinator: 1 round committed from the two C API devices"
