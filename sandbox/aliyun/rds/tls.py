"""RDS SSL: the emulator's own "ApsaraDB" CA and each instance's server certificate.

Why: with SSL on, Alibaba issues the instance a server certificate (valid 365 days) for the one
connection string SSL protects, signed by the ApsaraDB CA chain that users download from the
console (the "Download CA certificate" button: a zip with ApsaraDB-CA-Chain.pem, .jks, .p7b;
neither DescribeDBInstanceSSL nor any other RDS MySQL action returns the certificate). The
emulator keeps one CA per world (its state directory), so a client that verifies against a
different CA fails exactly as it would against real RDS, and a test points the panel's CA
bundle setting at `ca_bundle_path(state_dir)`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_BUNDLE_NAME = "ApsaraDB-CA-Chain.pem"  # the PEM file inside the console's download
CERT_DAYS = 365  # Alibaba: "The SSL certificate is valid for one year"
CA_DAYS = 3650


def ca_bundle_path(state_dir: str | os.PathLike[str]) -> Path:
    """Where the world's CA certificate (what the console would let one download) lives."""
    return Path(state_dir) / "rds" / "ca" / CA_BUNDLE_NAME


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    # PKCS#1 ("BEGIN RSA PRIVATE KEY"): what every MariaDB TLS backend reads.
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def ensure_ca(state_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The world's CA (created once): (certificate path, key path)."""
    cert_path = ca_bundle_path(state_dir)
    key_path = cert_path.with_name("ca.key")
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Emulated ApsaraDB"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "ApsaraDB Emulator Root CA")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                     False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def issue_server_certificate(state_dir: str | os.PathLike[str], home: Path,
                             connection_string: str) -> tuple[Path, Path, datetime.datetime]:
    """A server certificate for `connection_string` (an IP or a host name) in `home/ssl`:
    (certificate path, key path, not-after)."""
    ca_cert_path, ca_key_path = ensure_ca(state_dir)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    key = _new_key()
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=CERT_DAYS)
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(connection_string))
    except ValueError:
        san = x509.DNSName(connection_string)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, connection_string)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory = home / "ssl"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = directory / "server-cert.pem", directory / "server-key.pem"
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                          + ca_cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, not_after
