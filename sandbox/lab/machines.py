"""Lab hosts the cloud buys: one more namespace host per ECS instance, started on request.

Why: ECS RunInstances in the emulator must give the panel a real machine (network namespace,
OpenSSH, the image's /etc/os-release, the key pair's public key for root or the password),
reachable on the lab bridge like the hosts `Lab.up` made. The emulator runs as a separate
process (root, like the lab), so the handle it gets is the lab's state directory
(`--lab-state-dir`): everything needed (prefix, bridge, cloud address, shims) is in
`lab.json`, and every name follows `sandbox.lab.names`, so `Lab.down` (in any process) finds
and removes bought hosts too: their init carries `--lab-prefix`, their namespace is
`<prefix>-node<N>`, their veth `<prefix>-v<N>`, their files live under the lab's state dir.
Bought hosts are not written into lab.json (the lab's own list stays the hosts it made);
the emulator's state records them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.lab import names, network, processes
from sandbox.lab.lab import HOST_PYTHON, HOSTINIT, _code_paths_to_keep, _root_paths_to_keep
from sandbox.lab.state import LabState

FIRST_BOUGHT_INDEX = 50  # Lab.up numbers its hosts from 1; bought ones from here (to 99)
# Seconds a host may take to answer SSH on an idle machine; `ready_timeout` stretches it
# by the load per core (a 2-core machine running eight test sessions boots slower).
READY_TIMEOUT = 120.0
MAX_READY_TIMEOUT = 600.0
_INDEX_LOCK = "machines.lock"


class MachineError(RuntimeError):
    pass


@dataclass
class MachineSpec:
    """What the cloud asks for: identity, addresses, and how root logs in."""

    key: str                  # the instance id: names the host's directory
    hostname: str
    addresses: list[str]      # "ip/prefixlen" on eth0: the private one first
    os_release: str           # the image's /etc/os-release
    root_public_key: str = ""
    root_password_hash: str = ""  # crypt(3) form, as /etc/shadow holds it; never the password
    nameserver: str = ""
    mac: str = ""             # the ENI's MAC: kept across Stop/Start (neighbours' caches)


@dataclass
class Machine:
    index: int
    netns: str
    veth: str
    host_dir: str
    init_pid: int


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    with open(state_dir / _INDEX_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_index(prefix: str) -> int:
    used = set(network.existing_netns(prefix)) | set(network.existing_links(prefix))
    for index in range(FIRST_BOUGHT_INDEX, names.MAX_HOSTS + 1):
        if names.host_netns(prefix, index) not in used and \
                names.host_veth(prefix, index) not in used:
            return index
    raise MachineError(f"lab {prefix!r} has no free host slot left "
                       f"({FIRST_BOUGHT_INDEX}-{names.MAX_HOSTS})")


def load_lab(state_dir: str | Path) -> LabState:
    state = LabState.load(state_dir)
    if state is None:
        raise MachineError(f"no lab at {state_dir} (no lab.json)")
    return state


def launch(state_dir: str | Path, spec: MachineSpec) -> Machine:
    """Plug a new namespace into the lab bridge and start its init; returns at once
    (`wait_ready` tells when sshd answers)."""
    lab = load_lab(state_dir)
    root = Path(lab.state_dir)
    with _locked(root):
        index = _free_index(lab.prefix)
        netns, veth = names.host_netns(lab.prefix, index), names.host_veth(lab.prefix, index)
        first, *more = spec.addresses
        network.attach_namespace(netns, lab.bridge, veth, names.HOST_DEV, first)
    if spec.mac:
        network.ip("-n", netns, "link", "set", "dev", names.HOST_DEV, "address", spec.mac)
    for extra in more:
        network.ip("-n", netns, "addr", "add", extra, "dev", names.HOST_DEV)
    # Forget what the lab's bridge and cloud namespace knew of these addresses (another
    # MAC, if a released instance had one of them): the lab's own tables only.
    for address in spec.addresses:
        ip_only = address.split("/")[0]
        network.ip("neigh", "flush", "to", ip_only, "dev", lab.bridge, check=False)
        network.ip("-n", lab.cloud_netns, "neigh", "flush", "to", ip_only, check=False)
    host_dir = root / f"bought-{spec.key}"
    host_dir.mkdir(mode=0o700, exist_ok=True)
    accounts = {"root": spec.root_password_hash} if spec.root_password_hash else {}
    config = {
        "hostname": spec.hostname, "ip": first.split("/")[0], "host_dir": str(host_dir),
        "nameserver": spec.nameserver or lab.cloud_ip, "state_dir": lab.state_dir,
        "shim_dir": str(root / "shims"), "root_keep": _root_paths_to_keep(),
        "code_keep": _code_paths_to_keep(), "public_key": spec.root_public_key,
        "root_only": True, "keep_host_keys": True, "os_release": spec.os_release,
        "accounts": accounts, "accounts_hashed": True,
    }
    config_path = host_dir / "host.json"
    fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(config, out)
    host_name = f"bought-{spec.key}"
    with open(host_dir / "init.log", "ab") as log:
        subprocess.Popen(
            ["ip", "netns", "exec", netns,
             "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child",
             "--mount-proc", "--propagation", "private", "--",
             HOST_PYTHON, "-I", str(HOSTINIT), "--lab-prefix", lab.prefix,
             "--host", host_name, str(config_path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    return Machine(index, netns, veth, str(host_dir), 0)


def ready_timeout() -> float:
    """READY_TIMEOUT times the 1-minute load average per core (at least 1), capped."""
    try:
        per_core = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        per_core = 1.0
    return min(MAX_READY_TIMEOUT, READY_TIMEOUT * max(1.0, per_core))


def wait_ready(state_dir: str | Path, machine: Machine, ip: str,
               timeout: float | None = None) -> int:
    """The init's pid once sshd answers with its banner on `ip` (seen from inside the
    host's own namespace, so a security group cannot hide it)."""
    lab = load_lab(state_dir)
    host_name = Path(machine.host_dir).name
    timeout = ready_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not machine.init_pid:
            machine.init_pid = processes.find_host_init(lab.prefix, host_name) or 0
        elif not processes.is_alive(machine.init_pid):
            raise MachineError(f"{host_name} died while starting: {_log_tail(machine)}")
        if machine.init_pid and _banner(machine.netns, ip):
            return machine.init_pid
        time.sleep(0.05)
    raise MachineError(f"{host_name} not answering SSH in {timeout:.0f} s: {_log_tail(machine)}")


