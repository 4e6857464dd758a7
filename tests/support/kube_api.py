"""The K3s stand-in's API server (sandbox.k3s.apiserver: its ServiceAccount, RBAC and
TokenRequest handling and its answers) on a loopback port over an in-memory datastore, and
a kubeconfig shaped like the panel's stored one for it: for the personal-kubeconfig tests of
the pages and the REST API, without a K3s process or a database."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from sandbox.k3s import apiserver, certs
from tests.support.memory_kine import MemoryKine


def admin_kubeconfig(server: str, ca: bytes | None = None, ca_key: bytes | None = None) -> str:
    """A kubeconfig shaped like the panel's stored one (real CA and client certificate)."""
    if ca is None or ca_key is None:
        ca, ca_key = certs.new_ca("k3s-client-ca")
    cert, key = certs.client_cert(ca, ca_key, "system:admin", "system:masters")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "shop",
        "clusters": [{"name": "shop", "cluster": {"server": server,
                                                 "certificate-authority-data": b64(ca)}}],
        "contexts": [{"name": "shop", "context": {"cluster": "shop", "user": "shop"}}],
        "users": [{"name": "shop", "user": {"client-certificate-data": b64(cert + ca),
                                            "client-key-data": b64(key)}}]})


@dataclass
class LiveApi:
    kubeconfig: str
    kine: MemoryKine
    context: apiserver.ApiContext  # the stand-in's faults are set here


@contextmanager
def live_kube_api(tmp_dir: Path) -> Iterator[LiveApi]:
    ca, ca_key = certs.new_ca("k3s-server-ca")
    cert, key = certs.serving_cert(ca, ca_key, ["127.0.0.1"])
    _, service_key = certs.new_ca("k3s-service-account")
    store = MemoryKine()
    ctx = apiserver.ApiContext(
        kine=store,  # type: ignore[arg-type]  # the four calls it makes, in memory
        version="v1.33.1+k3s1", git_commit="0" * 40, server_ca=ca, client_ca=ca,
        client_ca_key=ca_key, server_password="s", agent_password="a",
        grace_seconds=lambda: 0.0, service_key=service_key)
    server = apiserver.serve(ctx, "127.0.0.1", 0, cert_pem=cert, key_pem=key,
                             tmp_dir=str(tmp_dir))
    try:
        yield LiveApi(admin_kubeconfig(f"https://127.0.0.1:{server.server_address[1]}", ca,
                                       ca_key), store, ctx)
    finally:
        server.shutdown()
        server.server_close()
