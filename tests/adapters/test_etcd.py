"""Embedded etcd's rules with no host: config.yaml (docs.k3s.io/datastore/ha-embedded), the
create and removal plans' order, the quorum rule, and the texts K3s and etcd answer with."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml
from django.utils import translation

from clusters.adapters import clusterconfig, etcd_members
from clusters.core.errors import PermanentError
from clusters.k3s import etcd
from clusters.k3s.config import ClusterSettings, NodeIdentity, critical_values, render_server_config
from clusters.models import DatastoreKind, LoadBalancerKind, Node, NodeRole, NodeStatus
from clusters.operations.create import create_plan
from clusters.operations.destroy import destroy_plan
from clusters.operations.nodes import etcd_quorum_problem, remove_node_plan
from clusters.operations.upgrade import upgrade_plan
from clusters.steps.preflight import HostFacts, problems_of
from clusters.web.display import health_reason
from tests.support.factories import make_cluster

pytestmark = pytest.mark.django_db


def _settings(**changes: object) -> ClusterSettings:
    values: dict[str, object] = {"token": "s3cret-token", "datastore_endpoint": "",
                                 "tls_sans": ("10.0.1.30",), "etcd_snapshot_cron": "0 */12 * * *",
                                 "etcd_snapshot_retention": 5, **changes}
    return ClusterSettings(**values)  # type: ignore[arg-type]


def test_the_founder_inits_etcd_and_the_others_join_through_the_load_balancer() -> None:
    founder = yaml.safe_load(render_server_config(_settings(cluster_init=True),
                                                  NodeIdentity(node_ip="10.0.1.11")))
    joiner = yaml.safe_load(render_server_config(
        _settings(server_url="https://10.0.1.30:6443"), NodeIdentity(node_ip="10.0.1.12")))
    assert founder["cluster-init"] is True and "server" not in founder
    assert joiner["server"] == "https://10.0.1.30:6443" and "cluster-init" not in joiner
    for config in (founder, joiner):
        assert "datastore-endpoint" not in config
        assert config["etcd-snapshot-schedule-cron"] == "0 */12 * * *"
        assert config["etcd-snapshot-retention"] == 5
        assert config["token"] == "s3cret-token"
    # Every other flag must match across servers (K3s refuses a joining server otherwise).
    assert critical_values(render_server_config(_settings(cluster_init=True))) == \
        critical_values(render_server_config(_settings(server_url="https://10.0.1.30:6443")))


def test_a_server_has_exactly_one_datastore() -> None:
    with pytest.raises(PermanentError, match="not both"):
        _settings(cluster_init=True, server_url="https://10.0.1.30:6443")
    with pytest.raises(PermanentError, match="exactly one datastore"):
        _settings()
    with pytest.raises(PermanentError, match="exactly one datastore"):
        _settings(cluster_init=True, datastore_endpoint="mysql://k3s:x@tcp(db:3306)/k3s")
    external = yaml.safe_load(render_server_config(_settings(
        datastore_endpoint="mysql://k3s:x@tcp(db:3306)/k3s")))
    assert "etcd-snapshot-schedule-cron" not in external and "cluster-init" not in external


def _etcd_cluster(servers: int = 3, agents: int = 1, **fields: object) -> object:
    cluster = make_cluster(datastore_kind=DatastoreKind.ETCD, slb_address="10.0.1.30",
                           **fields)
    for index in range(servers):
        Node.objects.create(cluster=cluster, role=NodeRole.SERVER, name=f"s{index + 1}",
                            private_ip=f"10.0.1.{11 + index}", ecs_instance_id=f"i-s{index}")
    for index in range(agents):
        Node.objects.create(cluster=cluster, role=NodeRole.AGENT, name=f"a{index + 1}",
                            private_ip=f"10.0.1.{31 + index}", ecs_instance_id=f"i-a{index}")
    return cluster


def test_founder_stays_the_first_server_ever_even_once_removed() -> None:
    cluster = _etcd_cluster()
    first, second, _third = cluster.nodes.servers().order_by("pk")  # type: ignore[attr-defined]
    assert clusterconfig.etcd_role(cluster, first) == {"cluster_init": True}  # type: ignore[arg-type]
    assert clusterconfig.etcd_role(cluster, second) == {  # type: ignore[arg-type]
        "server_url": "https://10.0.1.30:6443"}
    Node.objects.filter(pk=first.pk).update(status=NodeStatus.REMOVED)
    # A later server never founds a second etcd cluster: it joins the one that exists.
    assert clusterconfig.etcd_role(cluster, second) == {  # type: ignore[arg-type]
        "server_url": "https://10.0.1.30:6443"}


@pytest.mark.parametrize("kind", [LoadBalancerKind.CLB, LoadBalancerKind.NLB])
@pytest.mark.parametrize("cidrs", [[], ["10.0.0.0/16"]])
def test_create_plan_buys_no_rds_and_joins_servers_one_at_a_time(
        kind: str, cidrs: list[str]) -> None:
    cluster = _etcd_cluster(load_balancer_kind=kind, api_allowed_cidrs=cidrs)
    specs = create_plan(cluster)  # type: ignore[arg-type]
    by_key = {spec.key: spec for spec in specs}
    handlers = [spec.handler for spec in specs]
    assert not [h for h in handlers if h.startswith(("rds.", "datastore."))]
    s1, s2, s3 = (f"server_{n.pk}" for n in cluster.nodes.servers().order_by("pk"))  # type: ignore[attr-defined]
    first_pk = int(s1.split("_")[1])
    # The load balancer exists before the founder; its listener (the founder only behind it)
    # before anyone joins through it; each join waits for the one before.
    assert by_key[s1].depends_on == ["slb_create"]
    assert by_key["slb_listener"].handler in ("slb.listener", "nlb.listener")
    assert set(by_key["slb_listener"].depends_on) == {s1, *(["slb_acl"] if cidrs else [])}
    assert by_key["slb_listener"].args == {"node_ids": [first_pk]}
    assert by_key[s2].depends_on == ["slb_listener"]
    assert by_key[s3].depends_on == [s2]
    assert by_key["slb_backends"].depends_on == [s3]
    assert by_key["slb_backends"].handler == by_key["slb_listener"].handler
    assert sorted(by_key["slb_backends"].args["node_ids"]) == sorted(
        cluster.nodes.servers().values_list("pk", flat=True))  # type: ignore[attr-defined]
    assert by_key["kubeconfig"].depends_on == ["slb_backends"]
    agent = next(spec for spec in specs if spec.handler == "k3s.install_agent")
    assert agent.depends_on == ["verify"]
    if cidrs:
        assert by_key["slb_acl"].depends_on == ["slb_create"]


def test_a_server_leaves_etcd_before_it_is_uninstalled() -> None:
    cluster = _etcd_cluster()
    server = cluster.nodes.servers().order_by("pk").last()  # type: ignore[attr-defined]
    keys = [spec.key for spec in remove_node_plan(cluster, server)]  # type: ignore[arg-type]
    assert keys == ["drain", "slb_detach", "etcd_stop", "etcd_member", "uninstall", "forget",
                    "health"]
    agent = cluster.nodes.agents().first()  # type: ignore[attr-defined]
    assert "etcd_member" not in [s.key for s in remove_node_plan(cluster, agent)]  # type: ignore[arg-type]


def test_upgrade_takes_an_etcd_snapshot_first() -> None:
    cluster = _etcd_cluster()
    specs = upgrade_plan(cluster, "v1.36.4+k3s1")  # type: ignore[arg-type]
    assert (specs[0].key, specs[0].handler, specs[0].args) == (
        "backup", "etcd.snapshot", {"version": "v1.36.4+k3s1"})
    assert all(spec.depends_on for spec in specs[1:])


@pytest.mark.parametrize(("members", "healthy", "lost", "at_risk"), [
    (3, 3, False, False), (3, 2, False, True), (3, 1, True, False), (3, 0, True, False),
    (5, 5, False, False), (5, 4, False, False), (5, 3, False, True), (5, 2, True, False),
    (1, 1, False, False), (1, 0, True, False)])
def test_quorum_is_a_majority(members: int, healthy: int, lost: bool, at_risk: bool) -> None:
    quorum = etcd.Quorum(members, healthy)
    assert (quorum.lost, quorum.at_risk) == (lost, at_risk)


def _member(ip: str, healthy: bool) -> dict[str, object]:
    return {"node": ip, "name": ip, "healthy": healthy, "leader": False, "error": ""}


def test_removal_that_would_break_quorum_is_refused_with_the_reason() -> None:
    cluster = _etcd_cluster(agents=0)
    s1, s2, s3 = cluster.nodes.servers().order_by("pk")  # type: ignore[attr-defined]
    one_down = [_member(s1.private_ip, True), _member(s2.private_ip, True),
                _member(s3.private_ip, False)]
    problem = etcd_quorum_problem(cluster, s1, one_down)  # type: ignore[arg-type]
    assert problem.startswith(f"Removing {s1.name} would leave 1 healthy etcd member(s) of 2, "
                              "fewer than the 2 a majority needs")
    # Removing the server that is down is how a failed server is replaced.
    assert etcd_quorum_problem(cluster, s3, one_down) == ""  # type: ignore[arg-type]
    all_up = [_member(n.private_ip, True) for n in (s1, s2, s3)]
    assert etcd_quorum_problem(cluster, s1, all_up) == ""  # type: ignore[arg-type]


def test_cron_rules_are_robfig_cron_standard_fields_five_only() -> None:
    """K3s parses with robfig/cron v3 (cron.New: minute hour dom month dow, plus @every and
    descriptors); the panel asks for the 5 fields only (the wizard says so)."""
    for fine in ("0 */12 * * *", "*/5 * * * *", "0 0 1,15 * *", "0 3 ? * mon-fri",
                 "0 3 * jan-mar 0", "0 3 * * 7", "15 1-5/2 * * *"):
        assert etcd.cron_problem(fine) is None, fine
    assert etcd.cron_problem("@daily") == etcd.CronProblem(None, "1")
    assert etcd.cron_problem("0 0 * * 8") == etcd.CronProblem(4, "8", 0, 7)
    assert etcd.cron_problem("? * * * *") == etcd.CronProblem(0, "?", 0, 59)


def test_what_k3s_and_etcd_answer_is_read() -> None:
    listing = (
        "Name                                    Location                                      "
        "                      Size    Created\n"
        "on-demand-s1-1764590400                 file:///var/lib/rancher/k3s/server/db/snapshots/"
        "on-demand-s1-1764590400 2125856 2026-12-01T12:00:00Z\n")
    (item,) = etcd.parse_snapshot_list(listing)
    assert (item.name, item.size, item.created) == (
        "on-demand-s1-1764590400", 2125856, datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert etcd.parse_health('{"health":"true","reason":""}') == (True, "")
    assert etcd.parse_health('{"health":"false","reason":"RAFT NO LEADER"}') == (
        False, "RAFT NO LEADER")
    assert etcd.parse_health("curl: (7) Failed to connect")[0] is False
    metrics = "# TYPE etcd_server_is_leader gauge\netcd_server_is_leader 1\n" \
              "etcd_server_has_leader 1\n"
    assert etcd.parse_leader_metrics(metrics) == (True, True)
    members = etcd.parse_db_info('{"members":[{"ID":1,"name":"s1-ab12cd34","peerURLs":'
                                 '["https://10.0.1.11:2380"],"isLearner":true}]}')
    assert members == [etcd.Member("s1-ab12cd34", ("https://10.0.1.11:2380",), True)]
    assert etcd.peer_url("10.0.1.11") in members[0].peer_urls
    assert etcd.snapshot_name("pre-upgrade", "v1.36.4+k3s1") == "pre-upgrade-v1.36.4-k3s1"
    assert 's3"cret' not in " ".join(etcd.db_info_command())
    assert etcd.db_info_credentials('s3"cret') == 'user = "server:s3\\"cret"\n'


def test_destroy_deletes_no_rds_and_uninstalls_every_host() -> None:
    cluster = _etcd_cluster()
    handlers = [spec.handler for spec in destroy_plan(cluster)]  # type: ignore[arg-type]
    assert "destroy.rds" not in handlers and "destroy.hosts" in handlers


def test_etcd_health_reasons_are_translated_on_the_page() -> None:
    stored = etcd_members.reason("quorum_lost", healthy=1, members=3, needed=2)
    assert stored["message"].startswith("etcd quorum lost: 1 of 3 members healthy")
    with translation.override("zh-hans"):
        assert health_reason(stored).startswith("etcd 法定人数已丢失")
        assert "3 个成员中 1 个健康" in health_reason(stored)


def test_preflight_refuses_an_etcd_server_whose_etcd_ports_are_taken() -> None:
    facts = {"uid": "0", "os_id": "debian", "arch": "x86_64", "mem_kib": "4000000",
             "disk_kib": "40000000", "port_6443": "0", "curl": "/usr/bin/curl",
             "systemd": "yes", "ports_etcd": "1"}
    etcd_server = _etcd_cluster(agents=0).nodes.servers().first()  # type: ignore[attr-defined]
    (problem,) = problems_of(HostFacts(etcd_server, facts, 0.0))
    assert "(2379, 2380 or 2381) is already in use" in problem
    rds_server = make_cluster(nodes=1).nodes.first()
    assert problems_of(HostFacts(rds_server, facts, 0.0)) == []