def _banner(netns: str, ip: str) -> bool:
    from sandbox.netns import connect_tcp  # noqa: PLC0415 - keeps the lab CLI light

    try:
        sock = connect_tcp(ip, 22, netns, timeout=1)
    except OSError:
        return False
    with sock:
        sock.settimeout(2)
        try:
            return sock.recv(64).startswith(b"SSH-")
        except (TimeoutError, OSError):
            return False


def _log_tail(machine: Machine) -> str:
    try:
        return (Path(machine.host_dir) / "init.log").read_text()[-2000:]
    except OSError:
        return "(no log)"


def power_off(machine: Machine) -> None:
    """SIGKILL the host's init (the kernel ends every process of its PID namespace) and
    unplug its namespace; its files stay, so a Start brings the same disk back."""
    if machine.init_pid and processes.is_alive(machine.init_pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(machine.init_pid, signal.SIGKILL)
        processes.kill_and_wait({machine.init_pid})
    leftovers = set(network.netns_pids(machine.netns)) - processes.protected_pids()
    processes.kill_and_wait(leftovers)
    network.ip("link", "del", machine.veth, check=False)
    network.ip("netns", "del", machine.netns, check=False)
    with contextlib.suppress(OSError):
        os.unlink(os.path.join("/run/netns", machine.netns))
    machine.init_pid = 0


def destroy(machine: Machine) -> None:
    """Power off and delete the host's disk (its directory)."""
    power_off(machine)
    shutil.rmtree(machine.host_dir, ignore_errors=True)


def remove_disk(state_dir: str | Path, key: str) -> None:
    """Delete a bought host's directory (its disk) by the instance id, whatever powered
    it off."""
    lab = load_lab(state_dir)
    shutil.rmtree(Path(lab.state_dir) / f"bought-{key}", ignore_errors=True)


def nft_apply(netns: str, ruleset: str) -> None:
    """Load an nftables ruleset inside the host's network namespace (atomically: `nft -f`
    replaces the table in one transaction)."""
    nft = shutil.which("nft") or "/usr/sbin/nft"
    if not os.path.exists(nft):
        raise MachineError("nft not found: install Debian's nftables (tests/prepare-machine.sh)")
    result = subprocess.run(["ip", "netns", "exec", netns, nft, "-f", "-"],
                            input=ruleset, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MachineError(f"nft in {netns}: {result.stderr.strip()}")
