"""Offline stand-in for get.k3s.io, GitHub releases, update.k3s.io and the China mirror.

Why: the panel's install step runs `curl … | sh` on each host exactly as in production; only
the base URLs change. One HTTP server answers every path shape the install script uses:

  official                                   China mirror (INSTALL_K3S_MIRROR=cn)
  /                      install script      /k3s/k3s-install.sh
  /k3s-io/k3s/releases/download/<v>/k3s      /k3s/<v with + as ->/k3s
     …/k3s-arm64, …/sha256sum-<arch>.txt        …/k3s-arm64, …/sha256sum-<arch>.txt
  /v1-release/channels[/<name>] (302 → tag)  /k3s/channels/<name> (body = version)
  /k3s-io/k3s/releases/tag/<v>
  /repos/k3s-io/k3s/releases  (GitHub API shape: the versions that exist)

Point the install script at it with (see ArtifactServer.install_env()):
  GITHUB_URL=http://H:P/k3s-io/k3s/releases  INSTALL_K3S_CHANNEL_URL=http://H:P/v1-release/channels
or INSTALL_K3S_MIRROR=cn INSTALL_K3S_MIRROR_URL=H:P (the mirror script's scheme-less form).
Unknown versions/files answer 404 like GitHub.

CLI: python -m sandbox.k3s.artifacts --bind HOST --port P [--netns NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sandbox.k3s.binary import binary_bytes, sha256
from sandbox.k3s.versions import ARCHES, CHANNELS, RELEASES, by_mirror_name, release_order
from sandbox.netns import listen_tcp

INSTALL_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "install.sh")
RELEASES_PATH = "/k3s-io/k3s/releases"


def _binary_name(arch: str) -> str:
    return "k3s" if arch == "amd64" else f"k3s-{arch}"


class Catalogue:
    """Artifacts per version, built once (binaries are small scripts)."""

    def __init__(self, python: str) -> None:
        self.files: dict[str, dict[str, bytes]] = {}
        for version in RELEASES:
            files: dict[str, bytes] = {}
            for arch in ARCHES:
                data = binary_bytes(version, arch, python)
                files[_binary_name(arch)] = data
                files[f"sha256sum-{arch}.txt"] = (
                    f"{sha256(data)}  {_binary_name(arch)}\n").encode()
            self.files[version] = files

    def artifact(self, version: str, name: str) -> bytes | None:
        return self.files.get(version, {}).get(name)


class ArtifactHandler(BaseHTTPRequestHandler):
    catalogue: Catalogue
    channels: dict[str, str]  # this server's own copy: a test may move a channel
    server_version = "sandbox-artifacts"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, code: int, body: bytes, content_type: str = "text/plain",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _not_found(self) -> None:
        self._send(404, b"Not Found")

    def _base(self) -> str:
        return f"http://{self.headers.get('Host', '')}"

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/install.sh", "/k3s/k3s-install.sh"):
            with open(INSTALL_SCRIPT, "rb") as handle:
                self._send(200, handle.read(), "text/x-shellscript")
        elif path == "/v1-release/channels":
            self._send(200, json.dumps(self._channels()).encode(), "application/json")
        elif path == "/repos/k3s-io/k3s/releases":
            ordered = sorted(RELEASES, key=release_order, reverse=True)  # newest first
            body = [{"tag_name": v, "name": v, "prerelease": False, "draft": False}
                    for v in ordered]
            self._send(200, json.dumps(body).encode(), "application/json")
        elif not (self._official(path) or self._mirror(path)):
            self._not_found()

    def _official(self, path: str) -> bool:
        """GitHub release downloads/tags and update.k3s.io channel redirects."""
        if path.startswith(RELEASES_PATH + "/download/"):
            parts = path[len(RELEASES_PATH + "/download/"):].split("/")
            data = self.catalogue.artifact(parts[0], parts[1]) if len(parts) == 2 else None
            if data is not None:
                self._send(200, data, "application/octet-stream")
                return True
        elif path.startswith(RELEASES_PATH + "/tag/"):
            version = path[len(RELEASES_PATH + "/tag/"):]
            if version in RELEASES:
                self._send(200, f"<html><title>Release {version}</title></html>".encode(),
                           "text/html")
                return True
        elif path.startswith("/v1-release/channels/"):
            name = path[len("/v1-release/channels/"):]
            if name in self.channels:
                location = f"{self._base()}{RELEASES_PATH}/tag/{self.channels[name]}"
                self._send(302, b"", headers={"Location": location})
                return True
        return False

    def _mirror(self, path: str) -> bool:
        """rancher-mirror.rancher.cn: /k3s/channels/<name> and /k3s/<v-with-dash>/<file>."""
        if path.startswith("/k3s/channels/"):
            name = path[len("/k3s/channels/"):]
            if name in self.channels:
                self._send(200, self.channels[name].encode())
                return True
            return False
        if path.startswith("/k3s/"):
            parts = path[len("/k3s/"):].split("/")
            rel = by_mirror_name(parts[0]) if len(parts) == 2 else None
            data = self.catalogue.artifact(rel.version, parts[1]) if rel else None
            if data is not None:
                self._send(200, data, "application/octet-stream")
                return True
        return False

    def _channels(self) -> dict:
        base = self._base()
        return {
            "type": "collection", "resourceType": "channels",
            "links": {"self": f"{base}/v1-release/channels"}, "actions": {},
            "data": [{"id": name, "type": "channel", "name": name, "latest": version,
                      "links": {"self": f"{base}/v1-release/channels/{name}"}}
                     for name, version in self.channels.items()],
        }


class ArtifactServer:
    """The artifact server in a background thread (tests, the demo, the lab)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, netns: str | None = None,
                 python: str | None = None) -> None:
        self.channels = dict(CHANNELS)
        handler = type("Handler", (ArtifactHandler,),
                       {"catalogue": Catalogue(python or sys.executable),
                        "channels": self.channels})
        self.httpd = ThreadingHTTPServer((host, port), handler, bind_and_activate=False)
        self.httpd.daemon_threads = True
        self.httpd.socket.close()
        self.httpd.socket = listen_tcp(host, port, netns)
        self.host = host
        self.port = int(self.httpd.socket.getsockname()[1])
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def install_script_url(self) -> str:
        return f"{self.base_url}/"

    def install_env(self, mirror: bool = False) -> dict[str, str]:
        """Environment that points the install script at this server."""
        if mirror:
            return {"INSTALL_K3S_MIRROR": "cn",
                    "INSTALL_K3S_MIRROR_URL": f"{self.host}:{self.port}"}
        return {"GITHUB_URL": f"{self.base_url}{RELEASES_PATH}",
                "INSTALL_K3S_CHANNEL_URL": f"{self.base_url}/v1-release/channels"}

    def move_channel(self, name: str, version: str) -> str:
        """Point channel `name` at `version` from now on (a release day); returns the old one.

        Both the update.k3s.io redirect and the mirror's /k3s/channels/<name> answer follow.
        Only releases this server holds can be pointed at, as on the real channel server.
        """
        if version not in RELEASES:
            raise KeyError(f"{version} is not a release this artifact server holds")
        previous = self.channels.get(name, "")
        self.channels[name] = version
        return previous

    def start(self) -> ArtifactServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ArtifactServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--netns", default=None)
    args = parser.parse_args(argv)
    server = ArtifactServer(args.bind, args.port, args.netns).start()
    print(f"serving K3s artifacts on {server.base_url} "
          f"(GITHUB_URL={server.install_env()['GITHUB_URL']})", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
