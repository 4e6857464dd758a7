"""PID 1 of one lab host: builds the host's private filesystem view, users and sshd, then reaps.

Runs inside fresh mount, UTS and PID namespaces (created by `unshare`, inside the host's
network namespace). Standalone on purpose (stdlib only, run by the system python with -I):
it must not depend on the virtualenv or the repository being importable.

Why PID 1 matters: processes that outlive their SSH session (units started by `systemctl`)
are re-parented here and reaped; killing this process makes the kernel kill every process
of the host, which is how `Lab.down` guarantees nothing survives.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

MS_BIND = 4096
MS_REC = 16384
MS_RDONLY = 1
MS_REMOUNT = 32
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)

# Paths whose contents must differ per host. Overlays keep the shared content visible but
# make every write private; fresh directories start empty like on a new machine.
OVERLAID = {"etc": "/etc", "var-lib": "/var/lib"}
FRESH = {
    "etc-rancher": "/etc/rancher",
    "etc-systemd-system": "/etc/systemd/system",
    "var-lib-rancher": "/var/lib/rancher",
    "usr-local-bin": "/usr/local/bin",
    "usr-local-sbin": "/usr/local/sbin",
    "var-log": "/var/log",
    "root": "/root",  # fresh: the shared /root holds kubeconfigs and credentials
    "home": "/home",
    "tmp": "/tmp",  # noqa: S108 - the host's own /tmp
    "run": "/run",  # last: bind sources must not live under paths mounted before them
}
SHIMMED = ("systemctl", "journalctl")


def log(message: str) -> None:
    print(f"hostinit: {message}", flush=True)


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    result = _libc.mount(
        source.encode(), target.encode(), fstype.encode() if fstype else None,
        flags, data.encode() if data else None,
    )
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target} ({fstype}): {os.strerror(err)}")


def detach_foreign_namespace_mounts() -> None:
    """Drop copies of other namespaces' /run/netns bind mounts inherited from the root mount ns.

    Left in place they would keep other engineers' network namespaces (and their veths) alive
    for as long as this host lives.
    """
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype == "nsfs":
            target = fields[4].encode().decode("unicode_escape")
            _libc.umount2(target.encode(), MNT_DETACH)


def stage_code_paths(cfg: dict) -> list[tuple[Path, str]]:
    """Bind the checkout and venv aside before fresh directories could hide them."""
    staged = []
    fresh_targets = [Path(target) for target in FRESH.values()]
    for index, path in enumerate(cfg.get("code_keep", [])):
        if not any(Path(path).is_relative_to(target) for target in fresh_targets):
            continue  # not hidden by anything: nothing to do
        stage = Path(cfg["host_dir"]) / "code" / str(index)
        stage.mkdir(parents=True, exist_ok=True)
        mount(path, str(stage), None, MS_BIND | MS_REC, None)
        staged.append((stage, path))
    return staged


def restore_code_paths(staged: list[tuple[Path, str]]) -> None:
    """Put the staged checkout and venv back at their own paths, read-only."""
    for stage, path in staged:
        os.makedirs(path, exist_ok=True)
        mount(str(stage), path, None, MS_BIND | MS_REC, None)
        mount("none", path, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)


def build_filesystem(cfg: dict) -> None:
    host_dir = Path(cfg["host_dir"])
    staged = stage_code_paths(cfg)
    for key, target in OVERLAID.items():
        upper, work = host_dir / "overlay" / key / "upper", host_dir / "overlay" / key / "work"
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        mount("overlay", target, "overlay", 0,
              f"lowerdir={target},upperdir={upper},workdir={work}")
    for key, target in FRESH.items():
        source = host_dir / "fs" / key
        source.mkdir(parents=True, exist_ok=True)
        if key == "root":
            prepare_root_home(source, cfg["root_keep"])
        os.makedirs(target, exist_ok=True)  # /etc/rancher, /var/lib/rancher: inside overlays
        mount(str(source), target, None, MS_BIND | MS_REC, None)
    restore_code_paths(staged)
    os.chmod("/tmp", 0o1777)  # noqa: S103, S108 - what /tmp is everywhere
    os.chmod("/root", 0o700)
    for directory, mode in (("/run/sshd", 0o755), ("/run/systemd/system", 0o755),
                            ("/run/lock", 0o1777), ("/var/log/journal", 0o755)):
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, mode)
    for tool in SHIMMED:
        installed = Path("/usr/local/sbin") / tool
        shutil.copy2(Path(cfg["shim_dir"]) / tool, installed)
        os.chmod(installed, 0o755)  # noqa: S103 - a command everyone may run
        # Bound over the distribution's binary so every PATH (sudo, non-root, `[ -x /bin/...]`)
        # finds the lab's version.
        if os.path.isfile(f"/usr/bin/{tool}"):
            mount(str(installed), f"/usr/bin/{tool}", None, MS_BIND, None)


def prepare_root_home(home: Path, keep: list[str]) -> None:
    """Debian's root dotfiles, plus read-only views of what must stay (the venv's python)."""
    for dotfile in (".bashrc", ".profile"):
        default = Path("/usr/share/base-files/dot" + dotfile)
        if not default.exists():
            default = Path("/etc/skel") / dotfile
        if default.exists():
            shutil.copy(default, home / dotfile)
    for entry in keep:
        original, view = Path("/root") / entry, home / entry
        view.mkdir(exist_ok=True)
        mount(str(original), str(view), None, MS_BIND | MS_REC, None)
        mount("none", str(view), None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)


def hide_lab_state(cfg: dict) -> None:
    """Hosts must not read each other's files or the lab's private key through the state dir."""
    state_dir = cfg["state_dir"]
    if os.path.isdir(state_dir):
        mount("tmpfs", state_dir, "tmpfs", 0, "size=64k,mode=0700")


def set_identity(cfg: dict) -> None:
    hostname = cfg["hostname"]
    socket.sethostname(hostname)
    Path("/etc/hostname").write_text(hostname + "\n")
    Path("/etc/hosts").write_text(
        "127.0.0.1\tlocalhost\n"
        f"{cfg['ip']}\t{hostname}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
    if cfg.get("nameserver"):
        # The host's own resolver (its /etc is an overlay): the cloud's DNS stand-in, never
        # the machine's. A symlink (systemd-resolved's stub) is replaced, not followed.
        resolv = Path("/etc/resolv.conf")
        if resolv.is_symlink():
            resolv.unlink()
        resolv.write_text(f"nameserver {cfg['nameserver']}\noptions timeout:1 attempts:2\n")


def run(argv: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")


def authorize_key(home: str, user: str, public_key: str) -> None:
    ssh_dir = Path(home) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(public_key.strip() + "\n")  # replaces what the shared /root had
    keys.chmod(0o600)
    shutil.chown(ssh_dir, user, user)
    shutil.chown(keys, user, user)


def create_users(cfg: dict) -> None:
    if cfg.get("root_only"):
        create_root_login(cfg)
        return
    accounts = cfg["accounts"]
    for user in (cfg["nopasswd_user"], cfg["password_sudo_user"]):
        run(["useradd", "--create-home", "--shell", "/bin/bash", "--groups", "sudo", user])
    run(["chpasswd"], "".join(f"{user}:{password}\n" for user, password in accounts.items()))
    sudoers = Path("/etc/sudoers.d/90-lab-nopasswd")
    sudoers.write_text(f"{cfg['nopasswd_user']} ALL=(ALL) NOPASSWD:ALL\n")
    sudoers.chmod(0o440)
    for user in accounts:
        home = "/root" if user == "root" else f"/home/{user}"
        authorize_key(home, user, cfg["public_key"])


def create_root_login(cfg: dict) -> None:
    """A bought instance (sandbox/lab/machines.py): root only, with the key pair's public key
    or the password given to RunInstances. Without a password root has none ('*': no
    password matches it), never the machine's own, which the /etc overlay would show."""
    password = cfg["accounts"].get("root", "")
    if password:
        hashed = ["-e"] if cfg.get("accounts_hashed") else []
        run(["chpasswd", *hashed], f"root:{password}\n")
    else:
        run(["usermod", "-p", "*", "root"])
    authorize_key("/root", "root", cfg.get("public_key", ""))


