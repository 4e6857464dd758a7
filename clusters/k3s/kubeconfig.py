"""Turn a server's `/etc/rancher/k3s/k3s.yaml` into the kubeconfig a person downloads.

Why: K3s writes `server: https://127.0.0.1:6443` and names everything `default`; the user needs
the load balancer's address (which must be in tls-san) and names that do not collide when
merged with other kubeconfigs. The client certificate expires (365 days), so its notAfter is
returned for the panel to show and watch.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml
from cryptography import x509

from clusters.core.errors import PermanentError

API_PORT = 6443


@dataclass(frozen=True)
class Kubeconfig:
    """The rewritten kubeconfig and what the panel keeps about it."""

    text: str
    server: str
    name: str
    client_cert_not_after: datetime | None  # None for v1.18's basic-auth kubeconfigs
    ca_pem: bytes


def api_url(address: str, port: int = API_PORT) -> str:
    """https://<address>:6443, bracketing an IPv6 address."""
    try:
        is_v6 = isinstance(ipaddress.ip_address(address), ipaddress.IPv6Address)
    except ValueError:
        is_v6 = False
    host = f"[{address}]" if is_v6 else address
    return f"https://{host}:{port}"


def kube_name(cluster_name: str) -> str:
    """A name kubectl users can type: lower-case, digits, - and ."""
    name = re.sub(r"[^a-z0-9.-]+", "-", cluster_name.lower()).strip("-.")
    return name or "k3s"


def _only(items: Any, what: str) -> dict[str, Any]:
    if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
        raise PermanentError(f"The server's k3s.yaml does not have exactly one {what}.")
    return items[0]


def _decode(data: str, what: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise PermanentError(f"The server's k3s.yaml has an unreadable {what}.") from None


def rewrite_kubeconfig(k3s_yaml: str, cluster_name: str, lb_address: str,
                       port: int = API_PORT) -> Kubeconfig:
    """Point the kubeconfig at the load balancer and name it after the cluster."""
    try:
        config = yaml.safe_load(k3s_yaml)
    except yaml.YAMLError:
        raise PermanentError("The server's k3s.yaml is not valid YAML.") from None
    if not isinstance(config, dict) or config.get("kind") != "Config":
        raise PermanentError("The server's k3s.yaml is not a kubeconfig.")
    cluster = _only(config.get("clusters"), "cluster")
    context = _only(config.get("contexts"), "context")
    user = _only(config.get("users"), "user")
    name = kube_name(cluster_name)
    server = api_url(lb_address, port)

    cluster_body = cluster.get("cluster") or {}
    cluster_body["server"] = server
    ca_pem = _decode(cluster_body.get("certificate-authority-data", ""), "cluster CA")
    cluster["name"] = name
    user["name"] = name
    context["name"] = name
    context["context"] = {**(context.get("context") or {}), "cluster": name, "user": name}
    config["current-context"] = name

    not_after = None
    cert_data = (user.get("user") or {}).get("client-certificate-data")
    if cert_data:
        chain = x509.load_pem_x509_certificates(_decode(cert_data, "client certificate"))
        not_after = chain[0].not_valid_after_utc  # the leaf comes first; the CA follows
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    return Kubeconfig(text=text, server=server, name=name, client_cert_not_after=not_after,
                      ca_pem=ca_pem)


def with_token(kubeconfig_text: str, user_name: str, token: str) -> str:
    """The cluster's kubeconfig (server, CA, names) with a bearer-token user instead of the
    admin client certificate: what a personal, revocable download carries.

    The context and user are named `<cluster>-<user_name>`, so a person who merges several
    downloads into one ~/.kube/config keeps them apart; the cluster entry keeps its name.
    """
    config = yaml.safe_load(kubeconfig_text)
    cluster = _only(config.get("clusters"), "cluster")
    context = _only(config.get("contexts"), "context")
    name = f"{cluster['name']}-{kube_name(user_name)}"
    config["users"] = [{"name": name, "user": {"token": token}}]
    context["name"] = name
    context["context"] = {**(context.get("context") or {}), "user": name}
    config["current-context"] = name
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a service-account JWT, read (not verified: the cluster that issued it
    is the one that checks it) for the panel to record its ID (`jti`) and expiry."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        raise PermanentError("The API returned a token that is not a JWT.") from None
    if not isinstance(claims, dict):
        raise PermanentError("The API returned a token that is not a JWT.")
    return claims
