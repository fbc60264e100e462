#!/usr/bin/env bash
# Installs the Debian packages the tests and `make demo` need when they are
# missing: a C toolchain for the firmware's host tests, the 32-bit ARM cross
# compiler, libcurl and libmosquitto for the firmware simulator, the Mosquitto
# broker and clients, the PostgreSQL server and client (scripts/services.sh
# starts a private server from them when none is running), promtool (Debian's
# prometheus package) for the alert rules, iproute2 (ip netns) and curl for the
# bare-machine test, Chromium for the console's browser tests and poppler-utils
# (pdftoppm) to read back the QR codes of printed labels, and wrk, the second
# load generator of `make bench` (docs/performance.md). Quick when
# everything is already there.
#
# Installing never starts a service: a policy-rc.d denies it for the duration,
# so neither PostgreSQL nor Prometheus (which would take port 9090) comes up.
set -euo pipefail
PKGS=(gcc make pkg-config gcc-arm-none-eabi libnewlib-arm-none-eabi
      libcurl4-openssl-dev libmosquitto-dev mosquitto mosquitto-clients
      postgresql postgresql-client prometheus iproute2 curl chromium poppler-utils wrk)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Prometheus comes for promtool; its server is kept from starting at boot
# where systemd runs (it would take *:9090, the demo emulator's port), also
# when an earlier run installed it. Root only, like the installs.
if [[ $(id -u) -eq 0 ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]] &&
  systemctl is-enabled prometheus >/dev/null 2>&1; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "deps: missing Debian packages: ${missing[*]}" >&2
  echo "deps: install them (sudo apt-get install ${missing[*]}); tests that need them skip until then" >&2
  exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\n# scripts/deps.sh: install packages without starting their services\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true # as above, for a fresh install
fi
