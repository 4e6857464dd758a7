"""`--secrets-encryption`: the encryption config K3s writes, and `k3s secrets-encrypt status`.

Why: the panel turns Secrets encryption on for new clusters and proves it the way a person
would, with `k3s secrets-encrypt status` on a server. As in K3s (pkg/secretsencrypt,
pkg/cli/secretsencrypt): the first server generates an EncryptionConfiguration with one
AES-CBC key named `aescbckey` (identity as the fallback provider), keeps it in the cluster's
bootstrap data so every server gets the same one, writes it to
`<data-dir>/server/cred/encryption-config.json` (0600), and annotates its Node with the
config's hash (`k3s.io/encryption-config-hash`, "<stage>-<sha256>"). The CLI asks the local
supervisor (GET /v1-k3s/encrypt/status, as user `server`) and prints:

    Encryption Status: Enabled
    Current Rotation Stage: start
    Server Encryption Hashes: All hashes match

    Active  Key Type  Name
    ------  --------  ----
     *      AES-CBC   aescbckey

(the format of docs.k3s.io "CIS Hardening Guide" and of K3s's own e2e tests). Key rotation
(prepare/rotate/reencrypt) is not part of the stand-in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

CONFIG_NAME = os.path.join("cred", "encryption-config.json")
HASH_ANNOTATION = "k3s.io/encryption-config-hash"
BOOTSTRAP_FIELD = "EncryptionConfig"
START = "start"
KEY_NAME = "aescbckey"


def new_config() -> bytes:
    """A fresh EncryptionConfiguration, as K3s generates it on the first server."""
    secret = base64.b64encode(os.urandom(32)).decode()
    config = {
        "kind": "EncryptionConfiguration", "apiVersion": "apiserver.config.k8s.io/v1",
        "resources": [{"resources": ["secrets"], "providers": [
            {"aescbc": {"keys": [{"name": KEY_NAME, "secret": secret}]}},
            {"identity": {}},
        ]}],
    }
    return json.dumps(config).encode()


def config_hash(content: bytes, stage: str = START) -> str:
    return f"{stage}-{hashlib.sha256(content).hexdigest()}"


def status(local_config: bytes | None, servers: list[dict[str, Any]]) -> dict[str, Any]:
    """The supervisor's answer: what this server runs and whether every server agrees."""
    if local_config is None:
        return {"Enable": None}
    mine = config_hash(local_config)
    answer: dict[str, Any] = {"Enable": True, "Stage": START, "HashMatch": True,
                              "HashError": "", "ActiveKey": f"AES-CBC {KEY_NAME}",
                              "InactiveKeys": []}
    for node in servers:
        theirs = node.get("metadata", {}).get("annotations", {}).get(HASH_ANNOTATION, "")
        if theirs != mine:
            name = node.get("metadata", {}).get("name", "")
            answer["HashMatch"] = False
            answer["HashError"] = (f"server {name} has no encryption hash" if not theirs
                                   else f"hash does not match between this server and {name}")
            break
    return answer


def _table(rows: list[tuple[str, str, str]]) -> str:
    """Go's tabwriter with minwidth 0, padding 2: every column but the last is padded."""
    widths = [max(len(row[i]) for row in rows) + 2 for i in range(2)]
    return "".join(f"{a.ljust(widths[0])}{b.ljust(widths[1])}{c}\n" for a, b, c in rows)


def render_status(answer: dict[str, Any]) -> str:
    """What `k3s secrets-encrypt status` prints for the supervisor's answer."""
    if answer.get("Enable") is None:
        return "Encryption Status: Disabled, no configuration file found\n"
    out = f"Encryption Status: {'Enabled' if answer['Enable'] else 'Disabled'}\n"
    out += f"Current Rotation Stage: {answer['Stage']}\n"
    if answer["HashMatch"]:
        out += "Server Encryption Hashes: All hashes match\n"
    else:
        out += f"Server Encryption Hashes: {answer['HashError']}\n"
    rows = [("Active", "Key Type", "Name"), ("------", "--------", "----")]
    if answer.get("ActiveKey"):
        kind, name = answer["ActiveKey"].split(" ", 1)
        rows.append((" *", kind, name))
    for key in answer.get("InactiveKeys", []):
        kind, name = key.split(" ", 1)
        rows.append(("", kind, name))
    return out + "\n" + _table(rows) + "\n"
