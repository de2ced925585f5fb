# Debian's libfaketime, for the chaos suite's clock scenario (chaos/faketime.ts preloads it into
# one agent process to move its wall clock): installed when missing. Sourced by .ci/run
# (set -euo pipefail).

pa_faketime_lib() {
  local lib
  for lib in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
    [ -e "$lib" ] && { echo "$lib"; return 0; }
  done
  return 0
}

pa_faketime_install() {
  if [ -n "$(pa_faketime_lib)" ]; then
    echo "libfaketime is installed: $(pa_faketime_lib)"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "libfaketime is missing; run: sudo apt-get install -y faketime" >&2
    return 1
  fi
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends faketime
  [ -n "$(pa_faketime_lib)" ] || { echo "the faketime package did not provide libfaketime.so.1" >&2; return 1; }
  echo "libfaketime installed: $(pa_faketime_lib)"
}

pa_faketime_install
