"""The DNS stand-in: answers A queries for every NLB's DNS name with its zone addresses.

Why: users reach an NLB by its DNS name (`nlb-….<region>.nlb.aliyuncsslb.com`), never by an
address; the name resolves to one address per zone (the private ones of an Intranet NLB,
the public ones of an Internet NLB). Inside a VPC, ECS instances ask the VPC's resolver. The
offline world has no Internet DNS, so the emulator serves that zone itself, on the address
the world gives it (POST /_emulator/nlb/dns): the lab hosts' /etc/resolv.conf names it, as a
VPC's DHCP options name Alibaba's resolvers, and root-namespace tools reach it through
`sandbox.aliyun.nlb.resolve`.

What it answers (RFC 1035 wire format, UDP and TCP): A for a name of an NLB that is not
still Provisioning: NOERROR with every zone address, TTL 60; AAAA/other types for such a name:
NOERROR without answers; a name under the NLB suffix that no instance has: NXDOMAIN; any
other name: REFUSED (it is no recursive resolver, and the world is offline).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from sandbox import netns as netns_tools
from sandbox.aliyun.gateway.cloud import Cloud
from sandbox.aliyun.gateway.control import ControlError
from sandbox.aliyun.gateway.registry import control_route
from sandbox.aliyun.nlb.product import DNS_SUFFIX, NLB, dns_addresses, load_balancers

TTL = 60
TYPE_A, TYPE_ANY, CLASS_IN = 1, 255, 1
NOERROR, FORMERR, NXDOMAIN, REFUSED = 0, 1, 3, 5

Lookup = Callable[[str], list[str] | None]  # None: not our zone; []: no such name


def records(cloud: Cloud) -> dict[str, list[str]]:
    """DNS name -> addresses, for every NLB that answers by name (not Provisioning)."""
    with cloud.lock:
        return {lb["dns_name"]: dns_addresses(lb) for lb in load_balancers(cloud.state).values()
                if lb["status"] not in ("Provisioning", "CreateFailed")}


def lookup_in(cloud: Cloud) -> Lookup:
    def lookup(name: str) -> list[str] | None:
        name = name.rstrip(".").lower()
        if not (name == DNS_SUFFIX or name.endswith("." + DNS_SUFFIX)):
            return None
        return records(cloud).get(name, [])
    return lookup


# ---- wire format -----------------------------------------------------------------------
def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def _read_name(packet: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    while True:
        if offset >= len(packet):
            raise ValueError("truncated name")
        length = packet[offset]
        if length == 0:
            return ".".join(labels), offset + 1
        if length & 0xC0:
            raise ValueError("compressed names are not expected in a question")
        labels.append(packet[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


def query_packet(name: str, query_id: int, qtype: int = TYPE_A) -> bytes:
    """A standard query with recursion desired (what a stub resolver sends)."""
    return struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + encode_name(name) + \
        struct.pack("!HH", qtype, CLASS_IN)


def answer(packet: bytes, lookup: Lookup) -> bytes:
    """The response to one query packet."""
    if len(packet) < 12:
        raise ValueError("short packet")
    query_id, flags, qdcount = struct.unpack("!HHH", packet[:6])
    recursion = flags & 0x0100
    try:
        if qdcount != 1:
            raise ValueError("one question")
        name, end = _read_name(packet, 12)
        qtype, qclass = struct.unpack("!HH", packet[end:end + 4])
    except (ValueError, struct.error):
        return struct.pack("!HHHHHH", query_id, 0x8000 | recursion | FORMERR, 0, 0, 0, 0)
    question = packet[12:end + 4]
    found = lookup(name)
    addresses: list[str] = []
    if found is None:
        rcode, authoritative = REFUSED, 0
    elif not found:
        rcode, authoritative = NXDOMAIN, 0x0400
    else:
        rcode, authoritative = NOERROR, 0x0400
        addresses = found if qtype in (TYPE_A, TYPE_ANY) and qclass == CLASS_IN else []
    header = struct.pack("!HHHHHH", query_id, 0x8000 | authoritative | recursion | rcode,
                         1, len(addresses), 0, 0)
    body = b"".join(
        struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(a)
        for a in addresses)
    return header + question + body


def parse_answer(packet: bytes) -> tuple[int, list[str]]:
    """(rcode, A addresses) of a response packet."""
    flags, qdcount, ancount = struct.unpack("!HHH", packet[2:8])
    offset = 12
    for _ in range(qdcount):
        _, offset = _read_name(packet, offset)
        offset += 4
    found = []
    for _ in range(ancount):
        if packet[offset] & 0xC0:
            offset += 2
        else:
            _, offset = _read_name(packet, offset)
        rtype, _, _, length = struct.unpack("!HHIH", packet[offset:offset + 10])
        offset += 10
        if rtype == TYPE_A and length == 4:
            found.append(socket.inet_ntoa(packet[offset:offset + 4]))
        offset += length
    return flags & 0x000F, found


# ---- the server ------------------------------------------------------------------------
class DnsServer:
    """UDP and TCP port `port` on `address` (inside `netns` when given)."""

    def __init__(self, address: str, port: int, netns: str | None, lookup: Lookup) -> None:
        self.lookup = lookup
        with netns_tools.entered(netns):
            self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._udp.bind((address, port))
        self.address, self.port = self._udp.getsockname()[:2]
        self._tcp = netns_tools.listen_tcp(address, self.port, netns)
        self._tcp.settimeout(0.25)
        self._udp.settimeout(0.25)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True, name="nlb-dns"),
                         threading.Thread(target=self._serve_tcp, daemon=True,
                                          name="nlb-dns-tcp")]
        for thread in self._threads:
            thread.start()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                packet, peer = self._udp.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.suppress(ValueError, OSError):
                self._udp.sendto(answer(packet, self.lookup), peer)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(ValueError, OSError, struct.error):
                conn.settimeout(2)
                (length,) = struct.unpack("!H", _recv_exactly(conn, 2))
                reply = answer(_recv_exactly(conn, length), self.lookup)
                conn.sendall(struct.pack("!H", len(reply)) + reply)

    def close(self) -> None:
        self._stop.set()
        for sock in (self._udp, self._tcp):
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=2)


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ValueError("short read")
        data += chunk
    return data


# ---- lifecycle and the control API -------------------------------------------------------
def _running(cloud: Cloud) -> DnsServer | None:
    server = cloud.runtime.get("nlb_dns")
    return server if isinstance(server, DnsServer) else None


def _start(cloud: Cloud, address: str, port: int) -> DnsServer:
    old = _running(cloud)
    if old is not None:
        old.close()
    server = DnsServer(address, port, cloud.plumbing.netns, lookup_in(cloud))
    cloud.runtime["nlb_dns"] = server
    return server


@control_route("POST", "nlb/dns")
def start_dns(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """Body {address, port? (53)}: serve the NLB zone there (kept across restarts)."""
    address = str(body.get("address", ""))
    try:
        socket.inet_aton(address)
    except OSError:
        raise ControlError(400, "address must be an IPv4 address") from None
    port = int(body.get("port", 53))
    try:
        server = _start(cloud, address, port)
    except OSError as exc:
        raise ControlError(400, f"cannot serve DNS on {address}:{port}: {exc}") from None
    with cloud.lock:
        cloud.state.bucket("config")["nlb_dns"] = {"address": address, "port": server.port}
        cloud.state.save()
    return 200, {"address": address, "port": server.port}


@control_route("GET", "nlb/dns")
def show_dns(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """Where the stand-in answers ({} address when not started) and what it answers."""
    server = _running(cloud)
    where = {"address": server.address, "port": server.port} if server else {}
    return 200, {**where, "records": records(cloud)}


@NLB.on_start
def restore_dns(cloud: Cloud) -> None:
    saved = cloud.state.bucket("config").get("nlb_dns")
    if saved:
        _start(cloud, saved["address"], int(saved["port"]))


@NLB.on_stop
def stop_dns(cloud: Cloud) -> None:
    server = cloud.runtime.pop("nlb_dns", None)
    if isinstance(server, DnsServer):
        server.close()


