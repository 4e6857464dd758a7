"""The live checks the wizard makes while a person types: cloud lookups, K3s release lookups,
an SSH login, a MySQL login.

Why separate from clusters.interface.wizard: the wizard's rules are pure and fast to test;
these talk to the outside world through the adapters (clusters.adapters.aliyun, .ssh,
.datastore) and turn whatever they raise into one sentence a person can act on
(`CheckFailed`), or `None` where the panel cannot tell (so a panel without internet does
not block a user whose hosts have it).
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from clusters.adapters import datastore, datastore_pg, host_addresses, ssh
from clusters.adapters.aliyun import AliyunCloud, Instance, RdsClassOffer, Region, Vpc, VSwitch
from clusters.adapters.aliyun.ecs_buy import PublicImage, TypeOffer
from clusters.adapters.aliyun.rds import RDS_CATEGORY, RDS_STORAGE_TYPE
from clusters.adapters.cloud import cloud_for_account
from clusters.core.errors import StepError, TransientError
from clusters.k3s.dsn import MySQLEndpoint
from clusters.k3s.pgdsn import PostgresEndpoint
from clusters.models import CloudAccount

LOOKUP_TIMEOUT = 8.0
LOOKUP_CONNECT_TIMEOUT = 5


class CheckFailed(Exception):
    """A live check said no; the message is safe to show next to the field."""


# --- Alibaba Cloud ----------------------------------------------------------------------------


@dataclass
class NetworkChoices:
    """What the network step offers: everything in the region the account can see."""

    zones: list[str] = field(default_factory=list)
    vpcs: list[Vpc] = field(default_factory=list)
    vswitches: list[VSwitch] = field(default_factory=list)
    # The zones where NLB is sold (NLB's own DescribeZones): not every ECS zone has NLB, and
    # a ZoneMapping in one without it fails at CreateLoadBalancer, after instances are bought.
    nlb_zones: list[str] = field(default_factory=list)
    nlb_problem: str = ""  # why NLB's DescribeZones could not be asked ("" when it was)


def _cloud(account: CloudAccount, region: str) -> AliyunCloud:
    """The account's cloud (saved or not yet: the form checks it before saving)."""
    return cloud_for_account(account, region or "cn-hangzhou")


def _explain(exc: StepError) -> str:
    text = str(exc)
    if any(code in text for code in ("InvalidAccessKey", "SignatureDoesNotMatch")):
        return ("Alibaba Cloud rejected this AccessKey (wrong ID or secret, or the key is "
                f"disabled): {text}")
    if "Forbidden" in text or "NoPermission" in text:
        return f"These credentials lack a permission the panel needs: {text}"
    return text


def list_regions(account: CloudAccount, region_hint: str = "cn-hangzhou") -> list[Region]:
    """DescribeRegions: the cheapest call that proves the credentials work (for a role:
    that it can be assumed, and that the role may call ECS)."""
    try:
        return _cloud(account, region_hint).describe_regions()
    except StepError as exc:
        raise CheckFailed(_explain(exc)) from None


def network_choices(account: CloudAccount, region: str) -> NetworkChoices:
    """Zones, VPCs and vSwitches of a region, for the network step's choices, and the zones
    where NLB is sold (NLB's DescribeZones, asked too: ECS's zones are not all NLB's)."""
    try:
        cloud = _cloud(account, region)
        found = NetworkChoices([zone.zone_id for zone in cloud.describe_zones()],
                               cloud.describe_vpcs(), cloud.describe_vswitches())
    except StepError as exc:
        raise CheckFailed(_explain(exc)) from None
    try:
        found.nlb_zones = cloud.nlb_zones()
    except StepError as exc:
        # A CLB needs no NLB: the page still works, and an NLB is refused with the reason.
        found.nlb_problem = _explain(exc)
    return found


def vpc_instances(account: CloudAccount, region: str, vpc_id: str) -> list[Instance]:
    """The VPC's ECS instances (every status, every page), for the hosts page to list."""
    try:
        return _cloud(account, region).describe_vpc_instances(vpc_id)
    except StepError as exc:
        raise CheckFailed(_explain(exc)) from None


# The images offered for new hosts: current Ubuntu LTS, Debian, Alibaba Cloud Linux 3 (the
# families of Alibaba's public images, help.aliyun.com doc 108393 "Public images").
IMAGE_FAMILIES = ("acs:ubuntu_24_04_x64", "acs:ubuntu_22_04_x64", "acs:debian_12_x64",
                  "acs:alibaba_cloud_linux_3_2104_lts_x64")


