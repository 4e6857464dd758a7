"""The network face of an emulated RDS instance: whitelist check, then a relay to mariadbd.

Why a gate instead of per-account host entries: on RDS the IP whitelist is a network-level
control that applies to every account and answers no SQL error; a client outside it sees the
TCP connection open and then never receives the MySQL handshake (Alibaba's own whitelist
troubleshooting page describes exactly that for VPC endpoints). The gate reproduces that:
refused clients are accepted and held silent until they give up (or HOLD_SECONDS pass).
Allowed clients are relayed to the instance's private mariadbd with a PROXY-protocol header,
so MariaDB still sees and reports their real address.

It also makes the server speak like MySQL 5.6/5.7 where the two differ in a way K3s users
meet: MariaDB refuses an over-long key on a COMPACT table with error 1709 ("Index column size
too large"), MySQL with error 1071 ("Specified key was too long; max key length is 767
bytes"), which is what kine prints and what people search for. The relay rewrites that one
error packet.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import selectors
import socket
import struct
import threading
from collections.abc import Iterable

from sandbox import netns as netns_helpers
from sandbox.aliyun.rds.mysqld import MariaDBServer
from sandbox.aliyun.rds.pgserver import PostgresServer

log = logging.getLogger(__name__)

HOLD_SECONDS = 120.0
CLIENT_COMPRESS = 0x20
CLIENT_SSL = 0x800
MAX_PACKET = 0xFFFFFF
MARIADB_INDEX_COLUMN_TOO_LONG = 1709
MYSQL_KEY_TOO_LONG = 1071
MYSQL_KEY_TOO_LONG_STATE = b"42000"
# MySQL 8.0's answer to a plain client when require_secure_transport=ON (what RDS's forced
# SSL encryption sets): ER_SECURE_TRANSPORT_REQUIRED.
INSECURE_TRANSPORT = 3159
INSECURE_TRANSPORT_MESSAGE = (b"Connections using insecure transport are prohibited while "
                              b"--require_secure_transport=ON.")


def parse_whitelist(entries: Iterable[str]) -> list[ipaddress.IPv4Network]:
    """Networks of a whitelist ("10.0.0.0/8", "192.168.1.1"); ValueError on a bad entry."""
    networks = []
    for entry in entries:
        networks.append(ipaddress.IPv4Network(entry.strip(), strict=False))
    return networks


class MySQLErrorTranslator:
    """Rewrites MariaDB's 1709 error packets into MySQL's 1071 in a server->client stream."""

    def __init__(self) -> None:
        self._buffer = b""
        self._continuation = False
        self.enabled = True

    def feed(self, data: bytes) -> bytes:
        """Bytes to forward now (complete packets, possibly rewritten)."""
        if not self.enabled:
            passed, self._buffer = self._buffer + data, b""
            return passed
        self._buffer += data
        out = bytearray()
        while len(self._buffer) >= 4:
            length = int.from_bytes(self._buffer[:3], "little")
            if len(self._buffer) < 4 + length:
                break
            header, payload = self._buffer[:4], self._buffer[4:4 + length]
            self._buffer = self._buffer[4 + length:]
            if not self._continuation:
                header, payload = self._rewrite(header, payload)
            self._continuation = length == MAX_PACKET
            out += header + payload
        return bytes(out)

    @staticmethod
    def _rewrite(header: bytes, payload: bytes) -> tuple[bytes, bytes]:
        if len(payload) < 3 or payload[0] != 0xFF:
            return header, payload
        code = struct.unpack("<H", payload[1:3])[0]
        if code != MARIADB_INDEX_COLUMN_TOO_LONG:
            return header, payload
        message = b"Specified key was too long; max key length is 767 bytes"
        new_payload = (
            b"\xff" + struct.pack("<H", MYSQL_KEY_TOO_LONG) + b"#" + MYSQL_KEY_TOO_LONG_STATE
            + message
        )
        return len(new_payload).to_bytes(3, "little") + header[3:4], new_payload


def insecure_transport_error(client_packet: bytes) -> bytes:
    """The ERR packet that answers `client_packet` (its sequence number plus one)."""
    sequence = (client_packet[3] + 1) % 256 if len(client_packet) > 3 else 2
    payload = (b"\xff" + struct.pack("<H", INSECURE_TRANSPORT) + b"#HY000"
               + INSECURE_TRANSPORT_MESSAGE)
    return len(payload).to_bytes(3, "little") + bytes([sequence]) + payload


def _client_capabilities(first_packet: bytes) -> int:
    if len(first_packet) < 8:
        return 0
    return struct.unpack("<I", first_packet[4:8])[0]


class WhitelistGate:
    """Listens on the instance's address; relays whitelisted clients to its mariadbd."""

    def __init__(
        self, server: MariaDBServer | PostgresServer, host: str, port: int,
        netns: str | None = None, whitelist: Iterable[str] = (),
    ) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.netns = netns
        self._networks = parse_whitelist(whitelist)
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        # Forced SSL encryption (ModifyDBInstanceSSL ForceEncryption=1): plain clients are
        # refused after their handshake response, as MySQL does.
        self.require_ssl = False

    def set_whitelist(self, entries: Iterable[str]) -> None:
        networks = parse_whitelist(entries)
        with self._lock:
            self._networks = networks

    def allows(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        with self._lock:
            return any(ip in network for network in self._networks)

    def start(self) -> None:
        self._listener = netns_helpers.listen_tcp(self.host, self.port, self.netns)
        self._closed.clear()
        threading.Thread(
            target=self._accept_loop, name=f"rds-gate-{self.host}:{self.port}", daemon=True,
        ).start()

    @property
    def listening(self) -> bool:
        return self._listener is not None

    def close(self) -> None:
        """Stop listening and cut every connection (the instance is stopping or going away)."""
        self._closed.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def drop_connections(self) -> None:
        """Cut every relayed connection, keep listening (the server behind restarts)."""
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    # ----- connections -------------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        while listener is not None and not self._closed.is_set():
            try:
                client, peer = listener.accept()
            except OSError:
                break
            self._track(client)
            target = self._relay if self.allows(peer[0]) else self._hold_silent
            threading.Thread(target=target, args=(client, peer), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._open.discard(sock)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.close()

    def _hold_silent(self, client: socket.socket, peer: tuple[str, int]) -> None:
        log.info("rds gate %s:%s: %s is not in the whitelist", self.host, self.port, peer[0])
        client.settimeout(HOLD_SECONDS)
        try:
            while client.recv(4096):
                pass
        except OSError:
            pass
        finally:
            self._forget(client)

    def _pipe(self, client: socket.socket, backend: socket.socket) -> None:
        """PostgreSQL: bytes both ways, unchanged (its errors need no translation)."""
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, backend)
        selector.register(backend, selectors.EVENT_READ, client)
        try:
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=1.0):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            self._forget(client, backend)

    def _relay(self, client: socket.socket, peer: tuple[str, int]) -> None:
        try:
            backend = self.server.open_proxied(peer, (self.host, self.port))
        except OSError:
            self._forget(client)  # server down: the client sees the connection drop
            return
        self._track(backend)
        if isinstance(self.server, PostgresServer):
            self._pipe(client, backend)
            return
        translator = MySQLErrorTranslator()
        first_client_packet = True
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, backend)
        selector.register(backend, selectors.EVENT_READ, client)
        try:
            while not self._closed.is_set():
                for key, _ in selector.select(timeout=1.0):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(65536)
                    if not data:
                        return
                    if source is client:
                        if first_client_packet:
                            first_client_packet = False
                            capabilities = _client_capabilities(data)
                            if self.require_ssl and not capabilities & CLIENT_SSL:
                                client.sendall(insecure_transport_error(data))
                                return
                            if capabilities & (CLIENT_COMPRESS | CLIENT_SSL):
                                translator.enabled = False
                        backend.sendall(data)
                    else:
                        client.sendall(translator.feed(data))
        except OSError:
            return
        finally:
            selector.close()
            self._forget(client, backend)
