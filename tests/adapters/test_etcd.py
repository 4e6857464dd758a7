"""Embedded etcd's rules with no host: config.yaml (docs.k3s.io/datastore/ha-embedded), the
create and removal plans' order, the quorum rule, and the texts K3s and etcd answer with."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import yaml
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from clusters.adapters import clusterconfig, etcd_members
from clusters.adapters.health import snapshots_due
from clusters.core.errors import PermanentError
from clusters.k3s import etcd
from clusters.k3s.config import ClusterSettings, NodeIdentity, critical_values, render_server_config
from clusters.models import (
    Cluster,
    ClusterStatus,
    DatastoreKind,
    EtcdSnapshot,
    LoadBalancerKind,
    Node,
    NodeRole,
    NodeStatus,
    Run,
    RunKind,
    RunStatus,
)
from clusters.operations.create import create_plan
from clusters.operations.destroy import destroy_plan
from clusters.operations.nodes import (
    etcd_even_warning,
    etcd_quorum_problem,
    remove_node_plan,
    remove_retry_problem,
    start_remove_node,
)
from clusters.operations.runs import OperationRefused
from clusters.operations.upgrade import upgrade_plan
from clusters.steps.destroy import forget_etcd
from clusters.steps.preflight import HostFacts, problems_of
from clusters.steps.upgrade import etcd_restart_verdict
from clusters.web.display import health_reason
from tests.support.engine_specs import in_process_engine
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
    # The quorum is checked on etcd's live member list before anything is touched.
    assert keys == ["etcd_quorum", "drain", "slb_detach", "etcd_stop", "etcd_member",
                    "uninstall", "forget", "health"]
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


def _member(ip: str, healthy: bool, **fields: object) -> dict[str, object]:
    return {"node": ip, "name": ip, "healthy": healthy, "leader": False, "error": "", **fields}


def _servers(count: int) -> tuple[object, list[Node]]:
    cluster = _etcd_cluster(servers=count, agents=0)
    return cluster, list(cluster.nodes.servers().order_by("pk"))  # type: ignore[attr-defined]


@pytest.mark.parametrize(("healthy", "leaving", "refused"), [
    # 2 healthy of 2: once K3s is stopped, 1 of 2 is below the 2 needed.
    ([True, True], 0, "1 of 2 etcd voting members would be healthy, fewer than the 2"),
    # 4 with one down, a healthy one leaving: 2 of 4, below 3.
    ([True, True, True, False], 0, "2 of 4 etcd voting members would be healthy, fewer than "
                                   "the 3"),
    # 3 with one down, a healthy one leaving: 1 of 3, below 2.
    ([True, True, False], 0, "1 of 3 etcd voting members would be healthy, fewer than the 2"),
    ([True, True, True], 0, ""),         # 3 healthy: 2 of 3, then 2 of 2
    ([True, True, True, True, False], 0, ""),  # 5 with one down: 3 of 5, then 3 of 4
    ([True, True, False], 2, ""),         # the dead member of 3: 2 of 3, then 2 of 2
    ([True, False], 1, "1 of 2 etcd voting members"),  # no quorum to remove anything with
])
def test_the_quorum_rule_holds_from_the_stop_to_the_removal(
        healthy: list[bool], leaving: int, refused: str) -> None:
    cluster, servers = _servers(len(healthy))
    members = [_member(s.private_ip, ok) for s, ok in zip(servers, healthy, strict=True)]
    problem = etcd_quorum_problem(cluster, servers[leaving], members)  # type: ignore[arg-type]
    if not refused:
        assert problem == ""
        return
    assert problem.startswith(f"Removing {servers[leaving].name} is refused: once its K3s is "
                              "stopped"), problem
    assert refused in problem
    if len(healthy) == 2:
        assert "A 2-server etcd cluster tolerates no failure" in problem


def test_the_rule_counts_etcd_voters_not_the_panels_rows() -> None:
    """A learner does not vote; a server stuck in REMOVING is still a member while etcd
    lists it; a panel server etcd does not list is no member."""
    cluster, (s1, s2, s3, s4) = _servers(4)
    Node.objects.filter(pk=s4.pk).update(status=NodeStatus.REMOVING)
    # etcd: s1, s2, s3 vote (s4, REMOVING, still listed and healthy), plus a learner.
    members = [_member(s1.private_ip, True), _member(s2.private_ip, True),
               _member(s3.private_ip, False), _member(s4.private_ip, True),
               _member("10.0.1.99", False, learner=True)]
    # 4 voters, 3 healthy: removing s1 leaves 2 of 4 after the stop: refused.
    assert "2 of 4 etcd voting members" in etcd_quorum_problem(cluster, s1, members)  # type: ignore[arg-type]
    # Without s4 in etcd's list it would be 3 voters, 2 healthy: 1 of 3.
    unlisted = [m if m["node"] != s4.private_ip else {**m, "listed": False} for m in members]
    assert "1 of 3 etcd voting members" in etcd_quorum_problem(cluster, s1, unlisted)  # type: ignore[arg-type]
    # The learner's leaving touches no vote: 3 healthy of 4 voters keep a majority.
    learner = Node(cluster=cluster, role=NodeRole.SERVER, private_ip="10.0.1.99")  # type: ignore[misc]
    assert etcd_quorum_problem(cluster, learner, members) == ""  # type: ignore[arg-type]
    assert etcd.removal_check(4, 3, leaving_is_voter=False, leaving_is_healthy=False).ok


def test_a_retried_removal_checks_the_quorum_again() -> None:
    cluster, (s1, s2, s3) = _servers(3)
    Node.objects.filter(pk=s1.pk).update(status=NodeStatus.REMOVING)
    cluster.status = ClusterStatus.READY  # type: ignore[attr-defined]
    cluster.save()  # type: ignore[attr-defined]
    run = Run.objects.create(cluster=cluster, kind=RunKind.REMOVE_NODE, status=RunStatus.FAILED,
                             params={"node_id": s1.pk, "node": f"server {s1.private_ip}"})
    cluster.etcd_members = [_member(s1.private_ip, True), _member(s2.private_ip, True),  # type: ignore[attr-defined]
                            _member(s3.private_ip, False)]
    cluster.save()  # type: ignore[attr-defined]
    problem = remove_retry_problem(Cluster.objects.get(pk=cluster.pk), run)  # type: ignore[attr-defined]
    assert "1 of 3 etcd voting members would be healthy" in problem
    cluster.etcd_members = [_member(s.private_ip, s is not s1) for s in (s1, s2, s3)]  # type: ignore[attr-defined]
    cluster.save()  # type: ignore[attr-defined]
    # s1's K3s already stopped: 2 of 3 healthy keep the majority, then 2 of 2.
    assert remove_retry_problem(Cluster.objects.get(pk=cluster.pk), run) == ""  # type: ignore[attr-defined]


def test_an_addition_that_makes_the_server_count_even_warns() -> None:
    cluster = _servers(3)[0]
    warning = etcd_even_warning(cluster, 1)  # type: ignore[arg-type]
    assert warning.startswith("With 4 servers, etcd tolerates 1 failed server(s), no more than "
                              "with 3: a majority of 4 is 3.")
    assert "A 2- or 4-server etcd cluster tolerates no more failures than one of 1 or 3" \
        in warning
    with translation.override("zh-hans"):
        assert "4 台服务器" in etcd_even_warning(cluster, 1)  # type: ignore[arg-type]
    assert etcd_even_warning(cluster, 2) == ""  # type: ignore[arg-type]
    assert etcd_even_warning(_servers(1)[0], 1).startswith("With 2 servers, etcd tolerates 0")  # type: ignore[arg-type]


@pytest.mark.parametrize("fine", [
    "0 */12 * * *", "*/5 * * * *", "0 0 1,15 * *", "0 3 ? * mon-fri", "0 3 * jan-mar 0",
    "0 3 * * 6", "15 1-5/2 * * *", "? * * * *", "0 3 * * SUN-SAT", "5/15 * * * *",
    "0 0 * JAN,Dec *", "0 0 1-31 * 0-6", "@daily", "@midnight", "@hourly", "@weekly",
    "@monthly", "@yearly", "@annually", "@every 1h30m", "@every 90s", "@every 1.5h",
    "TZ=Asia/Shanghai 0 3 * * *", "CRON_TZ=UTC @daily", "0,,30 * * * *"])
def test_cron_accepts_what_robfig_cron_accepts(fine: str) -> None:
    """K3s parses with robfig/cron v3 cron.New() (standardParser: Minute | Hour | Dom |
    Month | Dow | Descriptor; robfig/cron parser.go, spec.go)."""
    assert etcd.cron_problem(fine) is None, fine


@pytest.mark.parametrize(("bad", "problem"), [
    ("0 3 * * 7", etcd.CronProblem(4, "7", 0, 6)),  # spec.go dow bounds {0, 6}
    ("0 0 * * 8", etcd.CronProblem(4, "8", 0, 6)),
    ("60 * * * *", etcd.CronProblem(0, "60", 0, 59)),
    ("0 24 * * *", etcd.CronProblem(1, "24", 0, 23)),
    ("0 0 0 * *", etcd.CronProblem(2, "0", 1, 31)),
    ("0 0 * 13 *", etcd.CronProblem(3, "13", 1, 12)),
    ("0 0 * jan-xyz *", etcd.CronProblem(3, "jan-xyz", 1, 12)),
    ("0 0 * * mon-sun", etcd.CronProblem(4, "mon-sun", 0, 6)),  # beginning beyond end
    ("*/0 * * * *", etcd.CronProblem(0, "*/0", 0, 59)),  # step must be positive
    ("1-2-3 * * * *", etcd.CronProblem(0, "1-2-3", 0, 59)),  # too many hyphens
    ("*/5/2 * * * *", etcd.CronProblem(0, "*/5/2", 0, 59)),  # too many slashes
    ("*/x * * * *", etcd.CronProblem(0, "*/x", 0, 59)),
    ("0 0 * * * *", etcd.CronProblem(None, "6", kind="fields")),
    ("@every", etcd.CronProblem(None, "@every", kind="descriptor")),
    ("@every 1x", etcd.CronProblem(None, "@every 1x", kind="descriptor")),
    ("@reboot", etcd.CronProblem(None, "@reboot", kind="descriptor")),
    ("@Daily", etcd.CronProblem(None, "@Daily", kind="descriptor")),  # case-sensitive
    ("TZ=Nowhere/Land 0 3 * * *", etcd.CronProblem(None, "Nowhere/Land", kind="timezone")),
    ("TZ=Asia/Shanghai", etcd.CronProblem(None, "Asia/Shanghai", kind="timezone")),
])
def test_cron_refuses_what_robfig_cron_refuses(bad: str, problem: etcd.CronProblem) -> None:
    assert etcd.cron_problem(bad) == problem


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_a_scheduled_snapshot_time_is_found_between_two_moments() -> None:
    cron = "0 */12 * * *"
    assert etcd.schedule_fired(cron, _utc(2026, 12, 1, 11, 50), _utc(2026, 12, 1, 12, 0))
    assert not etcd.schedule_fired(cron, _utc(2026, 12, 1, 12, 0), _utc(2026, 12, 1, 23, 59))
    assert etcd.schedule_fired("@daily", _utc(2026, 12, 1, 23, 0), _utc(2026, 12, 2, 0, 5))
    assert not etcd.schedule_fired("@every 2h", _utc(2026, 12, 1, 0), _utc(2026, 12, 1, 1))
    assert etcd.schedule_fired("@every 2h", _utc(2026, 12, 1, 0), _utc(2026, 12, 1, 2))
    # Day of month and day of week both restricted: either matches (2026-12-06 is a Sunday).
    assert etcd.schedule_fired("0 0 15 * 0", _utc(2026, 12, 5, 12), _utc(2026, 12, 6, 0, 1))
    # The schedule read in its TZ= zone: 03:00 in Shanghai is 19:00 UTC.
    assert etcd.schedule_fired("TZ=Asia/Shanghai 0 3 * * *", _utc(2026, 12, 1, 18, 30),
                               _utc(2026, 12, 1, 19, 1))
    assert not etcd.schedule_fired("0 3 * * *", _utc(2026, 12, 1, 18, 30),
                                   _utc(2026, 12, 1, 19, 1))


def test_health_lists_snapshots_only_after_a_scheduled_time(settings: object) -> None:
    cluster = _etcd_cluster(agents=0, etcd_snapshot_cron="0 */12 * * *")
    assert snapshots_due(cluster, _utc(2026, 12, 1, 12, 30))  # type: ignore[arg-type]  # never listed
    cluster.etcd_snapshots_listed_at = _utc(2026, 12, 1, 12, 30)  # type: ignore[attr-defined]
    # Every minute's check after that: no listing until 00:00 (and 2 minutes for K3s to
    # write the file) has passed, then one.
    assert not snapshots_due(cluster, _utc(2026, 12, 1, 12, 31))  # type: ignore[arg-type]
    assert not snapshots_due(cluster, _utc(2026, 12, 1, 23, 59))  # type: ignore[arg-type]
    assert not snapshots_due(cluster, _utc(2026, 12, 2, 0, 1))  # type: ignore[arg-type]
    assert snapshots_due(cluster, _utc(2026, 12, 2, 0, 2))  # type: ignore[arg-type]
    # A schedule that fires every minute is still listed at most every N minutes.
    cluster.etcd_snapshot_cron = "* * * * *"  # type: ignore[attr-defined]
    assert not snapshots_due(cluster, _utc(2026, 12, 1, 12, 35))  # type: ignore[arg-type]
    assert snapshots_due(cluster, _utc(2026, 12, 1, 12, 40))  # type: ignore[arg-type]


def test_every_member_is_read_from_one_server_s_answer() -> None:
    """member_health_script's lines: each member's kube-apiserver /readyz?verbose (curl's -w
    HTTP status last) and the local member's /v3/maintenance/status (the leader's ID)."""
    def line(index: object, said: str) -> str:
        return f"{index}|{base64.b64encode(said.encode()).decode()}"
    text = "\n".join([
        line(0, "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]shutdown ok\nreadyz check passed\n200"),
        line(2, "curl: (7) Failed to connect to 10.0.1.13 port 6443\n000"),
        line(1, "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n500"),
        line(3, "[+]etcd ok\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n"
                "readyz check failed\n500"),  # still starting: etcd is fine
        line(4, '{"kind":"Status","reason":"Forbidden"}\n403'),
        line("status", '{"header":{"member_id":"111"},"leader":"222"}'),
    ])
    answers, leader = etcd.parse_member_health(text)
    assert leader == "222"
    assert answers[0] == etcd.MemberAnswer(True, "", True)
    assert answers[1] == etcd.MemberAnswer(False, "failed: reason withheld", True)
    assert answers[2].answered is False and "port 6443" in answers[2].detail
    assert answers[3] == etcd.MemberAnswer(True, "", True)
    assert answers[4].answered is False and "HTTP 403" in answers[4].detail
    assert etcd.parse_member_health(line("status", '{"leader":"0"}'))[1] == ""
    script = etcd.member_health_script(["10.0.1.11", "", "x';rm -rf /"])
    assert script.count(") &") == 3
    assert "'https://x'\"'\"';rm -rf /:6443/readyz?verbose'" in script
    assert "https://10.0.1.11:6443/readyz?verbose" in script


def test_the_panel_asks_only_what_a_real_k3s_server_serves() -> None:
    """K3s's etcd serves gRPC only on 2379 (ListenClientHTTPURLs https://127.0.0.1:2382,
    k3s-io/k3s pkg/etcd/etcd.go listenClientHTTPURLs; etcd-io/etcd#15402): the JSON gateway
    is asked on 127.0.0.1:2382, every member through its apiserver's 6443, never on 2379."""
    commands = [" ".join(etcd.member_list_command()), " ".join(etcd.status_command()),
                etcd.member_health_script(["10.0.1.11", "10.0.1.12"])]
    assert all(":2379" not in command for command in commands), commands
    assert "https://127.0.0.1:2382/v3/cluster/member/list" in commands[0]
    assert "https://127.0.0.1:2382/v3/maintenance/status" in commands[1]
    assert "/var/lib/rancher/k3s/server/tls/etcd/client.crt" in commands[0]
    assert "/var/lib/rancher/k3s/server/tls/client-admin.crt" in commands[2]
    assert "/var/lib/rancher/k3s/server/tls/server-ca.crt" in commands[2]


