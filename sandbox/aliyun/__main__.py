"""Command line: `python -m sandbox.aliyun serve --port P --state-dir D --time-scale F
[--netns NAME --netns-dev DEV]`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import cast

from sandbox.aliyun.gateway.cloud import Cloud
from sandbox.aliyun.gateway.server import ApiServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox.aliyun")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the emulated Alibaba Cloud OpenAPI")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--state-dir", required=True)
    serve.add_argument("--time-scale", type=float, default=1.0,
                       help="realistic durations are multiplied by this (0.01 = 100x faster)")
    serve.add_argument("--netns", default=None, help="cloud network namespace for services")
    serve.add_argument("--netns-dev", default=None, help="device in --netns for /32 addresses")
    serve.add_argument("--lab-state-dir", default=None,
                       help="the lab's state dir: RunInstances starts real lab hosts there")
    serve.add_argument("--fault-seed", type=int, default=None,
                       help="seed for probability-based faults (reproducible chaos)")
    serve.add_argument("--exit-with-parent", action="store_true",
                       help="shut down (stopping listeners and processes) if the parent dies")
    return parser


def _watch_parent(parent: int, server: ApiServer) -> None:
    """A test run killed hard must not leave an emulator (and its listeners) behind."""
    while os.getppid() == parent:
        time.sleep(0.5)
    server.shutdown()


def serve(args: argparse.Namespace) -> int:
    if not args.host.startswith("127."):
        print("the API listens on loopback only", file=sys.stderr)
        return 2
    cloud = Cloud(args.state_dir, args.time_scale, args.netns, args.netns_dev, args.fault_seed,
                  lab_state_dir=args.lab_state_dir)
    server = ApiServer((args.host, args.port), cloud)
    cloud.start()

    def shutdown(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    if args.exit_with_parent:
        threading.Thread(target=_watch_parent, args=(os.getppid(), server), daemon=True).start()
    host, port = cast(tuple[str, int], server.server_address[:2])  # an AF_INET server
    print(f"listening on {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        cloud.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
