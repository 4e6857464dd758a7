"""Cluster bootstrap data in the datastore, keyed and encrypted with the join token like K3s.

Why: this is what makes "a second server with another token" fail with K3s's exact message,
and what makes every server of one datastore share one CA set. Mirrors k3s pkg/cluster:
  storage key  = "/bootstrap/" + sha256(normalized token).hex()[:12]
  ciphertext   = salt + ":" + base64(nonce || AES-256-GCM(data)),
                 key = PBKDF2-HMAC-SHA1(token, salt, 4096 iterations, 32 bytes),
                 salt = 8 random bytes hex-encoded (token.Random(8))
  data         = JSON {field: {"Timestamp": RFC3339, "Content": base64 bytes}} (bootstrap.File)
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sandbox.k3s import logs
from sandbox.k3s.kine import KeyExists, Kine

BOOTSTRAP_PREFIX = "/bootstrap/"
DIFFERENT_TOKEN = "bootstrap data already found and encrypted with different token"  # noqa: S105


class TokenError(ValueError):
    pass


def normalize_token(token: str) -> str:
    """The password part of `<password>` or `K10<hash>::<user>:<password>` (k3s normalizeToken)."""
    if not token:
        raise TokenError("token must not be empty")
    body = token
    if token.startswith("K10"):
        rest = token[3:]
        ca_hash, sep, creds = rest.partition("::")
        if not sep:
            creds, ca_hash = rest, ""
        if ca_hash and len(ca_hash) != 64:
            raise TokenError("invalid token CA hash length")
        user, colon, password = creds.partition(":")
        if not colon or not password or not user:
            raise TokenError("failed to normalize token; must be in format "
                             "K10<CA-HASH>::<USERNAME>:<PASSWORD> or <PASSWORD>")
        return password
    return body


def token_ca_hash(token: str) -> str:
    """The CA hash embedded in a secure token ("" for a short token)."""
    if token.startswith("K10") and "::" in token:
        return token[3:].split("::", 1)[0]
    return ""


def storage_key(passphrase: str) -> str:
    return BOOTSTRAP_PREFIX + hashlib.sha256(passphrase.encode()).hexdigest()[:12]


def encrypt(passphrase: str, plaintext: bytes) -> bytes:
    salt = secrets.token_hex(8)
    key = hashlib.pbkdf2_hmac("sha1", passphrase.encode(), salt.encode(), 4096, 32)
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(key).encrypt(nonce, plaintext, None)
    return f"{salt}:{base64.b64encode(sealed).decode()}".encode()


def decrypt(passphrase: str, ciphertext: bytes) -> bytes:
    salt, sep, body = ciphertext.decode().partition(":")
    if not sep:
        raise ValueError("invalid cipher text, not : delimited")
    key = hashlib.pbkdf2_hmac("sha1", passphrase.encode(), salt.encode(), 4096, 32)
    data = base64.b64decode(body)
    return AESGCM(key).decrypt(data[:12], data[12:], None)


def encode_files(files: dict[str, bytes]) -> bytes:
    stamp = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({
        name: {"Timestamp": stamp, "Content": base64.b64encode(content).decode()}
        for name, content in files.items()
    }).encode()


def decode_files(data: bytes) -> dict[str, bytes]:
    return {name: base64.b64decode(item["Content"]) for name, item in json.loads(data).items()}


def load_or_create(kine: Kine, token: str, generate: Callable[[], dict[str, bytes]]
                   ) -> tuple[dict[str, bytes], bool]:
    """Read the cluster's bootstrap files, or create them under a lock if this is the first server.

    Returns (files, created). Raises logs.Fatal with K3s's message when the datastore holds
    bootstrap data for another token.
    """
    passphrase = normalize_token(token)
    key = storage_key(passphrase)
    for _ in range(600):
        others = [row for row in kine.list(BOOTSTRAP_PREFIX) if row.name != key]
        mine = kine.get(key)
        if mine is None and others:
            raise logs.Fatal(f"starting kubernetes: preparing server: {DIFFERENT_TOKEN}")
        if mine is not None and mine.value:
            logs.info("Reconciling bootstrap data between datastore and disk")
            try:
                return decode_files(decrypt(passphrase, mine.value)), False
            except Exception:
                raise logs.Fatal(
                    f"starting kubernetes: preparing server: {DIFFERENT_TOKEN}") from None
        if mine is None:
            try:
                revision = kine.create(key, b"")
            except KeyExists:
                continue
            logs.info("Bootstrap key locked for initial create")
            files = generate()
            logs.info("Saving cluster bootstrap data to datastore")
            kine.update(key, encrypt(passphrase, encode_files(files)), revision)
            return files, True
        time.sleep(0.5)  # another server holds the lock and is still generating
    raise logs.Fatal("starting kubernetes: preparing server: timed out waiting for bootstrap "
                     "key lock")
