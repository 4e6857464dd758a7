"""Other "machines" on this one: network namespaces that reach PostgreSQL and Redis over a
network, as a second worker host would (benchmarks/two_machines.py and its test).

Each machine is a network namespace of ours, plugged into a bridge of ours with one veth, as
the lab plugs its hosts (sandbox/lab/network.py: no default route, no forwarding, no NAT,
names derived from a prefix so that cleanup deletes ours only). A process inside reaches
nothing but the bridge's address; there this module binds TCP relays to the services on
loopback, so the workers' database and broker traffic crosses the veth as it would cross a
real network. The subnet comes from the lab's range (sandbox.lab.network.CANDIDATE_BASE),
which the tests' network fence allows.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from sandbox.lab import names, network


@dataclass
class Relay:
    """A listener on `bind` that copies each connection to `target` (host, port) or a Unix
    socket path, both ways, until either side closes."""

    bind: str
    target: tuple[str, int] | str
    port: int = 0
    _listener: socket.socket | None = None
    _connections: list[socket.socket] = field(default_factory=list)

    def start(self) -> Relay:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.bind, 0))
        listener.listen(128)
        self._listener, self.port = listener, listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name=f"relay-{self.port}").start()
        return self

    def _connect(self) -> socket.socket:
        if isinstance(self.target, str):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
        else:
            upstream = socket.create_connection(self.target)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return upstream

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = self._connect()
            except OSError:
                client.close()
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for sock in [self._listener, *self._connections]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


class Machines:
    """`count` network namespaces ("machines") on a bridge of ours; `relay_url` gives the
    URL of a loopback service as seen from inside them."""

    def __init__(self, count: int, prefix: str | None = None) -> None:
        self.prefix = names.check_prefix(prefix or f"tm{os.getpid() % 10**7}")
        self.count = count
        self.gateway = ""
        self.netns: list[str] = []
        self.relays: list[Relay] = []

    def __enter__(self) -> Machines:
        try:
            with network.subnet_lock():
                subnet = network.pick_free_subnet()
                hosts = list(subnet.hosts())
                self.gateway = str(hosts[0])
                network.create_bridge(names.bridge(self.prefix),
                                      f"{self.gateway}/{subnet.prefixlen}")
            for index in range(1, self.count + 1):
                netns = names.host_netns(self.prefix, index)
                network.attach_namespace(netns, names.bridge(self.prefix),
                                         names.host_veth(self.prefix, index), names.HOST_DEV,
                                         f"{hosts[index]}/{subnet.prefixlen}")
                self.netns.append(netns)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for relay in self.relays:
            relay.close()
        network.delete_links(self.prefix)
        network.delete_netns(self.prefix)

    def namespace_inode(self, netns: str) -> int:
        """What /proc/<pid>/ns/net of a process in `netns` names: net:[<inode>]."""
        return os.stat(f"/run/netns/{netns}").st_ino

    def relay_url(self, url: str) -> str:
        """`url` (redis://, redis+socket://, postgres://) rewritten to a relay on the bridge's
        address that reaches the service this URL names on this host."""
        parts = urlsplit(url)
        target: tuple[str, int] | str
        if parts.scheme == "redis+socket":
            target, scheme, path = parts.path, "redis", "/0"
        else:
            host = parts.hostname or "127.0.0.1"
            if not ipaddress.ip_address(host).is_loopback:
                raise ValueError(f"{url}: only services on loopback are relayed")
            default_port = 6379 if parts.scheme.startswith("redis") else 5432
            target, scheme, path = (host, parts.port or default_port), parts.scheme, parts.path
        relay = Relay(self.gateway, target).start()
        self.relays.append(relay)
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth + '@' if auth else ''}{self.gateway}:{relay.port}"
        return urlunsplit((scheme, netloc, path, parts.query, parts.fragment))
