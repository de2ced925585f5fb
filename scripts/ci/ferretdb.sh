# FerretDB 1.24.2 (a MongoDB wire-protocol server on SQLite, without change streams) for the
# MongoDB store tests. Sourced by .ci/run (set -euo pipefail, $CI_TMP set; $CI_TMP/*.stop run at
# exit) and by scripts/dev/ferretdb.sh. Builds the binary once per machine into the cache, starts
# it on free 127.0.0.1 ports with telemetry off, waits for a real ping and exports
# PA_TEST_MONGODB_URL.
#
# Why not plain `go install …@v1.24.2`: that binary panics at start-up ("Invalid
# build/version/version.txt file content"), because the version file FerretDB embeds is generated
# by its release tooling and is absent from the module. So the module source is copied, the file
# written, and `go build` run on the copy. Only the Go module proxy is used.

FERRETDB_VERSION=1.24.2
FERRETDB_BIN="${FERRETDB_BIN:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/pulling-agent/ferretdb-$FERRETDB_VERSION/ferretdb}"

ferretdb_build() {
  if [ -x "$FERRETDB_BIN" ] && DO_NOT_TRACK=1 "$FERRETDB_BIN" --version >/dev/null 2>&1; then
    echo "FerretDB: using cached $FERRETDB_BIN"
    return 0
  fi
  echo "FerretDB: building v$FERRETDB_VERSION into $FERRETDB_BIN (once per machine, about a minute)"
  local work module_dir
  work=$(mktemp -d)
  module_dir=$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@v$FERRETDB_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$module_dir" ] || [ ! -d "$module_dir" ]; then
    echo "FerretDB: go mod download did not give the module's folder" >&2
    rm -rf "$work"
    return 1
  fi
  cp -r "$module_dir" "$work/src"
  chmod -R u+w "$work/src"
  echo "v$FERRETDB_VERSION" >"$work/src/build/version/version.txt"
  mkdir -p "$(dirname "$FERRETDB_BIN")"
  (cd "$work/src" && DO_NOT_TRACK=1 go build -trimpath -o "$work/ferretdb" ./cmd/ferretdb)
  DO_NOT_TRACK=1 "$work/ferretdb" --version >/dev/null
  mv -f "$work/ferretdb" "$FERRETDB_BIN" # atomic: an interrupted build never leaves a broken binary
  rm -rf "$work"
}

ferretdb_free_port() {
  node -e "const s=require('node:net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# A real round trip when the driver is installed, else an open TCP port.
ferretdb_answers() {
  local port=$1
  if [ -d node_modules/mongodb ]; then
    node --input-type=module -e "
      import { MongoClient } from 'mongodb';
      const c = new MongoClient('mongodb://127.0.0.1:$port/', { serverSelectionTimeoutMS: 1000 });
      try { await c.db('admin').command({ ping: 1 }); } finally { await c.close(); }" >/dev/null 2>&1
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
  fi
}

# ferretdb_start DIR: starts one server with its data, state and log in DIR; writes DIR/pid and
# DIR/port, and exports PA_TEST_MONGODB_URL.
ferretdb_start() {
  local dir=$1 port debug_port pid i
  mkdir -p "$dir/data" "$dir/state"
  port=$(ferretdb_free_port)
  debug_port=$(ferretdb_free_port)
  DO_NOT_TRACK=1 FERRETDB_TELEMETRY=disable nohup "$FERRETDB_BIN" \
    --handler=sqlite --sqlite-url="file:$dir/data/" --state-dir="$dir/state" \
    --listen-addr="127.0.0.1:$port" --debug-addr="127.0.0.1:$debug_port" \
    --telemetry=disable --log-level=WARN >"$dir/ferretdb.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/pid"
  echo "$port" >"$dir/port"
  for i in $(seq 1 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "FerretDB exited at start-up:" >&2
      tail -n 30 "$dir/ferretdb.log" >&2
      return 1
    fi
    if ferretdb_answers "$port"; then
      export PA_TEST_MONGODB_URL="mongodb://127.0.0.1:$port/"
      echo "FerretDB $FERRETDB_VERSION answers on 127.0.0.1:$port (pid $pid, data in $dir)"
      return 0
    fi
    sleep 0.2
  done
  echo "FerretDB did not answer on 127.0.0.1:$port within 20 s:" >&2
  tail -n 30 "$dir/ferretdb.log" >&2
  kill "$pid" 2>/dev/null || true
  return 1
}

# ferretdb_write_stop DIR FILE: a script that stops the server started in DIR.
ferretdb_write_stop() {
  local dir=$1 file=$2
  cat >"$file" <<STOP
pid=\$(cat "$dir/pid" 2>/dev/null || true)
if [ -n "\$pid" ] && kill -0 "\$pid" 2>/dev/null; then
  kill "\$pid"
  for i in \$(seq 1 50); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "\$pid" 2>/dev/null || true
fi
STOP
}

if [ -n "${CI_TMP:-}" ] && [ "${FERRETDB_SOURCE_ONLY:-}" != 1 ]; then
  ferretdb_build
  ferretdb_start "$CI_TMP/ferretdb"
  ferretdb_write_stop "$CI_TMP/ferretdb" "$CI_TMP/ferretdb.stop"
fi
