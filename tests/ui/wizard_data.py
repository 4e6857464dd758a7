"""What a person types into the wizard, as POST data (shared by client and browser tests)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def host_rows(*rows: dict[str, Any]) -> dict[str, Any]:
    """The hosts formset's POST data; each row defaults to a root server with a password."""
    data: dict[str, Any] = {"hosts-TOTAL_FORMS": len(rows), "hosts-INITIAL_FORMS": 0,
                            "hosts-MIN_NUM_FORMS": 1, "hosts-MAX_NUM_FORMS": 50}
    for index, row in enumerate(rows):
        values = {"role": "server", "ssh_port": 22, "ssh_user": "root", "auth": "password",
                  "password": "s3cret-pass", "public_ip": "", **row}
        data.update({f"hosts-{index}-{key}": value for key, value in values.items()})
    return data


def openssh_key() -> str:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()).decode()
