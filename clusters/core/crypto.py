"""Encryption of secrets at rest with MultiFernet.

Why: AccessKey secrets, DB passwords, K3s tokens, SSH keys and kubeconfigs must stay
unreadable in a database dump or backup. The first key in PANEL_ENCRYPTION_KEYS encrypts;
every key decrypts, so keys rotate without downtime.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

TOKEN_PREFIX = "fernet:"  # noqa: S105 - a marker, not a password


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def current_fernet() -> MultiFernet:
    return _fernet(tuple(settings.PANEL_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return TOKEN_PREFIX + current_fernet().encrypt(plaintext.encode()).decode()


class DecryptionError(Exception):
    """A stored secret cannot be read with any configured key (a key was dropped too early)."""


def decrypt(token: str) -> str:
    if not token.startswith(TOKEN_PREFIX):
        raise DecryptionError("stored value is not an encrypted token")
    try:
        return current_fernet().decrypt(token[len(TOKEN_PREFIX):].encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError(
            "a stored secret cannot be decrypted with PANEL_ENCRYPTION_KEYS; "
            "was a key removed before `rotate_encryption_keys` ran?"
        ) from exc


def rotate(token: str) -> str:
    """Re-encrypt a stored token with the primary key."""
    return TOKEN_PREFIX + current_fernet().rotate(token[len(TOKEN_PREFIX):].encode()).decode()
