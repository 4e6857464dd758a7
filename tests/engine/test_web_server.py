"""The web server as the Dockerfile runs it (deploy/gunicorn.conf.py): a request that waits
does not stall the others of its worker process (threads, not sync workers)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "gunicorn.conf.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[int]:
    """gunicorn with the production config and ONE worker process, on loopback."""
    port = free_port()
    env = {**os.environ, "WEB_CONCURRENCY": "1", "DJANGO_SETTINGS_MODULE": "panel.settings_test",
           "DJANGO_ALLOWED_HOSTS": "localhost"}
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "--config", str(CONFIG),
         "panel.wsgi:application", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(port, "/healthz").split(b"\r\n", 1)[0].endswith(b"200 OK"):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("gunicorn did not answer /healthz:\n"
                            + (tmp_path / "gunicorn.log").read_text()[-3000:], pytrace=False)
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_a_stalled_request_does_not_hold_up_the_next_one(one_worker: int) -> None:
    """A client that sent half a request (as one waiting on a slow upstream call holds its
    thread) ties up one thread; the same worker answers the next request meanwhile. A sync
    worker would read the stalled request until its timeout (30 s) before anything else."""
    with socket.create_connection(("127.0.0.1", one_worker), timeout=20) as stalled:
        stalled.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n")  # no blank line yet
        time.sleep(0.5)  # the worker has taken it up
        answer = get(one_worker, "/healthz")
        assert answer.split(b"\r\n", 1)[0].endswith(b"200 OK"), answer[:200]
        assert answer.endswith(b"ok")
        # The stalled request is still waiting, and is answered once it is complete.
        stalled.sendall(b"\r\n")
        late = b""
        while chunk := stalled.recv(65536):
            late += chunk
        assert late.endswith(b"ok")