@dataclass
class InstanceChoices:
    """What the "create instances" form offers: types the zone sells now, with cores and
    memory (DescribeAvailableResource, DescribeInstanceTypes), and the current images of the
    offered families (DescribeImages: the newest of each), and the region's key pairs
    (DescribeKeyPairs: name, fingerprint) the instances may accept instead of the panel's."""

    types: list[TypeOffer] = field(default_factory=list)
    images: list[PublicImage] = field(default_factory=list)
    key_pairs: list[tuple[str, str]] = field(default_factory=list)


def instance_choices(account: CloudAccount, region: str, zone: str) -> InstanceChoices:
    try:
        cloud = _cloud(account, region)
        types = [o for o in cloud.available_instance_types(zone) if o.buyable]
        newest: dict[str, PublicImage] = {}
        for image in cloud.describe_public_linux_images():
            if image.family in IMAGE_FAMILIES and (
                    image.family not in newest or image.image_id > newest[image.family].image_id):
                newest[image.family] = image
        key_pairs = cloud.key_pairs()
    except StepError as exc:
        raise CheckFailed(_explain(exc)) from None
    return InstanceChoices(types, [newest[f] for f in IMAGE_FAMILIES if f in newest],
                           key_pairs)


@dataclass
class RdsChoices:
    """What the datastore step offers: what RDS sells in the cluster's zone, asked live.

    `versions` are the MySQL versions the zone sells in the panel's edition and storage
    type (DescribeAvailableZones); `classes` are the classes of `version` with their storage
    ranges (DescribeAvailableClasses), empty when the zone sells none.
    """

    zone: str
    version: str
    versions: list[str] = field(default_factory=list)
    classes: list[RdsClassOffer] = field(default_factory=list)

    def find(self, instance_class: str) -> RdsClassOffer | None:
        return next((c for c in self.classes if c.instance_class == instance_class), None)


def rds_choices(account: CloudAccount, region: str, zone: str, version: str,
                engine: str = "MySQL") -> RdsChoices:
    """Ask RDS what it sells of `engine` in `zone` today; raises CheckFailed with the
    adapter's words."""
    try:
        cloud = _cloud(account, region)
        zones = cloud.describe_rds_zones(zone_id=zone, engine=engine)
        versions = sorted({v for z in zones if z.zone_id == zone for v in z.versions
                           if z.sells(v, RDS_CATEGORY, RDS_STORAGE_TYPE)},
                          key=lambda v: [int(p) if p.isdigit() else 0 for p in v.split(".")])
        classes = (cloud.describe_rds_classes(zone, version, engine=engine)
                   if version in versions else [])
    except StepError as exc:
        raise CheckFailed(_explain(exc)) from None
    return RdsChoices(zone, version, versions, classes)


# --- K3s releases -----------------------------------------------------------------------------

OFFICIAL_CHANNEL_URL = "https://update.k3s.io/v1-release/channels"
OFFICIAL_RELEASES_URL = "https://github.com/k3s-io/k3s/releases"
CHINA_MIRROR_URL = "https://rancher-mirror.rancher.cn"


def release_probe_url(source: str, base_url: str, version: str, channel: str) -> str:
    """The URL that answers 200 when the version/channel exists at that source, 404 if not.

    Layouts as in clusters.k3s.install: official (and custom) = GitHub releases + the
    update.k3s.io channel server; the China mirror = /k3s/channels/<name>, /k3s/<v-dash>/.
    Settings PANEL_K3S_OFFICIAL_BASE_URL / PANEL_K3S_MIRROR_BASE_URL redirect the official
    and mirror sources to the offline artifact server (sandbox/k3s/artifacts.py).
    """
    if source == "china_mirror":
        base = settings.PANEL_K3S_MIRROR_BASE_URL or CHINA_MIRROR_URL
        base = base.rstrip("/")
        if channel:
            return f"{base}/k3s/channels/{channel}"
        return f"{base}/k3s/{version.replace('+', '-')}/sha256sum-amd64.txt"
    if source == "custom":
        base = base_url.rstrip("/")
        channels, releases = f"{base}/v1-release/channels", f"{base}/k3s-io/k3s/releases"
    else:
        base = (settings.PANEL_K3S_OFFICIAL_BASE_URL or "").rstrip("/")
        channels = f"{base}/v1-release/channels" if base else OFFICIAL_CHANNEL_URL
        releases = f"{base}/k3s-io/k3s/releases" if base else OFFICIAL_RELEASES_URL
    if channel:
        return f"{channels}/{channel}"
    return f"{releases}/download/{version}/sha256sum-amd64.txt"


