"""Tools from outside Python that some tests need, and the one line that says how to get them.

Why here: a missing sshd or mariadbd used to surface as dozens of setup errors with stack traces
deep inside the sandbox. Each fixture that needs a tool asks `require` first, so a test fails with
one line naming the package and the command that installs it (`make test` runs
tests/prepare-machine.sh, which installs every package below on a Debian machine).
"""

from __future__ import annotations

import os
import shutil

import pytest

# tool -> the Debian package that provides it (the list tests/prepare-machine.sh installs).
PACKAGES = {
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "chromium": "chromium",
    "kubectl": "kubernetes-client",
    "msgfmt": "gettext",
    "xgettext": "gettext",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "curl": "curl",
    "sudo": "sudo",
    "openssl": "openssl",
    "pgbouncer": "pgbouncer",
    "nft": "nftables",
    "docker-compose": "docker-compose",
}
# What every lab test (marked `lab`) needs: hosts are network namespaces running a real sshd,
# RDS runs a real mariadbd. Checked before the test starts (tests/conftest.py).
LAB_TOOLS = ("sshd", "ssh-keygen", "mariadbd", "mariadb-install-db", "ip", "nsenter", "unshare",
             "curl", "sudo", "openssl", "kubectl")
# sshd and mariadbd live in /usr/sbin, which a non-login shell's PATH may lack.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def missing(*tools: str) -> list[str]:
    """The tools among `tools` that are not installed."""
    return [tool for tool in tools if shutil.which(tool, path=SEARCH_PATH) is None]


def how_to_get(tools: list[str]) -> str:
    """One line: what is missing, and the two ways to install it."""
    packages = " ".join(sorted({PACKAGES.get(tool, tool) for tool in tools}))
    return (f"{', '.join(tools)} missing: `make test` installs it "
            f"(or: apt-get install -y {packages})")


def require(*tools: str) -> None:
    """Fail the current test with one line (no stack trace) when a tool is missing."""
    absent = missing(*tools)
    if absent:
        pytest.fail(how_to_get(absent), pytrace=False)


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        pytest.fail(f"needs root ({why}): run `make test` as root", pytrace=False)
