#!/usr/bin/env bash
# The main job on built-in defaults: set up, build, then pretrain a small base model on the
# synthetic personas' public text and simulate 200 devices for 10 rounds of federated LoRA
# with distributed DP and secure aggregation. Ends with the base / federated / personalized
# table and epsilon; the report is in sim-out/report.md. Extra arguments go to `fedlora sim`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh --setup main fedlora
# --force: the main job rewrites its own sim-out/ when run again.
exec ./build/bin/fedlora sim --force "$@"
