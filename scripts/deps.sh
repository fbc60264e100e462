#!/usr/bin/env bash
# Installs the Debian packages the tests need when they are missing: a C
# toolchain for the firmware's host tests, the 32-bit ARM cross compiler,
# libcurl and libmosquitto for the firmware simulator, and the Mosquitto and
# PostgreSQL clients. Quick when everything is already there.
set -euo pipefail
PKGS=(gcc make pkg-config gcc-arm-none-eabi libnewlib-arm-none-eabi
      libcurl4-openssl-dev libmosquitto-dev mosquitto mosquitto-clients postgresql-client)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: install them (sudo apt-get install ${missing[*]}); tests that need them skip until then" >&2
  exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
