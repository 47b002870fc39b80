#!/usr/bin/env bash
# Install the Debian packages given as arguments, skipping those already installed.
# Services the packages ship are not started on this machine: tests and the lab start their own.
set -euo pipefail

missing=()
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
        echo "error: need root (or sudo) to install Debian packages: ${missing[*]}" >&2
        exit 1
    fi
else
    SUDO=
fi

echo "==> installing Debian packages: ${missing[*]}"
# policy-rc.d exit 101 tells the maintainer scripts not to start daemons (postgresql, redis-server).
policy=/usr/sbin/policy-rc.d
placed_policy=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 0755 "$policy"
    placed_policy=1
fi
cleanup() { if [ -n "$placed_policy" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
