"""Build the stand-in "binary" for one release and architecture.

Why: the install script downloads, hashes and installs a file exactly like the real binary.
Ours is a small Python script: shebang = the venv's python (absolute, so it runs on lab hosts
that share the root filesystem), the version baked in, and the repository on sys.path.
"""

from __future__ import annotations

import hashlib
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def binary_bytes(version: str, arch: str, python: str | None = None) -> bytes:
    python = python or sys.executable
    text = (
        f"#!{python}\n"
        f"# K3s stand-in {version} linux/{arch} (offline sandbox; not the real k3s)\n"
        "import sys\n"
        f"sys.path.insert(0, {REPO_ROOT!r})\n"
        "from sandbox.k3s.cli import main\n"
        f"sys.exit(main({version!r}))\n"
    )
    return text.encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_binary(path: str, version: str, arch: str = "amd64") -> str:
    """Install a stand-in binary at `path` (for tests and INSTALL_K3S_SKIP_DOWNLOAD)."""
    data = binary_bytes(version, arch)
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o755)  # noqa: S103 - an executable, like the real binary
    return path
