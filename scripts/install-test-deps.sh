#!/usr/bin/env bash
# System packages the test suite uses beyond Python: runc and a static busybox for the
# node engine's OCI runtime tests (a container from a busybox root filesystem).
# Installs them with apt-get when they are missing and this runs as root on Debian or
# Ubuntu; otherwise it says so and those tests skip with a reason.
set -euo pipefail

missing=()
command -v runc >/dev/null 2>&1 || missing+=(runc)
[ -x /bin/busybox ] || missing+=(busybox-static)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} for the OCI runtime tests"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -q >/dev/null 2>&1 || true
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
            echo "could not install ${missing[*]}; the OCI runtime tests will skip"
    fi
else
    echo "${missing[*]} not installed (needs root and apt-get); the OCI runtime tests will skip"
fi
