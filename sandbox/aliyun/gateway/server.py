"""HTTP front of the emulator: the RPC API on `/` and the control API under `/_emulator/`.

Why: the official SDK speaks plain HTTP to whatever endpoint it is given; this adapter turns
its requests into `Cloud.call` and renders outcomes exactly as the gateway would (status,
JSON or XML body, x-acs-request-id header), keeping connections alive like the real one.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sandbox.aliyun.gateway import control
from sandbox.aliyun.gateway.cloud import Cloud, Outcome
from sandbox.aliyun.gateway.registry import PATH_ROUTES
from sandbox.aliyun.gateway.xmlformat import to_xml

CONTROL_PREFIX = "/_emulator/"
MAX_BODY = 4 * 1024 * 1024


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], cloud: Cloud) -> None:
        super().__init__(address, ApiRequestHandler)
        self.cloud = cloud

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (a worker SIGKILLed in a soak) is not a fault
        of the server: no traceback for it. Anything else is still printed."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class ApiRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a keep-alive client's delayed ACK
    # would add ~40 ms to every call.
    disable_nagle_algorithm = True
    server: ApiServer
    server_version = "Tengine"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the call log (GET /_emulator/calls) is the record."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if url.path.startswith(CONTROL_PREFIX):
            self._serve_control(method, url.path[len(CONTROL_PREFIX):], body)
        elif url.path == "/":
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            content_type = self.headers.get("Content-Type", "")
            if body and content_type.startswith("application/x-www-form-urlencoded"):
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            self._send_outcome(self.server.cloud.call(method, params))
        elif route := next((h for p, h in PATH_ROUTES.items() if url.path.startswith(p)), None):
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, data = route(self.server.cloud, method, url.path, headers,
                                        self.client_address[0])
            self.send_response(status)
            for name, value in {"Content-Type": "text/plain", **extra}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._send_json(404, {"Code": "InvalidAction.NotFound",
                                  "Message": "Specified api is not found, please check your "
                                             "url and method."})

    def _serve_control(self, method: str, path: str, body: bytes) -> None:
        if not self.client_address[0].startswith("127."):
            self._send_json(403, {"error": "the control API is for loopback clients only"})
            return
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            self._send_json(400, {"error": "body must be JSON"})
            return
        status, answer = control.handle(self.server.cloud, method, path, payload)
        self._send_json(status, answer)

    def _send_outcome(self, outcome: Outcome) -> None:
        if outcome.delay:
            time.sleep(outcome.delay)
        if outcome.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        request_id = str(outcome.body.get("RequestId", ""))
        if outcome.xml_root:
            data = to_xml(outcome.xml_root, outcome.body).encode()
            content_type = "text/xml;charset=utf-8"
        else:
            data = json.dumps(outcome.body).encode()
            content_type = "application/json;charset=utf-8"
        self.send_response(outcome.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-acs-request-id", request_id)
        self.end_headers()
        self.wfile.write(data)

    def _send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
