"""What `k3s secrets-encrypt status` prints, read back.

Why: with `secrets-encryption: true` every server must run the same encryption config, or a
server cannot read the Secrets another wrote. K3s reports both facts in this command's text
(pkg/cli/secretsencrypt Status): "Encryption Status: Enabled", "Current Rotation Stage:
start" and "Server Encryption Hashes: All hashes match" (or the mismatch it found). The
panel proves them after install the way a person would.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUS_COMMAND = ("k3s", "secrets-encrypt", "status")
HASHES_MATCH = "All hashes match"


@dataclass(frozen=True)
class EncryptionStatus:
    enabled: bool
    stage: str
    hashes: str  # "All hashes match", or K3s's text about the mismatch

    @property
    def healthy(self) -> bool:
        return self.enabled and self.hashes == HASHES_MATCH


def parse_status(text: str) -> EncryptionStatus:
    """The three status lines; ValueError when the text is not that command's output."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("Encryption Status", "Current Rotation Stage",
                                   "Server Encryption Hashes"):
            fields[key.strip()] = value.strip()
    if "Encryption Status" not in fields:
        raise ValueError("no 'Encryption Status' line")
    return EncryptionStatus(enabled=fields["Encryption Status"].startswith("Enabled"),
                            stage=fields.get("Current Rotation Stage", ""),
                            hashes=fields.get("Server Encryption Hashes", ""))
