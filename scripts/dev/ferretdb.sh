#!/usr/bin/env bash
# Developer FerretDB for the MongoDB store tests: `scripts/dev/ferretdb.sh` builds it if needed
# (cached, once per machine), starts it in the background on a free 127.0.0.1 port and prints the
# export line; `scripts/dev/ferretdb.sh stop` stops it. State lives in $PA_FERRETDB_DEV_DIR
# (default /tmp/pulling-agent-ferretdb-dev).
#
#   eval "$(scripts/dev/ferretdb.sh | grep ^export)"; npm test -- mongodb; scripts/dev/ferretdb.sh stop
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${PA_FERRETDB_DEV_DIR:-/tmp/pulling-agent-ferretdb-dev}"
FERRETDB_SOURCE_ONLY=1
# shellcheck source=../ci/ferretdb.sh
source scripts/ci/ferretdb.sh

case "${1:-start}" in
  start)
    if [ -f "$dir/pid" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "FerretDB already running (pid $(cat "$dir/pid"))" >&2
      echo "export PA_TEST_MONGODB_URL=mongodb://127.0.0.1:$(cat "$dir/port")/"
      exit 0
    fi
    rm -rf "$dir"
    ferretdb_build >&2
    ferretdb_start "$dir" >&2
    ferretdb_write_stop "$dir" "$dir/stop.sh"
    echo "export PA_TEST_MONGODB_URL=$PA_TEST_MONGODB_URL"
    echo "# stop it with: scripts/dev/ferretdb.sh stop" >&2
    ;;
  stop)
    if [ -f "$dir/stop.sh" ]; then bash "$dir/stop.sh"; rm -rf "$dir"; echo "FerretDB stopped" >&2; fi
    ;;
  *)
    echo "usage: $0 [start|stop]" >&2
    exit 2
    ;;
esac
