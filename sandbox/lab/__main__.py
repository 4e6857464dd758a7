"""CLI: `python -m sandbox.lab up N [--prefix P] [--subnet CIDR] | down [--prefix P] | status`."""

from __future__ import annotations

import argparse
import sys
import time

from sandbox.lab.lab import Lab, LabError
from sandbox.lab.network import LabNetworkError
from sandbox.lab.state import DEFAULT_STATE_ROOT, LabState


def format_lab(lab: Lab) -> str:
    status = lab.status()
    if lab.state is None:
        leftovers = status.get("leftovers") or []
        return f"lab {lab.prefix}: down" + (f" (leftovers: {', '.join(leftovers)})"
                                              if leftovers else "")
    lines = [
        f"lab {lab.prefix}: {'up' if status['up'] else 'DEGRADED'}  subnet {lab.subnet}  "
        f"gateway {lab.gateway_ip} (bridge {lab.bridge})",
        f"  cloud namespace {lab.cloud_netns}  dev {lab.cloud_dev}  ip {lab.cloud_ip}",
        f"  ssh key {lab.hosts[0].private_key_path if lab.hosts else '-'}",
    ]
    for host, info in zip(lab.hosts, status["hosts"], strict=True):
        lines.append(
            f"  {host.name:<7} {host.hostname:<16} {host.ip:<15} port {host.ssh_port}  "
            f"root/{host.root_password}  {host.user}/{host.user_password} (sudo NOPASSWD)  "
            f"{host.sudo_password_user}/{host.sudo_password_user_password} (sudo with password)"
            + ("" if info["healthy"] else "  NOT RUNNING")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start N hosts (reuses a healthy lab of that size)")
    up.add_argument("count", type=int)
    up.add_argument("--prefix", default="lab")
    up.add_argument("--subnet", default=None, help="a free /24, e.g. 10.213.7.0/24")
    down = commands.add_parser("down", help="remove everything of the lab, also after a crash")
    down.add_argument("--prefix", default="lab")
    status = commands.add_parser("status", help="show labs (all of them without --prefix)")
    status.add_argument("--prefix", default=None)
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            lab = Lab(prefix=args.prefix, subnet=args.subnet)
            started = time.monotonic()
            reused = lab.state is not None
            lab.up(args.count)
            print(format_lab(lab))
            print("reused the running lab" if reused
                  else f"up in {time.monotonic() - started:.1f}s")
        elif args.command == "down":
            started = time.monotonic()
            Lab(prefix=args.prefix).down()
            print(f"lab {args.prefix} down in {time.monotonic() - started:.1f}s")
        else:
            prefixes = [args.prefix] if args.prefix else sorted(
                path.parent.name for path in DEFAULT_STATE_ROOT.glob("*/lab.json")
                if LabState.load(path.parent) is not None
            )
            if not prefixes:
                print("no labs")
            for prefix in prefixes:
                print(format_lab(Lab(prefix=prefix)))
    except (LabError, LabNetworkError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
