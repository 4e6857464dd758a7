"""Directories of root's own under world-writable /tmp and /var/tmp.

Why: anyone may create a name there first (a directory of theirs, or a symlink to somewhere
else) to have root write secrets into it, truncate files through it or start a server from
files they planted. `mkdir(exist_ok=True)` accepts all of these.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path


def private_dir(path: Path) -> bool:
    """Create `path` (0700) or accept it only if it is a real directory of this user that
    nobody else could write into (then made 0700, as older versions left such directories
    0755). False: do not use it. The parent must exist."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:  # a symlink (ELOOP), not a directory, gone
        return False
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def require_private_dir(path: Path) -> Path:
    """`private_dir`, or an error that says what to remove."""
    if not private_dir(path):
        raise RuntimeError(f"{path} is not a directory of this user with mode 0700 (someone "
                           "else made it, or it is a symlink): remove it")
    return path