def forget_accounts(config_path: Path, cfg: dict) -> None:
    """A bought host's secret has done its work once root's password is set: rewrite
    host.json without it (the disk keeps /etc/shadow; a later Start gets it anew)."""
    if not cfg.get("root_only") or not cfg.get("accounts"):
        return
    kept = {k: v for k, v in cfg.items() if k != "accounts"}
    kept["accounts"] = {}
    tmp = config_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(kept, out)
    os.replace(tmp, config_path)


def write_os_release(cfg: dict) -> None:
    """The image's identity, where the panel's preflight reads it (/etc is an overlay; the
    distribution's symlink to /usr/lib/os-release is replaced, not followed)."""
    text = cfg.get("os_release")
    if not text:
        return
    target = Path("/etc/os-release")
    if target.is_symlink() or target.exists():
        target.unlink()
    target.write_text(text)


def _own_host_keys(cfg: dict) -> bool:
    """Host keys this host made on an earlier boot (in its own /etc layer)."""
    upper = Path(cfg["host_dir"]) / "overlay" / "etc" / "upper" / "ssh"
    return (upper / "ssh_host_ed25519_key").exists()


def configure_sshd(cfg: dict | None = None) -> None:
    if not (cfg and cfg.get("keep_host_keys") and _own_host_keys(cfg)):
        for key in Path("/etc/ssh").glob("ssh_host_*"):
            key.unlink()  # the root namespace's keys: every host gets its own
        run(["ssh-keygen", "-A"])
    Path("/etc/ssh/sshd_config").write_text(
        "# Lab host sshd: key and password logins for root and the sudo users.\n"
        "Port 22\n"
        "ListenAddress 0.0.0.0\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "HostKey /etc/ssh/ssh_host_ecdsa_key\n"
        "HostKey /etc/ssh/ssh_host_rsa_key\n"
        "PermitRootLogin yes\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM yes\n"
        "X11Forwarding no\n"
        "PrintMotd no\n"
        "MaxStartups 50:30:200\n"
        "AcceptEnv LANG LC_*\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )


def start_sshd() -> subprocess.Popen[bytes]:
    log_file = open("/var/log/sshd.log", "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"],
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, close_fds=True,
    )


def reap_forever(sshd: subprocess.Popen[bytes]) -> None:
    """Reap every orphan of the host; bring sshd back if it dies, as systemd would."""
    sshd_pid = sshd.pid
    while True:
        try:
            pid, _status = os.waitpid(-1, 0)
        except ChildProcessError:
            time.sleep(0.5)
            continue
        if pid == sshd_pid:
            log("sshd exited; restarting in 1s")
            time.sleep(1)
            sshd_pid = start_sshd().pid


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[-1]).read_text())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    detach_foreign_namespace_mounts()
    build_filesystem(cfg)
    set_identity(cfg)
    create_users(cfg)
    forget_accounts(Path(argv[-1]), cfg)
    write_os_release(cfg)
    configure_sshd(cfg)
    hide_lab_state(cfg)
    sshd = start_sshd()
    log(f"{cfg['hostname']} up, sshd pid {sshd.pid}")
    reap_forever(sshd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
