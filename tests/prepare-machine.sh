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
# Security groups of bought ECS instances are enforced with nftables inside each lab host.
command -v nft >/dev/null || [ -x /usr/sbin/nft ] || need_pkgs+=(nftables)
command -v ssh-keygen >/dev/null || need_pkgs+=(openssh-client)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v mariadb >/dev/null || need_pkgs+=(mariadb-client)
# RDS PostgreSQL's stand-in servers (initdb/postgres run as the postgres user) and a
# transaction-mode pooler for the datastore check's refusal.
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need_pkgs+=(postgresql)
[ -x /usr/sbin/pgbouncer ] || need_pkgs+=(pgbouncer)
# Embedded etcd (K3s --cluster-init): the stand-in runs a real etcd member per server and
# etcdctl for snapshot save/restore (sandbox/k3s/etcd.py).
[ -x /usr/bin/etcd ] || need_pkgs+=(etcd-server)
[ -x /usr/bin/etcdctl ] || need_pkgs+=(etcd-client)
# docker-compose (v1, Python) validates docker-compose.yml against the Compose
# Specification's schema without a Docker engine (tests/engine/test_deployment_files.py).
command -v docker-compose >/dev/null || need_pkgs+=(docker-compose)
# Debian's own kubectl (kubernetes-client) only when none is on the PATH already.
command -v kubectl >/dev/null || need_pkgs+=(kubernetes-client)
# The page benchmark (benchmarks/ui_latency.py) drives gunicorn with wrk.
command -v wrk >/dev/null || need_pkgs+=(wrk)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    fail "missing ${need_pkgs[*]}; run: sudo apt-get install -y ${need_pkgs[*]} (or run make test as root)"
  fi
  say "installing ${need_pkgs[*]} (Debian packages the tests use)"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${need_pkgs[@]}" >/dev/null
fi
[ "$(id -u)" = 0 ] || fail "the lab tests need root (network namespaces, sshd, mariadbd): run make test as root"

# The adapter tests' datastore checks (tests/adapters/conftest.py) use the system MariaDB on
# 127.0.0.1:3306 with a root login without password, from loopback only; every other test
# starts private servers. A container has no init to start it, and Debian's root logs in by
# unix socket only, so both are seen to here.
tcp_login() { mariadb -uroot -h127.0.0.1 -P3306 --connect-timeout=3 -e "SELECT 1" >/dev/null 2>&1; }
if ! tcp_login; then
  if ! mariadb-admin ping >/dev/null 2>&1; then
    say "starting the system MariaDB"
    service mariadb start >/dev/null 2>&1 || service mysql start >/dev/null 2>&1 || true
    for _ in $(seq 30); do mariadb-admin ping >/dev/null 2>&1 && break; sleep 1; done
  fi
  mariadb-admin ping >/dev/null 2>&1 || fail "the system MariaDB does not start: see service mariadb status"
  say "adding the adapter tests' MariaDB login (root@127.0.0.1, no password, loopback only)"
  mariadb -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
  tcp_login || fail "MariaDB on 127.0.0.1:3306 refuses root without password (the adapter tests' login)"
fi
