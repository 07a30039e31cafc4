#!/usr/bin/env bash
# Installs the Debian packages snakepit needs to build, test and benchmark, when
# any is missing. Usage: scripts/install-deps.sh [build|test|bench|deb]
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libuv1-dev libyaml-dev libjansson-dev
            python3-dev python3-numpy libmicrohttpd-dev libcurl4-openssl-dev libnats-dev)
test_pkgs=(libcmocka-dev python3-pytest python3-pandas chromium python3-prometheus-client
           nats-server)
bench_pkgs=(wrk uwsgi uwsgi-plugin-python3)
deb_pkgs=(dpkg-dev)   # dpkg-shlibdeps, for the Debian package's dependencies

want=("${build_pkgs[@]}")
case "${1:-build}" in
  build) ;;
  test) want+=("${test_pkgs[@]}") ;;
  bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  deb) want+=("${deb_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench|deb]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing missing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "error: not root and no sudo; install these packages: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
