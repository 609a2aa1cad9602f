#!/usr/bin/env bash
# Installs the Debian packages thpad needs (espeak-ng for the sample corpus's speech).
# Idempotent: does nothing when they are present. Fails with a clear message when it cannot install.
set -euo pipefail

needed=()
command -v espeak-ng >/dev/null 2>&1 || needed+=(espeak-ng)

if [ ${#needed[@]} -eq 0 ]; then
  echo "system packages: present"
  exit 0
fi

echo "system packages: installing ${needed[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo_cmd=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo_cmd=(sudo -n)
else
  echo "error: thpad needs the Debian package(s) ${needed[*]} and cannot install them without root." >&2
  echo "       Run as root: apt-get update && apt-get install -y ${needed[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: apt-get not found; install ${needed[*]} with your system's package manager." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq "${needed[@]}" >/dev/null
command -v espeak-ng >/dev/null 2>&1 || { echo "error: espeak-ng still missing after apt-get install" >&2; exit 1; }
echo "system packages: installed ${needed[*]}"
