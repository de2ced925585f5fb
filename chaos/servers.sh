#!/usr/bin/env bash
# Throwaway servers that the chaos suite's outage scenario may stop and start again, never the
# ones other tests use. Reuses the CI scripts' own functions, so install, build and flags stay
# theirs. Usage: bash chaos/servers.sh postgres|ferretdb DIR
# Writes into DIR: <kind>.url (the URL), <kind>.down (stop the server only), <kind>.up (start it
# again on the same port and wait until it answers) and <kind>.stop (stop everything for good).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: servers.sh postgres|ferretdb DIR}
dir=${2:?usage: servers.sh postgres|ferretdb DIR}
mkdir -p "$dir"

case "$kind" in
  postgres)
    CI_TMP=$dir
    export CI_TMP
    # The CI script's functions without its last line (which starts the server at once), so that
    # the port comes from the kernel: its own first port nothing answers on may still be the local
    # end of a client's connection on this busy machine, and then the server cannot bind it.
    # shellcheck disable=SC1090
    source <(sed '/^pa_pg_start$/d' scripts/ci/postgres.sh)
    pa_pg_free_port() {
      node -e "const s=require('node:net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
    }
    # Starts the server (and PgBouncer, unused here) in $dir/postgres and writes $dir/postgres.stop.
    pa_pg_start >&2
    bin=$(pa_pg_bindir)
    as_pg=""
    [ "$(id -u)" != 0 ] || as_pg="runuser -u postgres --"
    data="$dir/postgres/data"
    # A fast stop ends every session and writes everything out, so nothing acknowledged is lost
    # with the server's fsync=off: the outage is the server's absence, not a lost disk.
    cat >"$dir/postgres.down" <<DOWN
cd / && $as_pg "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
DOWN
    cat >"$dir/postgres.up" <<UP
cd / && $as_pg "$bin/pg_ctl" -D "$data" -l "$dir/postgres/server.log" -w -t 60 start >/dev/null
UP
    echo "$PA_TEST_POSTGRES_URL" >"$dir/postgres.url"
    ;;
  ferretdb)
    FERRETDB_SOURCE_ONLY=1
    # shellcheck source=../scripts/ci/ferretdb.sh
    source scripts/ci/ferretdb.sh
    ferretdb_build >&2
    ferretdb_start "$dir/ferretdb" >&2
    ferretdb_write_stop "$dir/ferretdb" "$dir/ferretdb.stop"
    # Down is a SIGKILL. Up replays the exact command line the CI script used (read back from
    # /proc before the kill), so the server returns on the same port with the same data.
    cat >"$dir/ferretdb.down" <<'DOWN'
set -euo pipefail
d=$(dirname "$0")/ferretdb
pid=$(cat "$d/pid")
tr '\0' '\n' <"/proc/$pid/cmdline" >"$d/cmdline"
kill -9 "$pid"
for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.05; done
echo "FerretDB $pid survived SIGKILL" >&2
exit 1
DOWN
    cat >"$dir/ferretdb.up" <<UP
set -euo pipefail
cd "$PWD"
FERRETDB_SOURCE_ONLY=1 source scripts/ci/ferretdb.sh
d="$dir/ferretdb"
mapfile -t args <"\$d/cmdline"
DO_NOT_TRACK=1 FERRETDB_TELEMETRY=disable nohup "\${args[@]}" >>"\$d/ferretdb.log" 2>&1 &
echo \$! >"\$d/pid"
for i in \$(seq 1 200); do
  ferretdb_answers "\$(cat "\$d/port")" && exit 0
  kill -0 "\$(cat "\$d/pid")" 2>/dev/null || { tail -n 20 "\$d/ferretdb.log" >&2; exit 1; }
  sleep 0.1
done
echo "FerretDB did not answer within 20 s" >&2
exit 1
UP
    echo "$PA_TEST_MONGODB_URL" >"$dir/ferretdb.url"
    ;;
  *)
    echo "unknown server kind: $kind" >&2
    exit 2
    ;;
esac
