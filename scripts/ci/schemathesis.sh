# Installs schemathesis (from PyPI, pinned) into a cached virtual environment and exports
# SCHEMATHESIS for scripts/fuzz.mjs. Sourced by .ci/run (set -euo pipefail).
SCHEMATHESIS_VERSION=4.32.5
pa_st_venv="${XDG_CACHE_HOME:-$HOME/.cache}/pulling-agent/schemathesis-$SCHEMATHESIS_VERSION"
if ! "$pa_st_venv/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "schemathesis: installing $SCHEMATHESIS_VERSION into $pa_st_venv"
  rm -rf "$pa_st_venv"
  python3 -m venv "$pa_st_venv"
  "$pa_st_venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
export SCHEMATHESIS="$pa_st_venv/bin/schemathesis"
echo "schemathesis: $("$SCHEMATHESIS" --version)"
