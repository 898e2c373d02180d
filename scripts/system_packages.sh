#!/usr/bin/env bash
# System packages the tests need that PyPI does not provide: Debian's faketime (clock
# offset tests of the election modules). Installs what is missing; does nothing otherwise.
set -euo pipefail
missing=()
command -v faketime >/dev/null 2>&1 || missing+=(faketime)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]} (run: sudo apt-get install -y ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq "${missing[@]}" >/dev/null
echo "installed ${missing[*]}"
