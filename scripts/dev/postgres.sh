#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for running the PostgreSQL tests locally (installing Debian's
# packages first when they are missing and you are root), prints the export lines and how to stop it.
#   bash scripts/dev/postgres.sh                # then paste the export lines it prints
#   eval "$(bash scripts/dev/postgres.sh)"      # or let the shell run the export lines
# The server keeps running after this script ends; stop it with the command it prints.
set -euo pipefail
cd "$(dirname "$0")/../.."
CI_TMP=$(mktemp -d /tmp/pulling-agent-pg.XXXXXX)
export CI_TMP
# shellcheck source=../ci/postgres.sh
source scripts/ci/postgres.sh >&2
echo "export PA_TEST_POSTGRES_URL=$PA_TEST_POSTGRES_URL"
[ -z "${PA_TEST_PGBOUNCER_URL:-}" ] || echo "export PA_TEST_PGBOUNCER_URL=$PA_TEST_PGBOUNCER_URL"
echo "# stop it with: bash $CI_TMP/postgres.stop && rm -rf $CI_TMP" >&2
