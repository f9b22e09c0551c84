#!/usr/bin/env bash
# Latency as a legacy app sees it: a fake WeBank over TLS behind a 20 ms
# relay, called directly (a new HTTPS connection per call, or a keep-alive
# pool) and through the webank_sign sidecar. See main.go's doc for what it
# measures and bench/RESULTS.md for figures. Flags go to the program:
#
#   bench/latency/run.sh             # about 2 minutes, after the first build
#   bench/latency/run.sh -n 100      # shorter
#   bench/latency/run.sh -h          # every flag
#
# Everything runs in one process on 127.0.0.1 and stops when it exits.
set -euo pipefail
cd "$(dirname "$0")"
exec go run . "$@"