def k3s_release_exists(source: str, base_url: str, *, version: str = "",
                       channel: str = "") -> bool | None:
    """Does this version (or channel) exist at this install source? None: cannot tell now."""
    url = release_probe_url(source, base_url, version, channel)
    request = urllib.request.Request(url, method="GET",  # noqa: S310 - http(s) only, see form
                                     headers={"User-Agent": "k3s-ha-panel"})
    try:
        # No proxy from the environment: the lookup goes where the setting says, or nowhere.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=LOOKUP_TIMEOUT) as response:
            return 200 <= response.status < 300
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 410):
            return False
        return None
    except (urllib.error.URLError, OSError, ValueError):
        return None


# --- SSH ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SshReport:
    fingerprint: str
    system: str
    sudo: str


def test_ssh(host: str, port: int, user: str, *, password: str = "", private_key: str = "",
             passphrase: str = "", timeout: float = 10.0) -> SshReport:
    """Log in once and ask the host what it is; raises CheckFailed with the adapter's words
    (which never quote the peer). An address the panel must not reach is refused unasked."""
    refusal = host_addresses.address_refusal(host)
    if refusal:
        raise CheckFailed(str(refusal))
    target = ssh.SSHTarget(host=host, username=user, port=port, password=password or None,
                           private_key=private_key or None, passphrase=passphrase or None)
    try:
        with ssh.connect(target, timeout=timeout) as session:
            result = session.run(["uname", "-sm"], timeout=timeout)
            system = result.stdout.strip() if result.ok else ""
            sudo = session.sudo_mode() if hasattr(session, "sudo_mode") else ""
            return SshReport(session.host_key_fingerprint, system, str(sudo))
    except StepError as exc:
        raise CheckFailed(str(exc)) from None


def scan_host_key(host: str, port: int, timeout: float = 10.0) -> str:
    """The fingerprint the host presents now (no login), for the owner to confirm."""
    refusal = host_addresses.address_refusal(host)
    if refusal:
        raise CheckFailed(str(refusal))
    try:
        return ssh.scan_host_key(host, port, timeout=timeout)
    except StepError as exc:
        raise CheckFailed(str(exc)) from None


# --- MySQL -------------------------------------------------------------------------------------


def _panel_may_reach(host: str, port: int) -> bool:
    """False when the name does not resolve (the hosts may still reach it); CheckFailed for
    an address the panel must not reach (loopback, its own server and networks: where its
    own database may listen), whatever name leads there."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        return False
    for address in sorted(addresses):
        refusal = host_addresses.address_refusal(str(address))
        if refusal:
            raise CheckFailed(str(refusal))
    return True


def check_mysql(endpoint: MySQLEndpoint) -> str | None:
    """Log in to a user's MySQL; returns its version, None when unreachable from the panel.

    Unreachable is not an error: a database in a VPC is often reachable from the hosts only,
    and preflight checks it from there. A refused login or an unknown database is an error.
    """
    if not _panel_may_reach(endpoint.host, endpoint.port):
        return None
    try:
        with datastore.connect(endpoint, timeout=LOOKUP_CONNECT_TIMEOUT) as conn, \
                conn.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            row = cursor.fetchone()
    except TransientError:
        return None
    except StepError as exc:
        raise CheckFailed(str(exc)) from None
    return str(row[0]) if row else ""


def check_postgresql(endpoint: PostgresEndpoint) -> str | None:
    """As check_mysql, for a user's PostgreSQL (its sslmode as K3s will use it)."""
    if not _panel_may_reach(endpoint.host, endpoint.port):
        return None
    try:
        with datastore_pg.connect(endpoint, timeout=LOOKUP_CONNECT_TIMEOUT) as (conn,):
            row = conn.execute(b"SHOW server_version").fetchone()
    except TransientError:
        return None
    except StepError as exc:
        raise CheckFailed(str(exc)) from None
    return str(row[0]) if row else ""


LOGIN_CHECKS: dict[str, Any] = {"mysql": check_mysql, "postgresql": check_postgresql}
