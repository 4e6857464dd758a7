"""`make sandbox`: the whole panel wired to the offline world, for a newcomer's first cluster.

Starts 3 lab hosts, the Aliyun emulator and the K3s artifact server (sandbox/world.py), then
the panel (web, worker, health worker, beat, broker) with a fresh database under var/sandbox/
in which the admin user already owns a "sandbox" cloud account. Prints what to type into the wizard.
Ctrl-C stops everything and removes the lab. Needs root (network namespaces).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from sandbox.world import World, running_world

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var" / "sandbox"
NEEDED = {"sshd": "openssh-server", "mariadbd": "mariadb-server", "curl": "curl",
          "sudo": "sudo", "msgfmt": "gettext", "ip": "iproute2", "nsenter": "util-linux"}
SEARCH_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def missing_packages() -> list[str]:
    return sorted({pkg for tool, pkg in NEEDED.items()
                   if shutil.which(tool, path=SEARCH_PATH) is None})


def ensure_packages() -> None:
    missing = missing_packages()
    if not missing:
        return
    print(f"Installing Debian packages the sandbox needs: {' '.join(missing)}")
    subprocess.run(["apt-get", "update", "-q"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def panel_env(world: World) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "PANEL_VAR_DIR": str(VAR),
        "ALIYUN_ENDPOINT_OVERRIDE": world.endpoint,
        # The emulator also answers as the ECS metadata service: an "ECS instance role"
        # account named k3s-panel works in the demo once that role is created with
        # POST /_emulator/ram/roles (the operator offers only the roles it lists).
        "ALIYUN_ECS_METADATA_ENDPOINT": world.endpoint,
        "PANEL_ECS_ROLES": "k3s-panel",
        "PANEL_K3S_OFFICIAL_BASE_URL": world.install_base_url,
        "PANEL_K3S_MIRROR_BASE_URL": world.install_base_url,
        "PANEL_CLOUD_POLL_SECONDS": "2",
        # The CA the emulated RDS signs its SSL certificates with (the file a user downloads
        # from the RDS console): datastore TLS is on by default in the demo's wizard too.
        "PANEL_RDS_CA_BUNDLE": str(world.emulator.rds_ca_bundle),
    }


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True,
                   input=stdin, text=True, cwd=ROOT)


def describe(world: World, addr: str) -> str:
    hosts = "\n".join(
        f"    {host.ip:<15} root password {host.root_password}   "
        f"(or user {host.user} with key {host.private_key_path})"
        for host in world.lab.hosts
    )
    return f"""
Offline sandbox ready. Open http://{addr}/ and log in as admin
(password in {VAR / 'admin-password.txt'}), then New cluster:
  1. account  : the "sandbox" cloud account, region {world.region}
  2. network  : zone {world.zone}, VPC {world.vpc_id}, vSwitch {world.vswitch_id}
  3. datastore: create an RDS instance, MySQL 8.0 (classes: what the emulator's RDS sells)
  4. hosts    : two servers and an agent among these lab hosts (SSH port 22):
{hosts}
  5. K3s      : install source "Custom base URL" {world.install_base_url}, v1.32.5+k3s1
                (the official source and the China mirror cannot be reached offline)
Everything runs on this machine: RDS instances are real MariaDB servers, the SLB a real TCP
proxy, the hosts real OpenSSH servers in network namespaces. Ctrl-C stops it all.
"""


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:8000")
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.05,
                        help="realistic cloud delays times this (0.05: RDS in 15 s)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("make sandbox needs root: it creates network namespaces, sshd and mariadbd "
                 "processes. Run it with sudo.")
    ensure_packages()
    # SIGTERM (from make, timeout or systemd) must unwind like Ctrl-C, so the lab is removed.
    signal.signal(signal.SIGTERM, _interrupt)
    shutil.rmtree(VAR, ignore_errors=True)  # a fresh demo every time: the old world is gone
    VAR.mkdir(parents=True)
    with running_world(hosts=args.hosts, time_scale=args.time_scale,
                       state_dir=VAR / "world") as world:
        env = panel_env(world)
        manage(env, "migrate", "--verbosity=0")
        manage(env, "ensure_admin")
        manage(env, "add_cloud_account", "--owner=admin", "--name=sandbox",
               f"--access-key-id={world.access_key_id}", f"--region={world.region}",
               stdin=world.access_key_secret + "\n")
        print(describe(world, args.addr), flush=True)
        panel = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runpanel",
                                  f"--addr={args.addr}"], env=env, cwd=ROOT)
        try:
            panel.wait()
        except KeyboardInterrupt:
            # runpanel stops its own children (web, workers, beat, broker) on SIGTERM.
            panel.terminate()
            panel.wait(60)
    print("Sandbox stopped; lab hosts, emulator and artifact server are gone.")


if __name__ == "__main__":
    main()
