"""TLS to the datastore: the CA the servers and the panel verify the RDS certificate against.

Why: with SSL on, RDS presents a certificate for the instance's connection address signed by
the ApsaraDB CA. No RDS API returns that CA for MySQL (DescribeDBInstanceSSL reports state,
expiry and the protected address only; `ServerCAUrl` is for PostgreSQL on cloud disks): it is
the "Download CA certificate" zip of the RDS console (ApsaraDB-CA-Chain.pem inside). So the
operator places that PEM file on the panel host and names it in PANEL_RDS_CA_BUNDLE; the panel
copies it to each server (/etc/rancher/k3s/datastore-ca.pem, 0600, `datastore-cafile`) and
verifies with it too. A CA that does not match fails before K3s is installed, with a message
that says which file to fix.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from django.conf import settings

from clusters.core.errors import PermanentError
from clusters.models import Cluster, DatastoreKind

SETTING = "PANEL_RDS_CA_BUNDLE"
_HOW = ("download the CA certificate in the RDS console (instance → Data Security → SSL → "
        "Download CA certificate) and set PANEL_RDS_CA_BUNDLE to the ApsaraDB-CA-Chain.pem "
        "file inside the zip")


def uses_tls(cluster: Cluster) -> bool:
    """True when K3s and the panel reach this cluster's datastore over verified TLS."""
    return bool(cluster.datastore_tls) and cluster.datastore_kind == DatastoreKind.RDS


def bundle_configured() -> bool:
    """True when the operator named a CA bundle (the wizard offers TLS on only then)."""
    return bool(getattr(settings, SETTING, ""))


def rds_ca_bundle() -> str:
    """The PEM text of the ApsaraDB CA chain, checked to hold at least one certificate."""
    path = getattr(settings, SETTING, "")
    if not path:
        raise PermanentError(f"Datastore TLS is on, but no CA is configured: {_HOW}.")
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise PermanentError(f"The RDS CA bundle {path} cannot be read ({exc}); {_HOW}.") \
            from None
    try:
        x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise PermanentError(f"The RDS CA bundle {path} holds no PEM certificate; {_HOW}.") \
            from None
    return text


def datastore_ca(cluster: Cluster) -> str | None:
    """The CA PEM the cluster's datastore is verified against, or None (no TLS)."""
    return rds_ca_bundle() if uses_tls(cluster) else None


class _NamedContext(ssl.SSLContext):
    """Verifies the name the client meant, not the address it dialled.

    Why: the panel reaches RDS through an SSH tunnel (127.0.0.1:<port>), and PyMySQL passes
    its `host` as the TLS server name; the certificate names the RDS address.
    """

    server_name: str

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def client_context(ca_pem: str, server_name: str) -> ssl.SSLContext:
    """Verify the chain against `ca_pem` and the certificate's name against `server_name`,
    as kine does (Go's crypto/tls: RootCAs from datastore-cafile, ServerName = the DSN host)."""
    context = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = server_name
    context.load_verify_locations(cadata=ca_pem)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    # Go does not insist on RFC 5280 strictness (e.g. an Authority Key Identifier); neither
    # may the panel, or it would refuse a certificate K3s accepts.
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    return context
