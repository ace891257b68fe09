#!/usr/bin/env bash
# Installs sluice's build and test dependencies from Debian 12 packages.
# Skips apt entirely when everything is already installed. Needs root (or sudo).
set -euo pipefail

SLUICE_PACKAGES=(
  build-essential cmake pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libhiredis-dev libspdlog-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev libre2-dev nlohmann-json3-dev libcpp-httplib-dev
  redis-server openssl python3 procps python3-yaml
  clang libclang-rt-14-dev
  # The web view's browser test (tests/e2e/web/web_browser_test.py).
  chromium chromium-driver python3-selenium parallel
)

missing=()
for p in "${SLUICE_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
