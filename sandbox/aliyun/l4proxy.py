"""What a started SLB or NLB listener really does: a TCP proxy with TCP health checks.

Why: the panel proves the cluster works through the load balancer exactly as a user will, and
reads backend health from DescribeHealthStatus (CLB) / GetListenerHealthStatus (NLB); both are
only meaningful if bytes really flow from the listener address to healthy backends and health
reflects real connection attempts. In netns mode the listening socket and every outgoing
connection live in the cloud namespace.

Shared by both products: CLB starts one proxy per listener; NLB one per listener and zone
address. What differs is configuration: `hairpin_refused` (NLB with client IP preservation:
a backend cannot reach itself through its own load balancer) and the `drain` given to
`set_backends` when servers leave (NLB connection draining).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sandbox import netns as netns_tools

ACCEPT_POLL = 0.25
PIPE_CHUNK = 65536
UNAVAILABLE, NORMAL, ABNORMAL = "unavailable", "normal", "abnormal"


@dataclass(frozen=True)
class Backend:
    server_id: str
    ip: str
    port: int
    weight: int


@dataclass(frozen=True)
class HealthCheck:
    """Already scaled to emulator seconds."""

    enabled: bool
    port: int | None  # None: the backend's own port
    interval: float
    timeout: float
    healthy_threshold: int
    unhealthy_threshold: int


@dataclass(frozen=True)
class AccessRule:
    """A listener's access control, as CLB applies it to each client's source address.

    `kind` is "white" (only `networks` are forwarded) or "black" (`networks` are refused).
    An ACL without entries filters nothing, white or black (CLB's documented behaviour), so
    `ALLOW_ALL` is also what an enabled but empty ACL becomes.
    """

    kind: str = "off"
    networks: tuple[str, ...] = ()

    def allows(self, source: str) -> bool:
        if self.kind == "off" or not self.networks:
            return True
        address = ipaddress.ip_address(source)
        listed = any(address in ipaddress.ip_network(n) for n in self.networks)
        return listed if self.kind == "white" else not listed


ALLOW_ALL = AccessRule()


@dataclass(frozen=True)
class GroupRule:
    """One ingress rule of a security group, as an NLB listener on `port` reads it."""

    priority: int          # 1 (first) .. 100
    accept: bool           # Policy Accept / Drop
    network: str           # SourceCidrIp
    low: int               # PortRange low/high (-1/-1 for protocol ALL)
    high: int


@dataclass(frozen=True)
class SecurityGroupAccess:
    """The ingress rules of the security groups joined to an NLB, for one listener port.

    Alibaba's NLB guide ("Add an NLB instance to a security group"): before an NLB joins a
    security group its listeners accept every request, and one in a group *without Drop
    rules* still accepts every request: to admit only some sources there must be a Drop
    rule. So unlike an ECS instance's default deny, a source no rule matches is accepted.
    Rules of every joined group are taken together, by Priority (1 first), a Drop before an
    Accept of the same priority, the first match deciding (ECS's rule order).
    """

    port: int
    rules: tuple[GroupRule, ...] = ()

    def allows(self, source: str) -> bool:
        address = ipaddress.ip_address(source)
        for rule in sorted(self.rules, key=lambda r: (r.priority, r.accept)):
            in_range = (rule.low, rule.high) == (-1, -1) or rule.low <= self.port <= rule.high
            if in_range and address in ipaddress.ip_network(rule.network, strict=False):
                return rule.accept
        return True


Access = AccessRule | SecurityGroupAccess


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def scaled_health_check(scale: Callable[[float], float], *, enabled: bool, port: int | None,
                        interval: float, timeout: float, healthy_threshold: int,
                        unhealthy_threshold: int) -> HealthCheck:
    """A listener's health check timings scaled by the clock (`scale`), within bounds a real
    socket can honour: an interval of at least 50 ms, a connect timeout of 0.2 to 5 s."""
    return HealthCheck(
        enabled=enabled, port=port,
        interval=_clamp(scale(interval), 0.05, interval),
        timeout=_clamp(scale(timeout), 0.2, min(timeout, 5)),
        healthy_threshold=healthy_threshold, unhealthy_threshold=unhealthy_threshold,
    )


@dataclass
class _Health:
    status: str = UNAVAILABLE
    successes: int = 0
    failures: int = 0


@dataclass
class _Weighted:
    """Smooth weighted round robin (as nginx does), over the backends routable right now."""

    current: dict[str, int] = field(default_factory=dict)

    def pick(self, candidates: list[Backend]) -> Backend | None:
        if not candidates:
            return None
        total = sum(b.weight for b in candidates)
        best: Backend | None = None
        for backend in candidates:
            key = backend.server_id
            self.current[key] = self.current.get(key, 0) + backend.weight
            if best is None or self.current[key] > self.current[best.server_id]:
                best = backend
        assert best is not None
        self.current[best.server_id] -= total
        return best


class ListenerProxy:
    """One started TCP listener: accepts on address:port and relays to a chosen backend."""

    def __init__(
        self, address: str, port: int, netns: str | None, *, backends: list[Backend],
        health: HealthCheck, scheduler: str = "wrr", access: Access = ALLOW_ALL,
        hairpin_refused: bool = False, name: str = "slb",
    ) -> None:
        self.address = address
        self.port = port
        self.netns = netns
        self.scheduler = scheduler
        self._backends = list(backends)
        self._health_config = health
        self._access = access
        self._refused = 0
        self.hairpin_refused = hairpin_refused
        self.hairpins = 0  # connections a backend made to itself and lost (hairpin_refused)
        # Relayed connections by the backend they go to, so a leaving backend's can be cut.
        self._by_backend: dict[str, set[socket.socket]] = {}
        self._drain_timers: list[threading.Timer] = []
        self._health: dict[str, _Health] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rr = _Weighted()
        self._connections: set[socket.socket] = set()
        self._socket = netns_tools.listen_tcp(address, port, netns)
        self._socket.settimeout(ACCEPT_POLL)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{name}-hc-{port}")
        self._threads = [
            threading.Thread(target=self._accept_loop, name=f"{name}-{address}:{port}",
                             daemon=True),
            threading.Thread(target=self._health_loop, name=f"{name}-hc-{address}:{port}",
                             daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # ---- configuration ----------------------------------------------------------------
    def set_backends(self, backends: list[Backend], drain: float | None = None) -> None:
        """New connections go to `backends` only. Live connections to a backend that left:
        kept (`drain` None, CLB), cut now (0: NLB without connection draining) or cut once
        `drain` seconds have passed (NLB ConnectionDrainTimeout), whichever ends first."""
        with self._lock:
            self._backends = list(backends)
            keep = {b.server_id for b in backends}
            self._health = {k: v for k, v in self._health.items() if k in keep}
            gone = [k for k in self._by_backend if k not in keep]
            doomed = [conn for k in gone for conn in self._by_backend.get(k, set())]
        if drain is None or not doomed:
            return
        if drain <= 0:
            _cut(doomed)
            return
        timer = threading.Timer(drain, _cut, args=(doomed,))
        timer.daemon = True
        timer.start()
        with self._lock:
            self._drain_timers.append(timer)

    def set_health_check(self, health: HealthCheck) -> None:
        with self._lock:
            self._health_config = health

    def set_access(self, access: Access) -> None:
        """New ACL entries apply to the next connection (relayed ones stay, as on CLB)."""
        with self._lock:
            self._access = access

    @property
    def refused(self) -> int:
        """Connections refused by the access rule since the listener started."""
        with self._lock:
            return self._refused

    def health_status(self) -> dict[str, str]:
        """server_id -> normal / abnormal / unavailable (no verdict yet, or checks off)."""
        with self._lock:
            if not self._health_config.enabled:
                return {b.server_id: UNAVAILABLE for b in self._backends}
            return {b.server_id: self._health.get(b.server_id, _Health()).status
                    for b in self._backends}

    # ---- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting, close the listening socket and every relayed connection."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._socket.close()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
            timers, self._drain_timers = self._drain_timers, []
        for timer in timers:
            timer.cancel()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()

    # ---- proxying ---------------------------------------------------------------------
    def _routable(self) -> list[Backend]:
        with self._lock:
            weighted = [b for b in self._backends if b.weight > 0]
            if not self._health_config.enabled:
                return weighted
            statuses = {b.server_id: self._health.get(b.server_id, _Health()).status
                        for b in weighted}
        normal = [b for b in weighted if statuses[b.server_id] == NORMAL]
        if normal:
            return normal
        # Before the first verdict the SLB still forwards; known-abnormal backends never.
        return [b for b in weighted if statuses[b.server_id] == UNAVAILABLE]

    def _choose(self) -> Backend | None:
        candidates = self._routable()
        if self.scheduler == "rr":
            candidates = [Backend(b.server_id, b.ip, b.port, 1) for b in candidates]
        with self._lock:
            return self._rr.pick(candidates)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, peer = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                allowed = self._access.allows(peer[0])
                self._refused += 0 if allowed else 1
            if not allowed:
                _reset(client)
                continue
            threading.Thread(target=self._relay, args=(client, peer[0]), daemon=True).start()

    def _relay(self, client: socket.socket, source: str = "") -> None:
        backend = self._choose()
        upstream: socket.socket | None = None
        if backend is not None and self.hairpin_refused and backend.ip == source:
            # With the client's address preserved, the backend answers its own SYN directly
            # and the handshake never completes through the load balancer: lost.
            with self._lock:
                self.hairpins += 1
            _reset(client)
            return
        if backend is not None:
            try:
                upstream = netns_tools.connect_tcp(backend.ip, backend.port, self.netns,
                                                   timeout=self._health_config.timeout)
            except OSError:
                upstream = None
        if upstream is None:
            client.close()  # like the real SLB: no healthy backend, connection reset
            return
        client.settimeout(None)
        upstream.settimeout(None)
        with self._lock:
            if self._stop.is_set():
                client.close()
                upstream.close()
                return
            self._connections.update((client, upstream))
            assert backend is not None
            self._by_backend.setdefault(backend.server_id, set()).update((client, upstream))
        pump = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        pump.start()
        _pipe(client, upstream)
        pump.join()
        with self._lock:
            self._connections.discard(client)
            self._connections.discard(upstream)
            assert backend is not None
            relayed = self._by_backend.get(backend.server_id, set())
            relayed.discard(client)
            relayed.discard(upstream)
            if not relayed:
                self._by_backend.pop(backend.server_id, None)
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.close()

    # ---- health checks ----------------------------------------------------------------
    def _probe(self, backend: Backend, port: int, timeout: float) -> bool:
        try:
            sock = netns_tools.connect_tcp(backend.ip, port, self.netns, timeout=timeout)
        except OSError:
            return False
        with contextlib.suppress(OSError):
            sock.close()
        return True

    def _health_loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                config = self._health_config
                backends = list(self._backends)
            if config.enabled and backends:
                futures = {
                    b.server_id: self._pool.submit(self._probe, b, config.port or b.port,
                                                   config.timeout)
                    for b in backends
                }
                results = {}
                for server_id, future in futures.items():
                    try:
                        results[server_id] = future.result()
                    except Exception:  # pool shut down while stopping
                        return
                self._record(results, config)
            self._stop.wait(config.interval)

    def _record(self, results: dict[str, bool], config: HealthCheck) -> None:
        with self._lock:
            for server_id, ok in results.items():
                health = self._health.setdefault(server_id, _Health())
                if ok:
                    health.successes, health.failures = health.successes + 1, 0
                    if health.successes >= config.healthy_threshold:
                        health.status = NORMAL
                else:
                    health.failures, health.successes = health.failures + 1, 0
                    if health.failures >= config.unhealthy_threshold:
                        health.status = ABNORMAL


def _reset(client: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0): the client sees "connection reset", never a byte."""
    with contextlib.suppress(OSError):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        client.close()


def _cut(connections: list[socket.socket]) -> None:
    """End relayed connections (both sides): their pumps see EOF/errors and clean up."""
    for conn in connections:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until EOF, then half-close so the other direction can finish."""
    try:
        while True:
            data = source.recv(PIPE_CHUNK)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
