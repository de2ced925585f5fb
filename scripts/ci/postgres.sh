# Installs PostgreSQL (and PgBouncer) from Debian's packages when they are missing, starts a
# throwaway server on 127.0.0.1 (data, socket and logs under $CI_TMP) with PgBouncer in transaction
# pooling mode in front of it, and exports PA_TEST_POSTGRES_URL and PA_TEST_PGBOUNCER_URL.
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
  # Usage: pa_pg_install PACKAGE...; `apt-get update` runs once per shell.
  if [ "$(id -u)" != 0 ]; then
    echo "missing $*; run: sudo apt-get install -y $*" >&2
    return 1
  fi
  # The postgresql package would create and start a 'main' cluster on port 5432; we only want
  # the binaries.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/pulling-agent.conf
  if [ -z "${pa_pg_apt_updated:-}" ]; then
    apt-get update
    pa_pg_apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

pa_pg_bouncer() {
  # Debian installs it in /usr/sbin, which a non-login shell may not have in PATH.
  command -v pgbouncer 2>/dev/null || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true
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
  local bin dir port as_pg user=pulling_agent db=pulling_agent_test password
  # A password found nowhere else, so that a test can search all output for it.
  password="pa-$(od -An -N12 -tx1 /dev/urandom | tr -d " \n")"
  bin=$(pa_pg_bindir)
  if [ -z "$bin" ]; then
    if [ -n "$(pa_pg_bouncer)" ]; then pa_pg_install postgresql; else pa_pg_install postgresql pgbouncer; fi
    bin=$(pa_pg_bindir)
    [ -n "$bin" ] || { echo "PostgreSQL install did not provide initdb" >&2; return 1; }
  fi
  dir="$CI_TMP/postgres"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    # initdb and PgBouncer refuse to run as root: they run as the postgres OS user, which must be
    # able to reach its directory inside the (0700) temp dir.
    id -u postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/false postgres
    chmod 711 "$CI_TMP"
    chown postgres: "$dir"
    as_pg="runuser -u postgres --"
  else
    as_pg=""
  fi
  port=$(pa_pg_free_port)

  (cd / && $as_pg "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --no-locale --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1) ||
    { cat "$dir/initdb.log" >&2; return 1; }
  # In the cluster's own configuration, so that a `pg_ctl restart` (a test of server restarts, or
  # a developer's) keeps them. Durability is not needed for a throwaway test server.
  $as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  (cd / && $as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null) ||
    { cat "$dir/server.log" >&2; return 1; }
  cat >"$CI_TMP/postgres.stop" <<STOP
cd / && $as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null && echo "PostgreSQL on port $port stopped"
STOP

  # A password-authenticated owner of the test database, as an agent would connect.
  (cd / && $as_pg "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE $user LOGIN PASSWORD '$password'" -c "CREATE DATABASE $db OWNER $user")
  export PA_TEST_POSTGRES_URL="postgres://$user:$password@127.0.0.1:$port/$db"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $dir)"
  echo "export PA_TEST_POSTGRES_URL=$PA_TEST_POSTGRES_URL"
  pa_pg_start_pgbouncer "$dir" "$port" "$user" "$password" "$db" "$as_pg"
}

pa_pg_start_pgbouncer() {
  # PgBouncer in transaction pooling mode in front of the server, for the test that the store
  # detects it (LISTEN cannot work there) and says so, while everything else still works.
  local dir=$1 pg_port=$2 user=$3 password=$4 db=$5 as_pg=$6 port bouncer
  bouncer=$(pa_pg_bouncer)
  if [ -z "$bouncer" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "PgBouncer is not installed: its test is skipped (sudo apt-get install -y pgbouncer)" >&2
      return 0
    fi
    pa_pg_install pgbouncer
    bouncer=$(pa_pg_bouncer)
  fi
  port=$(pa_pg_free_port)
  cat >"$dir/pgbouncer.ini" <<INI
[databases]
$db = host=127.0.0.1 port=$pg_port dbname=$db
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/pgbouncer.users
pool_mode = transaction
default_pool_size = 5
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
  printf '"%s" "%s"\n' "$user" "$password" >"$dir/pgbouncer.users"
  [ -z "$as_pg" ] || chown postgres: "$dir/pgbouncer.ini" "$dir/pgbouncer.users"
  (cd / && $as_pg "$bouncer" -d -q "$dir/pgbouncer.ini") || { cat "$dir/pgbouncer.log" >&2; return 1; }
  cat >>"$CI_TMP/postgres.stop" <<STOP
[ -f "$dir/pgbouncer.pid" ] && kill "\$(cat "$dir/pgbouncer.pid")" && echo "PgBouncer on port $port stopped"
STOP
  local tries=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -lt 100 ] || { echo "PgBouncer did not listen on $port" >&2; cat "$dir/pgbouncer.log" >&2; return 1; }
    sleep 0.1
  done
  export PA_TEST_PGBOUNCER_URL="postgres://$user:$password@127.0.0.1:$port/$db"
  echo "PgBouncer $("$bouncer" --version | head -n 1 | awk '{print $2}') (transaction pooling) on 127.0.0.1:$port"
  echo "export PA_TEST_PGBOUNCER_URL=$PA_TEST_PGBOUNCER_URL"
}

pa_pg_start
