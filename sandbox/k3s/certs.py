"""The cluster's certificates, shaped like K3s's (ECDSA P-256, self-signed CAs, 365-day leaves).

Why: kubectl verifies the server certificate against the cluster server CA and the address in
the kubeconfig against the certificate's SANs. A missing SLB address must fail with the real
x509 error, so SANs are exactly what K3s puts there and nothing more.
"""

from __future__ import annotations

import datetime
import ipaddress
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LEAF_DAYS = 365
CA_DAYS = 3650
# What K3s always adds to the apiserver/supervisor certificate besides node addresses.
DEFAULT_SAN_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                     "kubernetes.default.svc.cluster.local", "localhost")
DEFAULT_SAN_IPS = ("127.0.0.1", "::1", "10.43.0.1")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common: str, org: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if org:
        parts.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(parts)


def new_ca(prefix: str) -> tuple[bytes, bytes]:
    """A self-signed CA named like K3s's (`k3s-server-ca@<unix time>`): (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = _name(f"{prefix}@{int(time.time())}")
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _issue(ca_cert_pem: bytes, ca_key_pem: bytes, subject: x509.Name,
           usage: x509.ObjectIdentifier | list[x509.ObjectIdentifier],
           sans: list[x509.GeneralName] | None, *,
           days: float = LEAF_DAYS) -> tuple[bytes, bytes]:
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):  # new_ca makes P-256 keys, as K3s
        raise ValueError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False,
                                     False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usage if isinstance(usage, list) else [usage]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def serving_sans(hostname: str, node_ips: list[str], tls_sans: list[str]) -> list[str]:
    """Every SAN K3s puts on the serving certificate, de-duplicated, names before IPs."""
    seen: list[str] = []
    for entry in [*DEFAULT_SAN_NAMES, hostname, *DEFAULT_SAN_IPS, *node_ips, *tls_sans]:
        if entry and entry not in seen:
            seen.append(entry)
    return seen


def _general_names(entries: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for entry in entries:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            names.append(x509.DNSName(entry))
    return names


def serving_cert(ca_cert: bytes, ca_key: bytes, sans: list[str]) -> tuple[bytes, bytes]:
    return _issue(ca_cert, ca_key, _name("k3s", "k3s"), ExtendedKeyUsageOID.SERVER_AUTH,
                  _general_names(sans))


def client_cert(ca_cert: bytes, ca_key: bytes, common: str, org: str | None,
                days: float = LEAF_DAYS) -> tuple[bytes, bytes]:
    """A client leaf valid for `days` (365 like K3s; tests pass fewer to age a certificate)."""
    return _issue(ca_cert, ca_key, _name(common, org), ExtendedKeyUsageOID.CLIENT_AUTH, None,
                  days=days)


def renewal_reason(cert_pem: bytes | None, ca_cert_pem: bytes, renew_days: int,
                   now: datetime.datetime | None = None) -> str | None:
    """Why K3s would issue this leaf again at start, or None to keep it.

    K3s's createClientCertKey keeps an existing certificate unless it is missing, not signed
    by the current CA, or expired/within the renewal window (90 days; 120 since the May-2025
    releases): "Any certificates that are expired, or within 90 days of expiring, are
    automatically renewed every time K3s starts."
    """
    if not cert_pem:
        return "missing"
    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
        ca = x509.load_pem_x509_certificate(ca_cert_pem)
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "not signed by the current CA"
    now = now or datetime.datetime.now(datetime.UTC)
    left = leaf.not_valid_after_utc - now
    if left <= datetime.timedelta(days=renew_days):
        return (f"expires at {leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}, within "
                f"{renew_days} days")
    return None


def subject_of(cert_der: bytes) -> tuple[str, list[str]]:
    """(CN, [O...]) of a DER certificate presented by a TLS client."""
    cert = x509.load_der_x509_certificate(cert_der)
    common = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return (str(common[0]) if common else ""), [str(o) for o in orgs]


def etcd_leaf(ca_cert: bytes, ca_key: bytes, common: str, sans: list[str] | None,
              server: bool) -> tuple[bytes, bytes]:
    """An etcd leaf as K3s's deps.genETCDCerts issues it (k3s-io/k3s
    pkg/daemons/control/deps/deps.go): `etcd-client` (client auth only), `etcd-server` and
    `etcd-peer` (server and client auth, SANs localhost, 127.0.0.1 and the node's IPs)."""
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server
              else [ExtendedKeyUsageOID.CLIENT_AUTH])
    return _issue(ca_cert, ca_key, _name(common), usages,
                  _general_names(sans) if sans else None)
