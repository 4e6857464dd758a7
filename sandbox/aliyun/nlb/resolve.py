"""How processes of the offline world resolve NLB DNS names through the DNS stand-in (dns.py).

Who resolves, and how (nothing edits the machine's own /etc files):
- lab hosts: their /etc/resolv.conf (private to each host) names the stand-in on the cloud
  address, port 53, as a VPC's resolver is named for ECS instances (sandbox/lab/hostinit.py);
- Python in the root namespace (the panel under test, its workers): `cloud_dns(server)`
  routes `socket.getaddrinfo` for names under the NLB suffix to the stand-in, leaving every
  other name to the system resolver; a worker process gets the same from
  `ALIYUN_EMULATOR_DNS=host:port` with `hook_dir()` on its PYTHONPATH (sitecustomize);
- any other program (kubectl): `resolved_command(argv, server)` runs it in a private mount
  namespace whose /etc/hosts (a copy of the machine's plus the stand-in's current answers)
  is bind-mounted over the real one, as `ip netns exec` does with /etc/netns/<ns>/hosts.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandbox.aliyun.nlb.dns import NOERROR, NXDOMAIN, parse_answer, query_packet
from sandbox.aliyun.nlb.product import DNS_SUFFIX

ENV = "ALIYUN_EMULATOR_DNS"
Server = tuple[str, int]


class NotResolved(OSError):
    """The stand-in does not know the name (NXDOMAIN), or did not answer."""


def parse_server(text: str) -> Server:
    host, _, port = text.rpartition(":")
    return (host, int(port)) if host else (text, 53)


def is_cloud_name(name: str) -> bool:
    name = name.rstrip(".").lower()
    return name.endswith("." + DNS_SUFFIX)


def query(name: str, server: Server, timeout: float = 2.0) -> list[str]:
    """The A addresses the stand-in gives for `name` (NotResolved when it has none)."""
    query_id = random.randrange(1, 0xFFFF)  # noqa: S311 - a DNS id, not a secret
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query_packet(name, query_id), server)
            packet = sock.recv(4096)
        except OSError as exc:
            raise NotResolved(f"{name}: no answer from {server[0]}:{server[1]} ({exc})") from exc
    rcode, addresses = parse_answer(packet)
    if rcode == NXDOMAIN or (rcode == NOERROR and not addresses):
        raise NotResolved(f"{name}: no such name")
    if rcode != NOERROR:
        raise NotResolved(f"{name}: answer code {rcode}")
    return addresses


def _resolving(server: Server, fallback: Any) -> Any:
    """A getaddrinfo that answers NLB names from the stand-in and hands everything else, and
    the numeric lookups of the answers, to `fallback` (whatever was installed before: the
    system's, or a test's network fence, which keeps applying)."""
    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0,  # noqa: PLR0917 - the socket API
                    proto: int = 0, flags: int = 0) -> Any:
        if isinstance(host, bytes):
            host = host.decode()
        if not isinstance(host, str) or not is_cloud_name(host):
            return fallback(host, port, family, type, proto, flags)
        if family not in (0, socket.AF_INET):
            raise socket.gaierror(socket.EAI_ADDRFAMILY, "no IPv6 address for the NLB name")
        try:
            addresses = query(host, server)
        except NotResolved as exc:
            raise socket.gaierror(socket.EAI_NONAME, str(exc)) from None
        found = []
        for address in addresses:
            found.extend(fallback(address, port, socket.AF_INET, type, proto,
                                  flags | socket.AI_NUMERICHOST))
        return found
    getaddrinfo.previous = fallback  # type: ignore[attr-defined]
    return getaddrinfo


def install(server: Server) -> None:
    """This process resolves NLB names through the stand-in from now on (over whatever
    resolver is installed now; `uninstall` puts that one back)."""
    socket.getaddrinfo = _resolving(server, socket.getaddrinfo)


def uninstall() -> None:
    previous = getattr(socket.getaddrinfo, "previous", None)
    if previous is not None:
        socket.getaddrinfo = previous


@contextlib.contextmanager
def cloud_dns(server: Server) -> Iterator[None]:
    """For the body: NLB names resolve through the stand-in in this process."""
    install(server)
    try:
        yield
    finally:
        uninstall()


def install_from_env() -> bool:
    """Install when ALIYUN_EMULATOR_DNS=host:port is set (what sitecustomize calls)."""
    value = os.environ.get(ENV, "")
    if value:
        install(parse_server(value))
    return bool(value)


def hook_dir() -> Path:
    """A directory to put first on a Python child's PYTHONPATH: its sitecustomize installs
    the hook from ALIYUN_EMULATOR_DNS."""
    return Path(__file__).resolve().parent / "pyhook"


def hosts_text(names: list[str], server: Server, base: str | None = None) -> str:
    """The machine's /etc/hosts plus one line per address of each resolvable NLB name."""
    text = base if base is not None else Path("/etc/hosts").read_text()
    lines = [text.rstrip("\n"), "# NLB names, from the emulator's DNS stand-in"]
    for name in names:
        with contextlib.suppress(NotResolved):
            lines.extend(f"{address}\t{name}" for address in query(name, server))
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def resolved_command(argv: list[str], server: Server, names: list[str]) -> Iterator[list[str]]:
    """A command line that runs `argv` with `names` resolving through the stand-in: in a
    private mount namespace (unshare, needs root, as the lab does) whose /etc/hosts is a
    temporary copy with the NLB lines bind-mounted over the real file. The file lives while
    the context is open; the machine's /etc/hosts is never written."""
    with tempfile.NamedTemporaryFile("w", prefix="nlb-hosts-", suffix=".txt") as hosts:
        hosts.write(hosts_text(names, server))
        hosts.flush()
        os.chmod(hosts.name, 0o644)
        yield ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
               'mount --bind "$0" /etc/hosts && exec "$@"', hosts.name, *argv]
