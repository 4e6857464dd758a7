"""A Running NLB listener is a real TCP proxy on each zone address: it forwards to the
healthy servers of its group only, health checks really connect, removal drains live
connections for ConnectionDrainTimeout (or cuts them without draining), and with client IP
preservation a backend cannot reach itself through its own NLB (hairpin)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sandbox import netns as netns_tools
from sandbox.aliyun.testing import Emulator
from tests.emulator.echo import EchoServer, ask
from tests.support.emulator_calls import host_ip
from tests.support.nlb_calls import (
    add_servers,
    create_group,
    create_listener,
    create_nlb,
    job_done,
    nlb,
    wait_for,
    zone_addresses,
)

PORT = 16443


class HoldingServer:
    """Answers `<ip>:<data>` to every message on a connection it keeps open."""

    def __init__(self, ip: str, port: int) -> None:
        self.ip = ip
        self._socket = netns_tools.listen_tcp(ip, port, None)
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(1024):
                conn.sendall(f"{self.ip}:".encode() + data)

    def stop(self) -> None:
        self._stop.set()
        self._socket.close()


def exchange(sock: socket.socket, message: bytes) -> bytes:
    """One message on a live connection; b"" once the connection is gone."""
    try:
        sock.sendall(message)
        return sock.recv(1024)
    except OSError:
        return b""


def unhealthy(emu: Emulator, listener_id: str) -> dict[str, str]:
    """server id -> status of every server that is not Healthy."""
    body = nlb(emu, "GetListenerHealthStatus", ListenerId=listener_id)
    infos = body["ListenerHealthStatus"][0]["ServerGroupInfos"]
    return {s["ServerId"]: s["Status"] for info in infos for s in info["NonNormalServers"]}


@contextlib.contextmanager
def servers(*instances: EchoServer | HoldingServer) -> Iterator[None]:
    try:
        yield
    finally:
        for server in instances:
            server.stop()


def test_forwards_to_healthy_servers_only(emu: Emulator) -> None:
    ips = [host_ip(emu, 41), host_ip(emu, 42)]
    backends = [EchoServer(ip, PORT) for ip in ips]
    with servers(*backends):
        ids = [emu.register_instance(f"nlb-p{n}", ip) for n, ip in enumerate(ips)]
        lb_id = create_nlb(emu)
        group = create_group(emu)
        add_servers(emu, group, [(i, PORT) for i in ids])
        listener = create_listener(emu, lb_id, group)
        wait_for(lambda: not unhealthy(emu, listener), what="both Healthy")
        for address in zone_addresses(emu, lb_id):  # every zone's address forwards
            answers = {ask(address, 6443, b"ping") for _ in range(6)}
            assert answers == {f"{ip}:ping".encode() for ip in ips}
        backends[0].stop()
        wait_for(lambda: unhealthy(emu, listener).get(ids[0]) == "Unhealthy",
                 what="the dead one Unhealthy")
        assert ids[1] not in unhealthy(emu, listener)
        # Each zone's node checks for itself: a zone may take a check or two longer to agree.
        def only_the_live_one(address: str) -> bool:
            return {ask(address, 6443, b"again") for _ in range(5)} == \
                {f"{ips[1]}:again".encode()}

        for address in zone_addresses(emu, lb_id):
            wait_for(lambda: only_the_live_one(address),  # noqa: B023 - called at once
                     what=f"only the live one via {address}")
        stopped = nlb(emu, "StopListener", ListenerId=listener)
        wait_for(lambda: job_done(emu, stopped["JobId"]), what="Stopped")
        assert ask(address, 6443) == b""
        assert set(unhealthy(emu, listener).values()) == {"Unused"}


def _drain_setup(emu: Emulator, last_octet: int, **group_params: object) -> tuple[
        HoldingServer, str, str, str]:
    ip = host_ip(emu, last_octet)
    server = HoldingServer(ip, PORT)
    instance = emu.register_instance(f"nlb-d{last_octet}", ip)
    lb_id = create_nlb(emu)
    group = create_group(emu, **group_params)
    add_servers(emu, group, [(instance, PORT)])
    listener = create_listener(emu, lb_id, group)
    wait_for(lambda: not unhealthy(emu, listener), what="Healthy")
    return server, instance, group, zone_addresses(emu, lb_id)[0]


def _remove(emu: Emulator, group: str, instance: str) -> str:
    return str(nlb(emu, "RemoveServersFromServerGroup", ServerGroupId=group, **{
        "Servers.1.ServerId": instance, "Servers.1.ServerType": "Ecs",
        "Servers.1.Port": str(PORT)})["JobId"])


@pytest.mark.slow
def test_connection_drain_lets_a_live_connection_finish(emu: Emulator) -> None:
    # 300 s of drain at the time scale 0.01: 3 s here.
    server, instance, group, address = _drain_setup(
        emu, 51, ConnectionDrainEnabled=True, ConnectionDrainTimeout=300)
    with servers(server), socket.create_connection((address, 6443), timeout=5) as live:
        ip = server.ip
        assert exchange(live, b"one") == f"{ip}:one".encode()
        removed_at = time.monotonic()
        job = _remove(emu, group, instance)
        assert ask(address, 6443) == b""  # no new connection goes to a leaving server
        time.sleep(1)
        assert exchange(live, b"two") == f"{ip}:two".encode()  # the live one goes on
        rows = nlb(emu, "ListServerGroupServers", ServerGroupId=group)["Servers"]
        assert [r["Status"] for r in rows] == ["Removing"]  # while it drains
        assert not job_done(emu, job)
        wait_for(lambda: exchange(live, b"more") == b"", timeout=10, what="cut after drain")
        assert time.monotonic() - removed_at >= 2.5
        wait_for(lambda: job_done(emu, job), what="removed once drained")
        assert nlb(emu, "ListServerGroupServers", ServerGroupId=group)["Servers"] == []


def test_without_drain_removal_cuts_live_connections(emu: Emulator) -> None:
    server, instance, group, address = _drain_setup(emu, 52)
    with servers(server), socket.create_connection((address, 6443), timeout=5) as live:
        assert exchange(live, b"one") == f"{server.ip}:one".encode()
        _remove(emu, group, instance)
        wait_for(lambda: exchange(live, b"two") == b"", timeout=2, what="cut at once")


def _from(source: str, address: str) -> bytes:
    with socket.socket() as sock:
        sock.settimeout(3)
        sock.bind((source, 0))
        try:
            sock.connect((address, 6443))
            sock.sendall(b"hairpin")
            return sock.recv(1024)
        except OSError:
            return b""


def test_a_backend_cannot_reach_itself_when_client_ip_is_preserved(emu: Emulator) -> None:
    kept, plain = host_ip(emu, 61), host_ip(emu, 62)
    with servers(EchoServer(kept, PORT), EchoServer(plain, PORT)):
        for ip, preserve in ((kept, True), (plain, False)):
            instance = emu.register_instance(f"nlb-h{ip.rsplit('.', 1)[1]}", ip)
            lb_id = create_nlb(emu)
            group = create_group(emu, PreserveClientIpEnabled=preserve)
            add_servers(emu, group, [(instance, PORT)])
            listener = create_listener(emu, lb_id, group)
            wait_for(lambda: not unhealthy(emu, listener), what="Healthy")  # noqa: B023
            address = zone_addresses(emu, lb_id)[0]
            # Another client always gets through; the backend itself only without
            # preservation (the default for IPv4 groups is on).
            assert _from("127.0.0.1", address) == f"{ip}:hairpin".encode()
            expected = b"" if preserve else f"{ip}:hairpin".encode()
            assert _from(ip, address) == expected
        listed = nlb(emu, "ListServerGroups")["ServerGroups"]
        assert any(g["PreserveClientIpEnabled"] for g in listed)


def test_updates_reach_the_proxy_when_their_job_ends(emu: Emulator) -> None:
    ips = [host_ip(emu, 81), host_ip(emu, 82), host_ip(emu, 83)]
    with servers(*(EchoServer(ip, PORT) for ip in ips)):
        ids = [emu.register_instance(f"nlb-u{n}", ip) for n, ip in enumerate(ips)]
        lb_id = create_nlb(emu)
        first, second = create_group(emu), create_group(emu)
        add_servers(emu, first, [(ids[0], PORT), (ids[1], PORT)])
        add_servers(emu, second, [(ids[2], PORT)])
        listener = create_listener(emu, lb_id, first)
        wait_for(lambda: not unhealthy(emu, listener), what="Healthy")
        address = zone_addresses(emu, lb_id)[0]
        # (Statuses while these jobs run: test_nlb.py, at a slower time scale.)
        # Weight 0: no new connection for that server.
        job = nlb(emu, "UpdateServerGroupServersAttribute", ServerGroupId=first, **{
            "Servers.1.ServerId": ids[0], "Servers.1.ServerType": "Ecs",
            "Servers.1.Port": str(PORT), "Servers.1.Weight": "0"})["JobId"]
        wait_for(lambda: job_done(emu, job), what="weights")
        assert {ask(address, 6443, b"w") for _ in range(4)} == {f"{ips[1]}:w".encode()}
        # Health checks off: every server is "Unavailable" to GetListenerHealthStatus.
        job = nlb(emu, "UpdateServerGroupAttribute", ServerGroupId=first,
                  **{"HealthCheckConfig.HealthCheckEnabled": "false"})["JobId"]
        wait_for(lambda: job_done(emu, job), what="health checks off")
        assert set(unhealthy(emu, listener).values()) == {"Unavailable"}
        # Another server group: the listener is Configuring, then forwards to it.
        job = nlb(emu, "UpdateListenerAttribute", ListenerId=listener, ServerGroupId=second)[
            "JobId"]
        wait_for(lambda: job_done(emu, job), what="group switched")
        assert nlb(emu, "GetListenerAttribute", ListenerId=listener)["ListenerStatus"] == \
            "Running"
        wait_for(lambda: ask(address, 6443, b"s") == f"{ips[2]}:s".encode(), what="second")
