# Installs Debian's chromium when it is missing (the dashboard's browser tests drive it through
# playwright-core, which downloads no browser) and exports CHROMIUM_PATH.
# Sourced by .ci/run (set -euo pipefail, as root). Only pa_chromium_* names are left behind.

pa_chromium_path=/usr/bin/chromium
if [ ! -x "$pa_chromium_path" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing chromium; run: sudo apt-get install -y chromium" >&2
    return 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
# Debian's wrapper script prints a harmless shell warning on some machines; the version is what counts.
"$pa_chromium_path" --version 2>/dev/null | grep -q Chromium || {
  echo "$pa_chromium_path does not run" >&2
  return 1
}
export CHROMIUM_PATH="$pa_chromium_path"
echo "Chromium: $("$CHROMIUM_PATH" --version 2>/dev/null)"
