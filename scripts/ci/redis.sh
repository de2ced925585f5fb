# Debian's redis-server, for the benchmark's BullMQ comparison (`npm run bench`): installed when
# missing. Nothing is started here: the benchmark starts its own server on a free 127.0.0.1 port
# without persistence and stops it. The package's own service is kept from starting (policy-rc.d),
# so that no Redis is left listening on 6379. Sourced by .ci/run (set -euo pipefail).

pa_redis_binary() {
  command -v redis-server 2>/dev/null || { [ -x /usr/bin/redis-server ] && echo /usr/bin/redis-server; } || true
}

pa_redis_install() {
  local policy=/usr/sbin/policy-rc.d created=""
  if [ -n "$(pa_redis_binary)" ]; then
    echo "redis-server $("$(pa_redis_binary)" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p') is installed"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "redis-server is missing; run: sudo apt-get install -y redis-server" >&2
    return 1
  fi
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created=1
  fi
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server; }; then
    [ -z "$created" ] || rm -f "$policy"
    return 1
  fi
  [ -z "$created" ] || rm -f "$policy"
  [ -n "$(pa_redis_binary)" ] || { echo "the redis-server package did not provide redis-server" >&2; return 1; }
  echo "redis-server installed: $("$(pa_redis_binary)" --version)"
}

pa_redis_install