def test_db_info_and_the_gateway_list_members() -> None:
    members = etcd.parse_db_info(
        '{"members":[{"ID":"11","name":"s1-ab12cd34","peerURLs":["https://10.0.1.11:2380"],'
        '"clientURLs":["https://10.0.1.11:2379"]},{"ID":12,"peerURLs":["https://10.0.1.14:2380"],'
        '"isLearner":true}]}')
    # /db/info when etcd's MemberList failed: only the asked server, with no ID.
    assert etcd.is_fallback_list(etcd.parse_db_info(
        '{"members":[{"name":"s1-ab12cd34","peerURLs":["https://10.0.1.11:2380"]}]}'))
    assert not etcd.is_fallback_list(members[:1])
    assert [(m.address, m.member_id, m.client_urls, m.learner) for m in members] == [
        ("10.0.1.11", "11", ("https://10.0.1.11:2379",), False), ("10.0.1.14", "12", (), True)]


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
    assert members == [etcd.Member("s1-ab12cd34", ("https://10.0.1.11:2380",), True, "1")]
    assert etcd.peer_url("10.0.1.11") in members[0].peer_urls
    assert etcd.snapshot_name("pre-upgrade", "v1.36.4+k3s1") == "pre-upgrade-v1.36.4-k3s1"
    assert 's3"cret' not in " ".join(etcd.db_info_command())
    assert etcd.db_info_credentials('s3"cret') == 'user = "server:s3\\"cret"\n'


