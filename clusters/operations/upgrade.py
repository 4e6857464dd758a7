"""Upgrade K3s: what an upgrade may target (the running version, the target a person typed,
and why not), the rule to start it, and its step graph.

Why here: the confirm page, the form and operations.start_upgrade must refuse the same things
with the same words (a downgrade, the same version, a skipped minor, a release the install
source does not have), and a channel must be pinned to the release it points at before
anything is compared or installed, so every node gets the same version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from clusters.adapters import clusterconfig, k3s_release, wizard_checks
from clusters.adapters.datastore_engines import engine_for
from clusters.core.errors import PermanentError, StepError
from clusters.core.titles import title
from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.k3s.versions import is_channel, parse_version, upgrade_problem
from clusters.models import (
    Cluster,
    ClusterStatus,
    DatastoreKind,
    NodeRole,
    NodeStatus,
    Run,
    RunKind,
)
from clusters.operations.runs import OperationRefused, lock_ready, ready_problem


class UpgradeRefused(Exception):
    """The target cannot be upgraded to; the message says why in the user's language."""


@dataclass(frozen=True)
class UpgradeTarget:
    current: str   # what the cluster runs now, e.g. v1.31.4+k3s1
    version: str   # the pinned release to install, e.g. v1.32.5+k3s1
    channel: str   # the channel the person typed ("" for a version)
    rollback: bool  # going back to where a failed upgrade started


def current_version(cluster: Cluster) -> str:
    """The release the cluster runs: as recorded, else the newest node's, else the API's."""
    if cluster.k3s_version:
        return str(parse_version(cluster.k3s_version))
    recorded = [v for v in cluster.nodes.present()
                .values_list("k3s_version", flat=True) if v]
    if not recorded and cluster.kubeconfig:
        try:
            recorded = [s.version for s in clusterconfig.api_client(cluster).nodes() if s.version]
        except StepError:
            recorded = []
    versions = []
    for text in recorded:
        try:
            versions.append(parse_version(text))
        except PermanentError:
            continue
    return str(max(versions)) if versions else ""


def _source_label(cluster: Cluster) -> str:
    return k3s_release.source_label(cluster)


def resolve_channel(cluster: Cluster, channel: str) -> str | None:
    """The release a channel points at, at the cluster's install source (None: cannot tell)."""
    try:
        return k3s_release.resolve_channel(cluster, channel)
    except StepError:
        return None


def _last_failed_upgrade(cluster: Cluster) -> Run | None:
    last = cluster.runs.filter(kind=RunKind.UPGRADE).order_by("-created_at", "-pk").first()
    return last if last is not None and last.can_retry else None


def _explain(current: str, target: str) -> str:
    """upgrade_problem's verdict in the reader's language."""
    old, new = parse_version(current), parse_version(target)
    if new == old:
        return _("The cluster already runs %(version)s.") % {"version": old}
    if new < old:
        return _("%(new)s is older than the running %(old)s: K3s cannot be downgraded in "
                 "place. To go back, restore the RDS backup taken before the upgrade.") % {
            "new": new, "old": old}
    if new.major != old.major:
        return _("Changing the major version (%(old)s to %(new)s) is not supported.") % {
            "old": old, "new": new}
    return _("Upgrading %(old)s to %(new)s skips a minor version: upgrade to v%(major)s.%(next)s "
             "first (Kubernetes does not support skipping minor versions).") % {
        "old": old, "new": new, "major": old.major, "next": old.minor + 1}


def target_problem(current: str, version: str, *, rollback: bool) -> str:
    """Why a cluster running `current` may not be taken to `version` ('' when it may): a
    downgrade, the same version or a skipped minor, unless it is the rollback of a failed
    upgrade. The form and the Retry of an upgrade both ask this."""
    if rollback or not upgrade_problem(current, version):
        return ""
    return _explain(current, version)


def _ready_refusal() -> str:
    return _("Only a ready cluster can be upgraded; this one is %(status)s.")


def retry_problem(cluster: Cluster, run: Run) -> str:
    """Why Retry may not resume this upgrade ('' when it may): the cluster must be ready as
    for a new upgrade, and its target must still be one the form would accept from the
    version the cluster runs now (servers already on the target are where it was going)."""
    problem = ready_problem(cluster, _ready_refusal())
    if problem:
        return problem
    current = current_version(cluster)
    if not current:
        return _("The panel does not know which K3s version this cluster runs.")
    try:
        now = parse_version(current)
        target = parse_version(str(run.params.get("to_version", "")))
        started = parse_version(str(run.params.get("from_version", "")))
    except PermanentError:
        return _("Upgrade #%(run)s does not say which versions it goes between; start a new "
                 "upgrade instead.") % {"run": run.pk}
    if now == target:
        return ""
    rollback = bool(run.params.get("rollback")) and now == started
    return target_problem(str(now), str(target), rollback=rollback)


