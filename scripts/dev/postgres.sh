#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for running the PostgreSQL tests locally (installing Debian's
# package first when it is missing and you are root), and prints the export line and how to stop it.
#   bash scripts/dev/postgres.sh            # then paste the export line it prints
#   eval "$(bash scripts/dev/postgres.sh | grep '^export ')"
# The server keeps running after this script ends; stop it with the command it prints.
set -euo pipefail
cd "$(dirname "$0")/../.."
CI_TMP=$(mktemp -d /tmp/pulling-agent-pg.XXXXXX)
export CI_TMP
# shellcheck source=../ci/postgres.sh
source scripts/ci/postgres.sh >&2
echo "export PA_TEST_POSTGRES_URL=$PA_TEST_POSTGRES_URL"
echo "# stop it with: bash $CI_TMP/postgres.stop && rm -rf $CI_TMP" >&2