def test_destroy_deletes_no_rds_and_uninstalls_every_host() -> None:
    cluster = _etcd_cluster()
    handlers = [spec.handler for spec in destroy_plan(cluster)]  # type: ignore[arg-type]
    assert "destroy.rds" not in handlers and "destroy.hosts" in handlers


def test_snapshot_rows_belong_to_the_server_that_listed_them_and_change_only_when_changed(
        ) -> None:
    cluster, (s1, s2, _s3) = _servers(3)
    # s2's own file happens to carry s1's name: still s2's, since s2's ls listed it.
    files = [etcd.SnapshotFile("etcd-snapshot-s1-1764590400",
                               "file:///var/lib/rancher/k3s/server/db/snapshots/x", 10,
                               datetime(2026, 12, 1, 12, tzinfo=UTC)),
             etcd.SnapshotFile("on-demand-s2-1764590500", "s3://bucket/on-demand-s2", 20,
                               datetime(2026, 12, 1, 12, 5, tzinfo=UTC))]
    etcd_members.record_snapshots(cluster, s2, files)  # type: ignore[arg-type]
    rows = {(r.node, r.name) for r in EtcdSnapshot.objects.filter(cluster=cluster)}
    assert rows == {("s2", "etcd-snapshot-s1-1764590400"), ("", "on-demand-s2-1764590500")}
    with CaptureQueriesContext(connection) as queries:
        etcd_members.record_snapshots(cluster, s2, files)  # type: ignore[arg-type]
    writes = [q["sql"] for q in queries.captured_queries
              if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert writes == []
    etcd_members.record_snapshots(cluster, s1, [])  # type: ignore[arg-type]
    assert EtcdSnapshot.objects.filter(cluster=cluster).count() == 2


def test_destroy_forgets_the_snapshots_and_members_of_uninstalled_servers() -> None:
    cluster, (s1, s2, _s3) = _servers(3)
    for server in (s1, s2):
        EtcdSnapshot.objects.create(cluster=cluster, node=server.name, name=f"x-{server.name}")
    cluster.etcd_members = [_member(s1.private_ip, True)]  # type: ignore[attr-defined]
    cluster.save()  # type: ignore[attr-defined]
    assert forget_etcd(cluster, [s1]) == 1  # type: ignore[arg-type]
    assert list(EtcdSnapshot.objects.filter(cluster=cluster).values_list("node", flat=True)) \
        == ["s2"]  # s2's host could not be cleaned: its files may still be there
    assert Cluster.objects.get(pk=cluster.pk).etcd_members == []  # type: ignore[attr-defined]


def _state(ip: str, healthy: bool, **fields: object) -> etcd_members.MemberState:
    return etcd_members.MemberState(ip, ip, healthy, False, "" if healthy else "down",
                                    **fields)  # type: ignore[arg-type]


def test_an_upgrade_restarts_a_server_only_while_etcd_keeps_a_majority() -> None:
    up = [_state("a", True), _state("b", True), _state("c", True)]
    assert etcd_restart_verdict(up, "a", waited_out=False) == ("go", "")
    catching_up = [_state("a", True), _state("b", False), _state("c", True)]
    verdict, why = etcd_restart_verdict(catching_up, "a", waited_out=False)
    assert verdict == "wait" and why.startswith("Waiting for etcd member(s) b (down)")
    verdict, why = etcd_restart_verdict(catching_up, "a", waited_out=True)
    assert verdict == "fail" and "only 1 of 3 voting members would be healthy" in why
    # The member that is down may itself be restarted (2 of 3 stay healthy).
    assert etcd_restart_verdict(catching_up, "b", waited_out=True)[0] == "go"
    # 5 with one that stays down: the wait ends, and the restart keeps 3 of 5.
    five = [_state(ip, ip != "e") for ip in "abcde"]
    assert etcd_restart_verdict(five, "a", waited_out=False)[0] == "wait"
    verdict, why = etcd_restart_verdict(five, "a", waited_out=True)
    assert verdict == "go" and "still leaves a majority (3 of 5)" in why
    # A learner being promoted is waited for.
    learning = [*up, _state("d", True, learner=True)]
    assert etcd_restart_verdict(learning, "a", waited_out=False)[0] == "wait"


def test_member_problems_are_translated_where_shown() -> None:
    stored = etcd_members.MemberState(
        "10.0.1.13", "s3", False, False,
        *etcd_members._problem("no_answer", where="https://10.0.1.13:2379", detail="x")).as_dict()
    assert stored["error"].startswith("etcd does not answer on https://10.0.1.13:2379")
    with translation.override("zh-hans"):
        shown = etcd_members.member_error(stored)
    assert shown.startswith("etcd 未在 https://10.0.1.13:2379 上应答"), shown
    assert etcd_members.member_error({"error": "old text"}) == "old text"
    # In the health reasons too (the cluster's Health panel).
    reason = etcd_members.reason("member_unhealthy", node="s3", detail=stored["error"],
                                 detail_code=stored["code"], detail_params=stored["params"])
    with translation.override("zh-hans"):
        assert "etcd 未在 https://10.0.1.13:2379 上应答" in health_reason(reason)


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
    assert "(2379-2382) is already in use" in problem
    rds_server = make_cluster(nodes=1).nodes.first()
    assert problems_of(HostFacts(rds_server, facts, 0.0)) == []


def test_a_removal_starts_from_the_last_health_check_without_asking_the_hosts() -> None:
    """No SSH inside the request: the stored member list decides, and the run's first step
    asks etcd again. The hosts' addresses are loopback ones nothing listens on."""
    cluster = make_cluster(datastore_kind=DatastoreKind.ETCD, status=ClusterStatus.READY,
                           slb_address="127.0.0.1", kubeconfig="apiVersion: v1\n")
    servers = [Node.objects.create(cluster=cluster, role=NodeRole.SERVER, name=f"s{i}",
                                   private_ip=f"127.0.9.{i}", ssh_port=9, status="ready",
                                   ecs_instance_id=f"i-{i}") for i in (1, 2, 3)]
    cluster.etcd_members = [_member(s.private_ip, s is not servers[1]) for s in servers]
    cluster.save()
    with pytest.raises(OperationRefused, match="1 of 3 etcd voting members would be healthy"):
        start_remove_node(cluster, servers[0])
    cluster.etcd_members = [_member(s.private_ip, True) for s in servers]
    cluster.save()
    with in_process_engine():
        run = start_remove_node(Cluster.objects.get(pk=cluster.pk), servers[0])
    step = run.steps.get(key="etcd_quorum")
    assert step.handler == "etcd.check_quorum"
    assert run.steps.get(key="drain").depends_on == ["etcd_quorum"]
