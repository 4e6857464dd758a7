"""A lab of SSH hosts in network namespaces, bridged to the root namespace.

Why: the panel's real work happens over SSH on hosts with their own IPs, hostnames, files and
processes. Each lab host is a network + mount + UTS + PID namespace running a real OpenSSH
server; a bridge in the root namespace (gateway .1) lets the panel reach them, and one more
namespace (the cloud namespace, .2) carries the addresses of emulated cloud services.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sandbox.lab import names, network, processes
from sandbox.lab.state import DEFAULT_STATE_ROOT, Host, LabState, default_state_dir
from sandbox.private_dir import require_private_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
HOSTINIT = Path(__file__).with_name("hostinit.py")
# The system python: world-readable (the venv's interpreter lives under /root, mode 0700),
# so unprivileged SSH users can run the host's systemctl and journalctl.
HOST_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOPASSWD_USER = "ubuntu"
PASSWORD_SUDO_USER = "deploy"  # noqa: S105 - a user name, not a password
SSH_READY_TIMEOUT = 60.0


class LabError(RuntimeError):
    pass


def _password() -> str:
    return secrets.token_urlsafe(12)


def _shim(module: str) -> str:
    code = (
        f"import sys; sys.path.insert(0, {json.dumps(str(REPO_ROOT))}); "
        f"from sandbox.lab.hostctl.{module} import main; sys.exit(main(sys.argv[1:]))"
    )
    return f"#!/bin/sh\nexec {HOST_PYTHON} -I -c '{code}' \"$@\"\n"


def _root_paths_to_keep() -> list[str]:
    """Entries of the shared /root that hosts still need: the interpreter behind the venv.

    Hosts get a fresh /root (the shared one holds kubeconfigs and credentials), but the
    K3s stand-in's shebang points at the venv's python, which pyenv keeps under /root.
    """
    keep = set()
    for executable in (sys.executable, HOST_PYTHON):
        real = Path(os.path.realpath(executable))
        if real.is_relative_to("/root") and real != Path("/root"):
            keep.add(real.relative_to("/root").parts[0])
    return sorted(keep)


def _code_paths_to_keep() -> list[str]:
    """The checkout and its venv: the K3s stand-in runs from them on every host.

    A checkout under a path hosts get fresh (/tmp, /home, /root...) would otherwise vanish
    inside the hosts; hostinit binds these back, read-only, at the same paths.
    """
    checkout = Path(__file__).resolve().parents[2]
    return sorted({str(checkout), str(Path(sys.prefix).resolve())})


class Lab:
    """Create, inspect and tear down one lab, identified by its prefix."""

    def __init__(
        self, prefix: str = "lab", subnet: str | None = None, state_dir: str | Path | None = None
    ) -> None:
        self.prefix = names.check_prefix(prefix)
        self.requested_subnet = ipaddress.IPv4Network(subnet) if subnet else None
        self.state_dir = Path(state_dir) if state_dir else default_state_dir(prefix)
        self.state: LabState | None = LabState.load(self.state_dir)
        self._launchers: list[subprocess.Popen[bytes]] = []

    # -- what other components read -------------------------------------------------------
    def _require_state(self) -> LabState:
        if self.state is None:
            raise LabError(f"lab {self.prefix!r} is not up (no {self.state_dir}/lab.json)")
        return self.state

    @property
    def hosts(self) -> list[Host]:
        return self._require_state().hosts

    @property
    def subnet(self) -> str:
        return self._require_state().subnet

    @property
    def gateway_ip(self) -> str:
        return self._require_state().gateway_ip

    @property
    def cloud_netns(self) -> str:
        return self._require_state().cloud_netns

    @property
    def cloud_dev(self) -> str:
        return self._require_state().cloud_dev

    @property
    def cloud_ip(self) -> str:
        return self._require_state().cloud_ip

    @property
    def bridge(self) -> str:
        return self._require_state().bridge

    def host(self, name_or_host: str | Host) -> Host:
        if isinstance(name_or_host, Host):
            return name_or_host
        for host in self.hosts:
            if name_or_host in (host.name, host.hostname, host.ip):
                return host
        raise LabError(f"no host {name_or_host!r} in lab {self.prefix!r}")

    # -- lifecycle -----------------------------------------------------------------------
    def up(self, count: int) -> LabState:
        """Start `count` hosts; reuse a healthy lab of the same size, refuse anything else."""
        if not 1 <= count <= names.MAX_HOSTS:
            raise LabError(f"host count must be between 1 and {names.MAX_HOSTS}, got {count}")
        if self.state is not None:
            if len(self.state.hosts) == count and all(self.is_healthy(h) for h in self.state.hosts):
                return self.state
            raise LabError(
                f"lab {self.prefix!r} already exists ({len(self.state.hosts)} hosts, "
                f"healthy={self._all_healthy()}); run `python -m sandbox.lab down "
                f"--prefix {self.prefix}` first"
            )
        leftovers = network.existing_netns(self.prefix) + network.existing_links(self.prefix)
        if leftovers:
            raise LabError(
                f"leftovers of lab {self.prefix!r} exist ({', '.join(leftovers)}); run "
                f"`python -m sandbox.lab down --prefix {self.prefix}` first"
            )
        if self.state_dir.exists() and any(self.state_dir.iterdir()):
            raise LabError(f"state dir {self.state_dir} exists and is not empty")
        try:
            self._create(count)
        except BaseException:
            self.down()
            raise
        return self._require_state()

    def _create(self, count: int) -> None:
        if self.state_dir.parent == DEFAULT_STATE_ROOT:  # under /var/tmp: root's own only
            require_private_dir(DEFAULT_STATE_ROOT)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path = self.state_dir / "id_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"lab-{self.prefix}",
             "-f", str(key_path)],
            check=True, capture_output=True,
        )
        public_key = key_path.with_suffix(".pub").read_text().strip()
        shim_dir = self.state_dir / "shims"
        shim_dir.mkdir()
        for tool in ("systemctl", "journalctl"):
            (shim_dir / tool).write_text(_shim(tool))
            (shim_dir / tool).chmod(0o755)

        with network.subnet_lock():
            if self.requested_subnet is not None:
                network.check_subnet_free(self.requested_subnet)
                subnet = self.requested_subnet
            else:
                subnet = network.pick_free_subnet()
            addresses = list(subnet.hosts())
            gateway = str(addresses[names.GATEWAY_IP_OFFSET - 1])
            self.state = LabState(
                prefix=self.prefix, subnet=str(subnet), gateway_ip=gateway,
                bridge=names.bridge(self.prefix), cloud_netns=names.cloud_netns(self.prefix),
                cloud_dev=names.CLOUD_DEV, cloud_ip=str(addresses[names.CLOUD_IP_OFFSET - 1]),
                state_dir=str(self.state_dir),
            )
            self.state.save()
            network.create_bridge(self.state.bridge, f"{gateway}/{subnet.prefixlen}")

        state = self.state
        network.attach_namespace(
            state.cloud_netns, state.bridge, names.cloud_veth(self.prefix), state.cloud_dev,
            f"{state.cloud_ip}/{subnet.prefixlen}",
        )
        for index in range(1, count + 1):
            netns = names.host_netns(self.prefix, index)
            host = Host(
                name=names.host_name(index), hostname=netns, netns=netns,
                ip=str(addresses[names.HOST_IP_OFFSET + index - 1]), ssh_port=22,
                root_password=_password(), user=NOPASSWD_USER, user_password=_password(),
                sudo_password_user=PASSWORD_SUDO_USER, sudo_password_user_password=_password(),
                private_key_path=str(key_path), public_key=public_key,
            )
            network.attach_namespace(
                netns, state.bridge, names.host_veth(self.prefix, index), names.HOST_DEV,
                f"{host.ip}/{subnet.prefixlen}",
            )
            self._launch(host, shim_dir)
            state.hosts.append(host)
            state.save()
        for host in state.hosts:
            self._wait_until_ready(host)
        state.save()

    def _launch(self, host: Host, shim_dir: Path) -> None:
        host_dir = self.state_dir / host.name
        host_dir.mkdir(mode=0o700)
        config = {
            "hostname": host.hostname, "ip": host.ip, "host_dir": str(host_dir),
            # The VPC's resolver, as DHCP names it to an ECS instance: the cloud address,
            # where the emulator's DNS stand-in answers NLB names (sandbox/aliyun/nlb/dns).
            "nameserver": self._require_state().cloud_ip,
            "state_dir": str(self.state_dir), "shim_dir": str(shim_dir),
            "root_keep": _root_paths_to_keep(),
            "code_keep": _code_paths_to_keep(),
            "public_key": host.public_key, "nopasswd_user": host.user,
            "password_sudo_user": host.sudo_password_user,
            "accounts": {
                "root": host.root_password, host.user: host.user_password,
                host.sudo_password_user: host.sudo_password_user_password,
            },
        }
        config_path = host_dir / "host.json"
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(config, out)
        with open(host_dir / "init.log", "ab") as log:
            self._launchers.append(subprocess.Popen(
                ["ip", "netns", "exec", host.netns,
                 "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child",
                 "--mount-proc", "--propagation", "private", "--",
                 HOST_PYTHON, "-I", str(HOSTINIT), "--lab-prefix", self.prefix,
                 "--host", host.name, str(config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            ))

    def _wait_until_ready(self, host: Host) -> None:
        """Ready means sshd answers with its banner on the host's address, seen from the panel."""
        deadline = time.monotonic() + SSH_READY_TIMEOUT
        log = self.state_dir / host.name / "init.log"
        while time.monotonic() < deadline:
            if not host.init_pid:
                host.init_pid = processes.find_host_init(self.prefix, host.name) or 0
            elif not processes.is_alive(host.init_pid):
                raise LabError(f"host {host.hostname} died while starting:\n{log.read_text()}")
            with contextlib.suppress(OSError), \
                    socket.create_connection((host.ip, host.ssh_port), timeout=1) as sock:
                sock.settimeout(2)
                if sock.recv(64).startswith(b"SSH-") and host.init_pid:
                    return
            time.sleep(0.05)
        raise LabError(f"host {host.hostname} not reachable over SSH:\n{log.read_text()}")

    def is_healthy(self, host: Host) -> bool:
        return bool(host.init_pid) and processes.is_alive(host.init_pid) and \
            processes.is_host_process(host.init_pid, self.prefix, host.name)

    def _all_healthy(self) -> bool:
        return self.state is not None and all(self.is_healthy(h) for h in self.state.hosts)

    def down(self) -> None:
        """Remove every process, namespace, link and file of this lab, also after a crash."""
        netns_names = network.existing_netns(self.prefix)
        survivors = processes.kill_and_wait(processes.lab_pids(self.prefix, netns_names))
        for launcher in self._launchers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                launcher.wait(timeout=5)
        self._launchers.clear()
        network.delete_links(self.prefix)
        network.delete_netns(self.prefix)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        self.state = None
        if survivors:
            raise LabError(f"processes of lab {self.prefix!r} survived SIGKILL: {survivors}")

    def status(self) -> dict[str, Any]:
        """What is up, in a form both the CLI and tests can read."""
        if self.state is None:
            leftovers = network.existing_netns(self.prefix) + network.existing_links(self.prefix)
            return {"prefix": self.prefix, "up": False, "leftovers": leftovers}
        return {
            "prefix": self.prefix, "up": self._all_healthy(), "subnet": self.subnet,
            "gateway_ip": self.gateway_ip, "bridge": self.bridge,
            "cloud_netns": self.cloud_netns, "cloud_dev": self.cloud_dev,
            "cloud_ip": self.cloud_ip, "state_dir": str(self.state_dir),
            "hosts": [
                {**host.__dict__, "healthy": self.is_healthy(host)} for host in self.hosts
            ],
        }

    # -- acting on hosts -----------------------------------------------------------------
    def run(
        self, host: str | Host, command: str | Sequence[str], *, input: str | None = None,
        timeout: float | None = 60, env: Mapping[str, str] | None = None, check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as root inside a host (its network, mount, UTS and PID namespaces).

        A string runs through /bin/sh -c; a sequence is exec'd as is.
        """
        target = self.host(host)
        if not self.is_healthy(target):
            raise LabError(f"host {target.hostname} is not running")
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        environment = {"PATH": ROOT_PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root",
                       "SHELL": "/bin/bash", "LANG": "C.UTF-8", **(env or {})}
        return subprocess.run(
            ["nsenter", "-t", str(target.init_pid), "-n", "-m", "-u", "-p", "--", *argv],
            input=input, capture_output=True, text=True, timeout=timeout, env=environment,
            cwd="/", check=check,
        )