def check_target(cluster: Cluster, text: str) -> UpgradeTarget:
    """The pinned target for `text` (a version or a channel), or UpgradeRefused saying why."""
    text = (text or "").strip()
    if not text:
        raise UpgradeRefused(_("Enter a K3s version (like v1.32.5+k3s1) or a channel."))
    current = current_version(cluster)
    if not current:
        raise UpgradeRefused(_("The panel does not know which K3s version this cluster runs."))
    channel = text if is_channel(text) else ""
    if channel:
        version = resolve_channel(cluster, channel)
        if version is None:
            raise UpgradeRefused(_("Channel %(channel)s could not be resolved at %(source)s.")
                                 % {"channel": channel, "source": _source_label(cluster)})
    else:
        try:
            version = str(parse_version(text))
        except PermanentError:
            raise UpgradeRefused(_("%(value)s is neither a K3s version (like v1.32.5+k3s1) nor "
                                   "a channel (stable, latest, v1.32).") % {"value": text}) \
                from None
    failed = _last_failed_upgrade(cluster)
    rollback = bool(failed and failed.params.get("from_version") == version)
    if failed and failed.params.get("to_version") == version:
        raise UpgradeRefused(_("Upgrade #%(run)s to %(version)s stopped part-way: press Retry "
                               "on it to continue.") % {"run": failed.pk, "version": version})
    problem = target_problem(current, version, rollback=rollback)
    if problem:
        raise UpgradeRefused(problem)
    exists = wizard_checks.k3s_release_exists(cluster.install_source, cluster.install_base_url,
                                              version=version)
    if exists is False:
        raise UpgradeRefused(_("K3s %(value)s does not exist at %(source)s.")
                             % {"value": version, "source": _source_label(cluster)})
    if exists is None:
        raise UpgradeRefused(_("The panel could not reach %(source)s to check that K3s "
                               "%(value)s exists; try again later.")
                             % {"value": version, "source": _source_label(cluster)})
    return UpgradeTarget(current=current, version=version, channel=channel, rollback=rollback)


def backup_note(cluster: Cluster) -> tuple[str, bool]:
    """(what happens to the datastore before the upgrade, whether it is a warning)."""
    if cluster.datastore_kind == DatastoreKind.ETCD:
        return _("An etcd snapshot (k3s etcd-snapshot save --name pre-upgrade-…) is taken on "
                 "a healthy server first; it is listed with the cluster's snapshots and named "
                 "in the log, and docs/etcd-restore.md says how to restore it."), False
    if cluster.datastore_kind == DatastoreKind.EXTERNAL:
        return _(engine_for(cluster).own_backup_note), True
    return _("An RDS backup (CreateBackup) is taken first and the upgrade waits until it has "
             "finished; its id is written to the log so you can restore it."), False


# --- the step graph: backup first, servers one at a time, then agents -----------------------

RDS_BACKUP_TITLE = gettext_noop("Back up the RDS datastore (CreateBackup) and wait until it has "
                      "finished")


ETCD_SNAPSHOT_TITLE = gettext_noop("Take an etcd snapshot before the upgrade (k3s etcd-snapshot "
                                   "save)")


def upgrade_plan(cluster: Cluster, version: str) -> list[StepSpec]:
    """Backup, then every server in turn, then every agent in turn."""
    live = cluster.nodes.live()
    # A server a stopped upgrade left failed (out of the SLB) goes first: while it is out, the
    # others are the only ones serving and must not leave before it is back.
    servers = sorted(live.filter(role=NodeRole.SERVER),
                     key=lambda node: (node.status != NodeStatus.FAILED, node.pk))
    agents = list(live.filter(role=NodeRole.AGENT).order_by("pk"))
    if cluster.datastore_kind == DatastoreKind.ETCD:
        specs = [StepSpec("backup", ETCD_SNAPSHOT_TITLE, "etcd.snapshot",
                          args={"version": version}, retry_budget=10)]
    else:
        backup = RDS_BACKUP_TITLE if cluster.datastore_kind == DatastoreKind.RDS \
            else engine_for(cluster).own_backup_title
        specs = [StepSpec("backup", backup, "upgrade.backup", retry_budget=10)]
    previous = "backup"
    for index, server in enumerate(servers):
        key = f"server_{server.pk}"
        name = title(gettext_noop("Upgrade K3s server %(n)s (%(ip)s) to %(version)s"),
                     n=index + 1, ip=server.private_ip, version=version)
        specs.append(StepSpec(key, name, "upgrade.server", [previous],
                              {"node_id": server.pk, "version": version}))
        previous = key
    for agent in agents:
        key = f"agent_{agent.pk}"
        name = title(gettext_noop("Upgrade K3s agent (%(ip)s) to %(version)s"),
                     ip=agent.private_ip, version=version)
        specs.append(StepSpec(key, name, "upgrade.agent", [previous],
                              {"node_id": agent.pk, "version": version}))
        previous = key
    return specs


def start_upgrade(cluster: Cluster, version: str, user: Any = None) -> Run:
    """Upgrade K3s to `version` (or a channel's release): backup, servers one at a time
    behind the SLB, then agents. Refused (plainly) for a downgrade, the same version, a
    skipped minor, or a release the install source does not have."""
    try:
        target = check_target(cluster, version)
    except UpgradeRefused as exc:
        raise OperationRefused(str(exc)) from None
    with transaction.atomic():
        locked = lock_ready(cluster, _ready_refusal())
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.UPDATING)
        params = {"from_version": target.current, "to_version": target.version,
                  "channel": target.channel, "rollback": target.rollback}
        return pipeline.create_run(locked, RunKind.UPGRADE,
                                   upgrade_plan(locked, target.version),
                                   params=params, created_by=user)
