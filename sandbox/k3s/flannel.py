"""flannel's part of a stand-in node: pod traffic to the other nodes over VXLAN, 8472/udp.

Why: real K3s carries pod-to-pod traffic between nodes in flannel's VXLAN tunnel, UDP port
8472 ("Required only for Flannel VXLAN", docs.k3s.io/installation/requirements#networking;
flannel's vxlan backend default Port 8472 for the Linux kernel's VXLAN device,
github.com/flannel-io/flannel Documentation/backends.md). When a security group drops
8472/udp between nodes, nothing in `kubectl get nodes` changes (the kubelet stays Ready: it
talks to the API over 6443), but a pod on one node can no longer reach a pod on another.
The stand-in has no pods and no kernel VXLAN device, so this part keeps the same exposure
and the same failure, and no more:

- it listens on UDP 8472 on the node's address (what the host's firewall, generated from
  the security group, must admit from the other nodes);
- every PROBE_SECONDS it sends each other node (the API's node list, InternalIP) one
  datagram to port 8472 and waits for the echo: the stand-in's equivalent of a pod on this
  node pinging a pod on that one;
- it writes what it saw to `<data-dir>/agent/pod-network.json` ({"checked_at": ...,
  "peers": {"10.0.0.12": "reachable" | "unreachable"}}) and logs each change as a warning,
  which is where a test (or a person, over SSH) reads the result of the pod-to-pod check.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

from sandbox.k3s import logs

VXLAN_PORT = 8472
PROBE_SECONDS = float(os.environ.get("K3S_STANDIN_POD_PROBE_SECONDS", "2"))
PROBE_TIMEOUT_SECONDS = 1.0
MAGIC = b"k3s-standin-vxlan "


class Flannel:
    """The listener and the prober of one node (started once, stopped with the node)."""

    def __init__(self, node_ip: str, peers: Callable[[], list[str]], data_dir: str,
                 stop: threading.Event) -> None:
        self.node_ip = node_ip
        self.peers = peers
        self.path = os.path.join(data_dir, "agent", "pod-network.json")
        self.stop = stop
        self.seen: dict[str, str] = {}

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.node_ip, VXLAN_PORT))
        except OSError as exc:
            logs.error(f"flannel: cannot listen on {self.node_ip}:{VXLAN_PORT}/udp: {exc}")
            listener.close()
            return
        listener.settimeout(1.0)
        threading.Thread(target=self._echo, args=(listener,), daemon=True,
                         name="flannel-vxlan").start()
        threading.Thread(target=self._probe_loop, daemon=True, name="flannel-probe").start()

    def _echo(self, listener: socket.socket) -> None:
        with listener:
            while not self.stop.is_set():
                try:
                    data, source = listener.recvfrom(512)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if data.startswith(MAGIC):
                    listener.sendto(data, source)

    def _probe_loop(self) -> None:
        while not self.stop.wait(PROBE_SECONDS):
            try:
                others = [ip for ip in self.peers() if ip and ip != self.node_ip]
            except Exception as exc:
                logs.error(f"flannel: cannot list the nodes: {exc}")
                continue
            result = {ip: "reachable" if probe(ip) else "unreachable" for ip in others}
            for ip, state in result.items():
                if self.seen.get(ip) != state:
                    say = logs.info if state == "reachable" else logs.warn
                    say(f"flannel: pod network to node {ip} is {state} "
                        f"(VXLAN {VXLAN_PORT}/udp)")
            self.seen = result
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            temporary = self.path + ".tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump({"checked_at": time.time(), "peers": result}, handle)
            os.replace(temporary, self.path)


def probe(ip: str) -> bool:
    """One datagram to ip:8472 and its echo back within PROBE_TIMEOUT_SECONDS."""
    nonce = MAGIC + secrets.token_hex(8).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(PROBE_TIMEOUT_SECONDS)
        try:
            sock.sendto(nonce, (ip, VXLAN_PORT))
            deadline = time.monotonic() + PROBE_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                data, source = sock.recvfrom(512)
                if data == nonce and source[0] == ip:
                    return True
        except OSError:
            return False
    return False


def internal_ips(node_list: list[dict]) -> list[str]:
    """Each node's InternalIP, from Node objects as the API lists them."""
    return [a["address"] for n in node_list for a in n.get("status", {}).get("addresses", [])
            if a.get("type") == "InternalIP"]
