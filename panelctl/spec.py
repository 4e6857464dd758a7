"""cluster.yaml: the API's own create fields (what `panelctl clusters show -o yaml` prints),
with each secret given by reference, never on the command line:

    hosts:
      - role: server
        private_ip: 10.0.1.11
        private_key_file: ~/.ssh/id_ed25519     # or private_key_env: VAR
        passphrase_env: KEY_PASSPHRASE           # optional
      - role: agent
        private_ip: 10.0.1.13
        auth: password
        password_file: /run/secrets/host-pw      # or password_env: VAR
    datastore:
      rds_password_env: RDS_PASSWORD             # optional (generated when absent)
      external_dsn_file: dsn.txt                 # for kind: external
    # or, with no database at all (3 or 5 servers):
    # datastore: {kind: etcd, etcd_snapshot_cron: "0 */12 * * *", etcd_snapshot_retention: 5}

Or, instead of hosts, instances for the panel to buy (the wizard's "create instances"):

    instances:
      servers: 3
      agents: 1
      instance_type: ecs.g7.large
      image_id: ubuntu_24_04_x64_20G_alibase_20250722.vhd
      system_disk_gb: 40
      public_bandwidth_mbps: 0                   # 0: no public address
      key_pair: ops-key                          # optional: an existing key pair
      key_pair_private_key_file: ~/.ssh/ops-key  # its private key (or _env)

A secret written inline in the file is accepted too (the file is as private as a key file);
`--ssh-key-file` gives the key of every host with `auth: key` that names none (so a shown
spec can be fed back as it is).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

HOST_SECRETS = ("private_key", "passphrase", "password")
DATASTORE_SECRETS = ("rds_password", "external_dsn")
INSTANCES_SECRETS = ("key_pair_private_key",)


class SpecError(Exception):
    pass


def _secret(section: dict[str, Any], name: str, where: str) -> None:
    """Replace `<name>_file` / `<name>_env` in `section` by the value they point at."""
    file_key, env_key = f"{name}_file", f"{name}_env"
    if file_key in section:
        target = Path(str(section.pop(file_key))).expanduser()
        try:
            section[name] = target.read_text()
        except OSError as exc:
            raise SpecError(f"{where}.{file_key}: cannot read {target}: {exc.strerror}") \
                from None
        if name not in ("private_key", "key_pair_private_key"):
            section[name] = section[name].rstrip("\n")
    if env_key in section:
        variable = str(section.pop(env_key))
        if variable not in os.environ:
            raise SpecError(f"{where}.{env_key}: the environment has no {variable}")
        section[name] = os.environ[variable]


def load(text: str, *, ssh_key_file: str | None = None) -> dict[str, Any]:
    """The spec as the API takes it, its secrets read in."""
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise SpecError("the file must hold one mapping of fields (name, network, hosts, ...)")
    default_key = None
    if ssh_key_file:
        default_key = Path(ssh_key_file).expanduser().read_text()
    datastore = spec.get("datastore")
    if isinstance(datastore, dict):
        for name in DATASTORE_SECRETS:
            _secret(datastore, name, "datastore")
    instances = spec.get("instances")
    if isinstance(instances, dict):
        for name in INSTANCES_SECRETS:
            _secret(instances, name, "instances")
    for index, host in enumerate(spec.get("hosts") or []):
        if not isinstance(host, dict):
            continue
        for name in HOST_SECRETS:
            _secret(host, name, f"hosts.{index}")
        if host.get("auth", "key") == "key" and not host.get("private_key") and default_key:
            host["private_key"] = default_key
    return spec


def order_instances(spec: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The spec with the command line's instance options (None: not given) written into its
    `instances` (they win over the file's); a key file read in. Hosts and instances both
    given are left for the panel to refuse, with its message."""
    given = {k: v for k, v in options.items() if v is not None}
    if not given:
        return spec
    instances = dict(spec.get("instances") or {})
    key_file = given.pop("key_pair_private_key_file", None)
    instances.update(given)
    if key_file:
        instances["key_pair_private_key_file"] = key_file
        _secret(instances, "key_pair_private_key", "--key-pair-private-key-file")
    return {**spec, "instances": instances}


def dump(spec: dict[str, Any]) -> str:
    return yaml.safe_dump(spec, sort_keys=False, default_flow_style=False)
