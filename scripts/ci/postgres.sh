# Installs PostgreSQL from Debian's packages when it is missing, starts a throwaway server on
# 127.0.0.1 (data, socket and log under $CI_TMP) and exports PA_TEST_POSTGRES_URL for the tests.
# Sourced by .ci/run (set -euo pipefail, $CI_TMP set; every $CI_TMP/*.stop runs at exit) and by
# scripts/dev/postgres.sh. Only pa_pg_* names are left behind in the sourcing shell.

pa_pg_bindir() {
  # Debian keeps the server binaries out of PATH, in /usr/lib/postgresql/<major>/bin.
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
    echo "$dir"
  elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(command -v initdb)"
  fi
}

pa_pg_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL is not installed; run: sudo apt-get install -y postgresql" >&2
    return 1
  fi
  # The package would create and start a 'main' cluster on port 5432; we only want the binaries.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/pulling-agent.conf
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
}

pa_pg_free_port() {
  local port
  for port in $(seq 55432 55532); do
    # Nothing answers on the port: connecting fails, so it is free.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  echo "no free port in 55432-55532" >&2
  return 1
}

pa_pg_start() {
  local bin dir port as_pg user=pulling_agent password=pulling_agent db=pulling_agent_test
  bin=$(pa_pg_bindir)
  if [ -z "$bin" ]; then
    pa_pg_install
    bin=$(pa_pg_bindir)
    [ -n "$bin" ] || { echo "PostgreSQL install did not provide initdb" >&2; return 1; }
  fi
  dir="$CI_TMP/postgres"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root: the cluster belongs to the postgres OS user, which must be
    # able to reach its data directory inside the (0700) temp dir.
    id -u postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/false postgres
    chmod 711 "$CI_TMP"
    chown postgres: "$dir"
    as_pg="runuser -u postgres --"
  else
    as_pg=""
  fi
  port=$(pa_pg_free_port)

  (cd / && $as_pg "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1) ||
    { cat "$dir/initdb.log" >&2; return 1; }
  (cd / && $as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off" >/dev/null) ||
    { cat "$dir/server.log" >&2; return 1; }
  cat >"$CI_TMP/postgres.stop" <<EOF
cd / && $as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null && echo "PostgreSQL on port $port stopped"
EOF

  # A password-authenticated owner of the test database, as an agent would connect.
  (cd / && $as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE $user LOGIN PASSWORD '$password'" -c "CREATE DATABASE $db OWNER $user")
  export PA_TEST_POSTGRES_URL="postgres://$user:$password@127.0.0.1:$port/$db"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
  echo "export PA_TEST_POSTGRES_URL=$PA_TEST_POSTGRES_URL"
}

pa_pg_start
