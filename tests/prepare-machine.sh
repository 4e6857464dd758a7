#!/usr/bin/env bash
# What the test suite needs on this machine beyond Python: Debian packages for the offline world
# (real sshd in lab hosts, MariaDB behind emulated RDS, Chromium for browser tests, gettext for
# translations, curl and sudo on lab hosts) and kubectl. `make test` runs this first, so a fresh
# Debian machine needs nothing else. As root it installs what is missing; otherwise it names the
# one command that would, and stops.
set -euo pipefail

say() { echo "prepare-machine: $*"; }
fail() { echo "prepare-machine: $*" >&2; exit 1; }

need_pkgs=()
command -v sshd >/dev/null || [ -x /usr/sbin/sshd ] || need_pkgs+=(openssh-server)
[ -x /usr/sbin/mariadbd ] || need_pkgs+=(mariadb-server)
command -v chromium >/dev/null || need_pkgs+=(chromium)
command -v msgfmt >/dev/null || need_pkgs+=(gettext)
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_pkgs+=(fonts-wqy-microhei)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v nsenter >/dev/null || need_pkgs+=(util-linux)
command -v sudo >/dev/null || need_pkgs+=(sudo)
command -v ssh-keygen >/dev/null || need_pkgs+=(openssh-client)
# Debian's own kubectl (kubernetes-client) only when none is on the PATH already.
command -v kubectl >/dev/null || need_pkgs+=(kubernetes-client)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    fail "missing ${need_pkgs[*]}; run: sudo apt-get install -y ${need_pkgs[*]} (or run make test as root)"
  fi
  say "installing ${need_pkgs[*]} (Debian packages the tests use)"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${need_pkgs[@]}" >/dev/null
fi
# mariadb-server's postinst starts a system server; the tests start their own private ones.
[ "$(id -u)" = 0 ] || fail "the lab tests need root (network namespaces, sshd, mariadbd): run make test as root"
