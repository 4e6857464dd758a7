"""Test harness: start the emulator as a subprocess, drive its control API, build SDK clients.

Why: tests and the demo must exercise the emulator exactly as the panel will, over HTTP with
the official SDK, and must never leave a server behind; `Emulator` is a context manager that
owns the process, and `ControlClient` speaks the unsigned control API.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import selectors
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from sandbox.aliyun.rds.tls import ensure_ca

REPO_ROOT = Path(__file__).resolve().parents[2]
PRODUCT_CODES = ("Ecs", "Vpc", "Slb", "Nlb", "Rds", "Sts")
DEFAULT_REGION = "cn-hangzhou"
NO_PROXY = {"http": None, "https": None}


class ControlError(RuntimeError):
    """The control API refused a request (status and message included)."""


class ControlClient:
    """Client of `/_emulator/`; ignores any HTTP proxy from the environment (loopback only)."""

    def __init__(self, endpoint: str, timeout: float = 30.0) -> None:
        self.base = f"http://{endpoint}/_emulator/"
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - the base is always http://127.x
           self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with self._opener.open(req, timeout=self.timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise ControlError(f"{method} {path}: HTTP {exc.code} {exc.read().decode()}") from None

    def health(self) -> dict[str, Any]:
        return self.request("GET", "health")

    def add_account(self, access_key_id: str, access_key_secret: str,
                    policy: dict[str, Any] | None = None, *, name: str = "",
                    root: bool = False) -> None:
        """A RAM user's AccessKey; `policy` (a RAM policy document) limits what it may call."""
        self.request("POST", "accounts", {"access_key_id": access_key_id,
                                          "access_key_secret": access_key_secret,
                                          "policy": policy, "name": name, "root": root})

    def create_role(self, name: str, *, policy: dict[str, Any] | None = None,
                    external_id: str | None = None, ecs: bool = False,
                    max_session_duration: int | None = None) -> str:
        """A RAM role this account may assume (or, `ecs`, attached to the panel's ECS
        instance and served by the metadata stand-in); returns its ARN."""
        return str(self.request("POST", "ram/roles", {
            "name": name, "policy": policy, "external_id": external_id, "ecs": ecs,
            "max_session_duration": max_session_duration})["arn"])

    def sts_tokens(self) -> list[dict[str, Any]]:
        """Temporary credentials STS issued so far (key ids, roles, sources; no secrets)."""
        return list(self.request("GET", "sts/tokens")["tokens"])

    def expire_sts_tokens(self, role: str = "") -> int:
        return int(self.request("POST", "sts/expire", {"role": role})["expired"])

    def seed(self, document: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "seed", document)

    def add_instance(self, **fields: Any) -> str:
        """Register a host as an ECS instance; returns its instance id."""
        return self.request("POST", "instances", fields)["instance_id"]

    def add_api_only_rds(self, count: int, vswitch_id: str, **fields: Any) -> list[str]:
        """Running RDS records with no server (POST rds/api-only-instances): scale runs."""
        return list(self.request("POST", "rds/api-only-instances",
                                 {"count": count, "vswitch_id": vswitch_id, **fields})
                    ["instance_ids"])

    def change_api_only_rds(self, instance_id: str, *, status: str = "",
                            storage: int = 0) -> dict[str, Any]:
        """An API-only instance's status or storage as a spec change moves them (POST
        rds/api-only-instances/change)."""
        return dict(self.request("POST", "rds/api-only-instances/change", {
            "instance_id": instance_id, "status": status, "storage": storage}))

    def seed_legacy_load_balancer(self, **fields: Any) -> dict[str, Any]:
        """A pay-by-specification CLB bought before 2025-06-01 (POST slb/legacy-load-balancers)."""
        return self.request("POST", "slb/legacy-load-balancers", fields)

    def start_nlb_dns(self, address: str, port: int = 53) -> tuple[str, int]:
        """Serve NLB DNS names on address:port (0: any free port); returns where. Kept across
        restarts (POST nlb/dns)."""
        found = self.request("POST", "nlb/dns", {"address": address, "port": port})
        return str(found["address"]), int(found["port"])

    def nlb_dns(self) -> dict[str, Any]:
        """{address?, port?, records: {dns name: [addresses]}} (GET nlb/dns)."""
        return dict(self.request("GET", "nlb/dns"))

    def fail_nlb_creates(self, count: int = 1) -> None:
        """The next `count` NLBs end CreateFailed instead of Active (POST nlb/create-failures)."""
        self.request("POST", "nlb/create-failures", {"count": count})

    def set_ecs_stock(self, zone_id: str, instance_type: str,
                      status_category: str = "WithoutStock") -> None:
        """A zone sells out of an instance type (or gets it back: "WithStock"); RunInstances
        then fails with OperationDenied.NoStock (POST ecs/stock)."""
        self.request("POST", "ecs/stock", {"zone_id": zone_id, "instance_type": instance_type,
                                          "status_category": status_category})

    def set_ecs_quota(self, region_id: str, instances: int | None) -> None:
        """At most `instances` ECS instances in the region (None: no limit); RunInstances
        beyond it fails with QuotaExceed.ElasticQuota (POST ecs/quota)."""
        self.request("POST", "ecs/quota", {"region_id": region_id, "instances": instances})

    def set_ecs_ready_timeout(self, seconds: float | None) -> None:
        """Booting hosts must answer SSH within `seconds` or their start fails (None: the
        load-scaled default) (POST ecs/ready-timeout)."""
        self.request("POST", "ecs/ready-timeout", {"seconds": seconds})

    def add_fault(self, **fields: Any) -> list[dict[str, Any]]:
        return self.request("POST", "faults", fields)["faults"]

    def faults(self) -> list[dict[str, Any]]:
        return self.request("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self.request("DELETE", "faults")

    def forget_client_tokens(self) -> int:
        """The cloud forgets every ClientToken it saw (Alibaba promises no lifetime for one)."""
        return int(self.request("DELETE", "client-tokens")["forgotten"])

    def resources(self) -> list[dict[str, Any]]:
        return self.request("GET", "resources")["resources"]

    def calls(self) -> list[dict[str, Any]]:
        return self.request("GET", "calls")["calls"]

    def clear_calls(self) -> None:
        self.request("DELETE", "calls")

    def reset(self, everything: bool = False) -> None:
        self.request("POST", "reset", {"everything": everything})

    def set_rds_parameter_defaults(self, engine_version: str,
                                   values: dict[str, str]) -> None:
        """New RDS instances of that version start with these values ({} = RDS's own)."""
        self.request("POST", "rds/parameter-defaults",
                     {"engine_version": engine_version, "parameters": values})

    def set_rds_classes(self, region_id: str, zone_id: str, engine_version: str,
                        classes: list[dict[str, Any]] | None, *,
                        category: str = "HighAvailability",
                        storage_type: str = "cloud_essd") -> list[dict[str, Any]]:
        """Change which RDS classes a zone sells (None: back to the seeded list)."""
        return self.request("POST", "rds/catalogue", {
            "region_id": region_id, "zone_id": zone_id, "engine_version": engine_version,
            "category": category, "storage_type": storage_type, "classes": classes,
        })["classes"]


def loopback_seed(region_id: str = DEFAULT_REGION) -> dict[str, Any]:
    """A VPC on a random 127.X.0.0/16 so parallel test runs do not share service addresses."""
    second = random.randint(64, 254)  # noqa: S311 - spreading, not secrecy
    third = random.randint(0, 250)  # noqa: S311
    zones = [f"{region_id}-h", f"{region_id}-i"]
    return {
        "regions": [{"region_id": region_id, "local_name": "China (Hangzhou)", "zones": zones}],
        "vpcs": [{
            "vpc_id": "vpc-" + secrets.token_hex(10)[:21], "region_id": region_id,
            "cidr": f"127.{second}.0.0/16", "name": "emulator-vpc",
            "vswitches": [
                {"vswitch_id": "vsw-" + secrets.token_hex(10)[:21], "zone_id": zones[0],
                 "cidr": f"127.{second}.{third}.0/24", "name": "emulator-vsw-h"},
                {"vswitch_id": "vsw-" + secrets.token_hex(10)[:21], "zone_id": zones[1],
                 "cidr": f"127.{second}.{third + 1}.0/24", "name": "emulator-vsw-i"},
            ],
        }],
        "public_cidr": f"127.{second}.{third + 2}.0/24",
    }


class Emulator:
    """`with Emulator(tmp_path) as emu:` runs `python -m sandbox.aliyun serve` until the block ends.

    An account is created (`access_key_id`/`access_key_secret`) and, unless `seed=None` is
    passed explicitly as `seed={}`, a loopback world is seeded (`emu.seed_document`).
    """

    def __init__(
        self, state_dir: str | os.PathLike[str], time_scale: float = 0.01,
        netns: str | None = None, netns_dev: str | None = None, *,
        seed: dict[str, Any] | None = None, region_id: str = DEFAULT_REGION,
        fault_seed: int | None = None, lab_state_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.time_scale = time_scale
        self.netns = netns
        self.netns_dev = netns_dev
        self.region_id = region_id
        self.fault_seed = fault_seed
        self.lab_state_dir = str(lab_state_dir) if lab_state_dir else None
        self.seed_document = seed if seed is not None else loopback_seed(region_id)
        self.access_key_id = "LTAI" + secrets.token_hex(8)
        self.access_key_secret = secrets.token_urlsafe(22)
        self.process: subprocess.Popen[str] | None = None
        self.endpoint = ""
        self.control: ControlClient

    @property
    def rds_ca_bundle(self) -> Path:
        """The CA every RDS SSL certificate of this world chains to: the file a user would
        download from the RDS console ("ApsaraDB-CA-Chain.pem"); made on first use."""
        return ensure_ca(self.state_dir)[0]

    # ---- process ----------------------------------------------------------------------
    def start(self, port: int = 0) -> Emulator:
        command = [sys.executable, "-m", "sandbox.aliyun", "serve", "--port", str(port),
                   "--state-dir", str(self.state_dir), "--time-scale", str(self.time_scale),
                   "--exit-with-parent"]
        if self.netns:
            command += ["--netns", self.netns, "--netns-dev", str(self.netns_dev)]
        if self.fault_seed is not None:
            command += ["--fault-seed", str(self.fault_seed)]
        if self.lab_state_dir:
            command += ["--lab-state-dir", self.lab_state_dir]
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                        text=True)
        self.endpoint = self._read_endpoint(self.process)
        self.control = ControlClient(self.endpoint)
        self.control.add_account(self.access_key_id, self.access_key_secret)
        if self.seed_document:
            self.control.seed(self.seed_document)
        return self

    @staticmethod
    def _read_endpoint(process: subprocess.Popen[str], timeout: float = 20.0) -> str:
        assert process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.2):
                if process.poll() is not None:
                    break
                continue
            line = process.stdout.readline()
            if line.startswith("listening on "):
                return line.split()[-1]
            if not line and process.poll() is not None:
                break
        process.kill()
        raise RuntimeError(f"emulator did not start (exit code {process.poll()})")

    def stop(self) -> None:
        """SIGTERM (the server stops listeners and processes, keeps state), then wait."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stdout:
            self.process.stdout.close()
        self.process = None

    def restart(self, same_port: bool = True) -> Emulator:
        """Stop and start on the same state directory: "the cloud API went away and came back".

        By default on the same port, so a panel whose ALIYUN_ENDPOINT_OVERRIDE names it keeps
        talking to it (the server sets SO_REUSEADDR).
        """
        port = int(self.endpoint.rsplit(":", 1)[1]) if same_port and self.endpoint else 0
        self.stop()
        return self.start(port=port)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- world -----------------------------------------------------------------------
    @property
    def vpc(self) -> dict[str, Any]:
        return self.seed_document["vpcs"][0]

    @property
    def vswitch(self) -> dict[str, Any]:
        return self.vpc["vswitches"][0]

    def register_instance(self, hostname: str, private_ip: str, **extra: Any) -> str:
        """Register an address of the first seeded vSwitch as a Running ECS instance."""
        fields = {"hostname": hostname, "private_ip": private_ip, "region_id": self.region_id,
                  "zone_id": self.vswitch["zone_id"], "vpc_id": self.vpc["vpc_id"],
                  "vswitch_id": self.vswitch["vswitch_id"], **extra}
        return self.control.add_instance(**fields)

    # ---- SDK -------------------------------------------------------------------------
    def client(
        self, region_id: str | None = None, access_key_secret: str | None = None,
        access_key_id: str | None = None, **kwargs: Any,
    ) -> Any:
        """An official `AcsClient` whose Ecs/Vpc/Slb/Rds endpoints point here, proxies off."""
        from aliyunsdkcore.client import AcsClient  # noqa: PLC0415  the SDK is the panel's, not the emulator's

        region = region_id or self.region_id
        client = AcsClient(access_key_id or self.access_key_id,
                           access_key_secret or self.access_key_secret,
                           region, proxy=dict(NO_PROXY), **kwargs)
        for code in PRODUCT_CODES:
            client.add_endpoint(region, code, self.endpoint)
        return client

    def call(self, request: Any, client: Any = None) -> dict[str, Any]:
        """Run an SDK request and decode the JSON body."""
        return json.loads((client or self.client()).do_action_with_exception(request))
