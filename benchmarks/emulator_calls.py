"""Benchmark: signed API calls per second the Aliyun emulator serves to the official SDK.

Starts the emulator (loopback mode), then for a fixed time per case runs calls through
`AcsClient.do_action_with_exception` from 1 and from 4 client threads, and prints calls/s
and latency percentiles. The RDS case creates one DB instance (a real mariadbd) and reads
it with DescribeDBInstanceAttribute; without RDS, DescribeRegions is measured alone.

    .venv/bin/python benchmarks/emulator_calls.py [--seconds 3] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aliyunsdkecs.request.v20140526.DescribeRegionsRequest import (  # noqa: E402
    DescribeRegionsRequest,
)
from aliyunsdkrds.request.v20140815.CreateDBInstanceRequest import (  # noqa: E402
    CreateDBInstanceRequest,
)
from aliyunsdkrds.request.v20140815.DescribeDBInstanceAttributeRequest import (  # noqa: E402
    DescribeDBInstanceAttributeRequest,
)

from sandbox.aliyun.testing import Emulator  # noqa: E402

RDS_READY_TIMEOUT = 90.0


def measure(make_call: Callable[[Any], Any], clients: list[Any], seconds: float) -> dict:
    """Run `make_call(client)` in one thread per client until `seconds` have passed."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(client: Any) -> None:
        nonlocal errors
        mine, failed = [], 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                make_call(client)
            except Exception:
                failed += 1
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            errors += failed

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "calls": len(latencies), "errors": errors, "per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
    }


def create_rds_instance(emu: Emulator) -> str | None:
    """One Running DB instance to read, or None when RDS is absent or does not come up."""
    if not any(p.startswith("Rds ") for p in emu.control.health()["products"]):
        return None

    request = CreateDBInstanceRequest()
    for name, value in {
        "Engine": "MySQL", "EngineVersion": "8.0", "DBInstanceClass": "mysql.n2.medium.2c",
        "DBInstanceStorage": 20, "DBInstanceNetType": "Intranet", "SecurityIPList": "127.0.0.1",
        "PayType": "Postpaid", "InstanceNetworkType": "VPC", "VPCId": emu.vpc["vpc_id"],
        "VSwitchId": emu.vswitch["vswitch_id"], "ZoneId": emu.vswitch["zone_id"],
        "DBInstanceStorageType": "cloud_essd",
    }.items():
        getattr(request, f"set_{name}")(value)
    instance_id = emu.call(request)["DBInstanceId"]
    deadline = time.monotonic() + RDS_READY_TIMEOUT
    while time.monotonic() < deadline:
        describe = DescribeDBInstanceAttributeRequest()
        describe.set_DBInstanceId(instance_id)
        items = emu.call(describe)["Items"]["DBInstanceAttribute"]
        if items and items[0]["DBInstanceStatus"] == "Running":
            return instance_id
        time.sleep(0.5)
    print(f"RDS instance {instance_id} not Running after {RDS_READY_TIMEOUT:.0f} s; skipped")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    cases: list[tuple[str, Callable[[Any], Any]]] = [
        ("ECS DescribeRegions", lambda c: c.do_action_with_exception(DescribeRegionsRequest())),
    ]
    with tempfile.TemporaryDirectory() as state_dir, Emulator(state_dir, time_scale=0.01) as emu:
        instance_id = create_rds_instance(emu)
        if instance_id:
            def describe_db(client: Any) -> Any:
                request = DescribeDBInstanceAttributeRequest()
                request.set_DBInstanceId(instance_id)
                return client.do_action_with_exception(request)

            cases.insert(0, ("RDS DescribeDBInstanceAttribute", describe_db))
        results = {}
        for name, make_call in cases:
            for threads in (1, args.threads):
                clients = [emu.client() for _ in range(threads)]
                result = measure(make_call, clients, args.seconds)
                results[f"{name} x{threads}"] = result
                print(f"{name:34s} threads={threads}: {result['per_second']:7.1f} calls/s  "
                      f"p50 {result['p50_ms']:5.1f} ms  p95 {result['p95_ms']:5.1f} ms  "
                      f"({result['calls']} calls, {result['errors']} errors)", flush=True)
        print(json.dumps(results, indent=1))
        if instance_id:
            emu.control.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
