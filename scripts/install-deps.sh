#!/usr/bin/env bash
# Install posguard's build and test dependencies from Debian packages.
# Idempotent: does nothing (and needs no network) when all are present.
# Used by the README's commands and by .ci/run.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config
  libjemalloc-dev libyaml-dev libjsmn-dev libxxhash-dev libcmocka-dev
  clang clang-format libclang-rt-14-dev
  python3 python3-yaml python3-xxhash python3-jsonschema
  librdkafka-dev protobuf-c-compiler libprotobuf-c-dev kcat
  maven openjdk-17-jre-headless
  g++ libbenchmark-dev libck-dev liburcu-dev
  libmicrohttpd-dev prometheus chromium chromium-driver python3-selenium
  bsdutils
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "posguard: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "posguard: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
