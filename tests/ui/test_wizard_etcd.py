"""The datastore page's fifth choice, K3s's embedded etcd: no RDS asked about or billed, an
odd number of servers (docs.k3s.io/datastore/ha-embedded), and a snapshot schedule K3s's cron
parser takes (docs.k3s.io/cli/etcd-snapshot: default 0 */12 * * *, 5 kept)."""

from __future__ import annotations

import html
from typing import Any

from django.test import Client

from clusters.interface.forms.wizard_datastore import datastore_of
from clusters.interface.wizard import WizardState, billed_resources
from clusters.models import DatastoreKind
from sandbox.aliyun.testing import Emulator
from tests.ui.test_wizard import at_review, field_errors, step_url  # noqa: F401 - a fixture
from tests.ui.wizard_data import host_rows


def _rds_calls(cloud: Emulator) -> int:
    """RDS calls only: the hosts page the datastore page leads to asks ECS (DescribeInstances,
    DescribeAvailableResource for the instances the panel can buy), which is not RDS."""
    return sum(1 for c in cloud.control.calls() if c.get("product") == "Rds")


def _choose_etcd(client: Client, **fields: Any) -> Any:
    return client.post(step_url("datastore"), {"kind": "etcd", **fields}, follow=True)


def test_etcd_is_offered_and_asks_rds_nothing(at_datastore: Client, cloud: Emulator) -> None:
    assert datastore_of("etcd")[0] == DatastoreKind.ETCD
    page = at_datastore.get(step_url("datastore")).content.decode()
    assert 'value="etcd"' in page and "Embedded etcd on the servers (no RDS)" in page
    before = _rds_calls(cloud)
    done = _choose_etcd(at_datastore)
    assert done.redirect_chain[-1][0] == step_url("hosts")
    saved = WizardState(at_datastore.session).get("datastore")
    # K3s's own defaults when the fields are left alone.
    assert (saved["kind"], saved["etcd_snapshot_cron"], saved["etcd_snapshot_retention"]) == (
        "etcd", "0 */12 * * *", 5)
    assert _rds_calls(cloud) == before
    at_datastore.get(step_url("datastore"))  # back on the page, on etcd: still nothing asked
    assert _rds_calls(cloud) == before
    at_datastore.post(step_url("datastore"), {"kind": "rds", "action": "refresh"})
    assert _rds_calls(cloud) > before  # what an RDS choice asks, counted the same way
    # Only the load balancer is billed.
    (only,) = billed_resources(WizardState(at_datastore.session))
    assert "RDS" not in str(only.what)


def test_a_schedule_k3s_could_not_parse_is_refused_by_field(at_datastore: Client) -> None:
    for cron, words in (("0 */12 * *", "A schedule has 5 fields"),
                        ("61 * * * *", "61 is not a valid minute"),
                        ("0 25 * * *", "25 is not a valid hour"),
                        ("0 0 * 13 *", "13 is not a valid month"),
                        ("*/0 * * * *", "*/0 is not a valid minute"),
                        ("0 5-3 * * *", "5-3 is not a valid hour"),
                        # robfig/cron spec.go: day of week 0-6 (7 is above its maximum).
                        ("0 3 * * 7", "7 is not a valid day of week: use *, a number from 0 "
                                      "to 6"),
                        ("@reboot", "@reboot is not a schedule K3s knows"),
                        ("TZ=Nowhere/Land 0 3 * * *", "the time zone Nowhere/Land is unknown")):
        refused = at_datastore.post(step_url("datastore"), {
            "kind": "etcd", "etcd_snapshot_cron": cron, "etcd_snapshot_retention": 5})
        assert refused.status_code == 200, cron
        assert words in " ".join(field_errors(refused, "etcd_snapshot_cron")), cron
    zero = at_datastore.post(step_url("datastore"), {
        "kind": "etcd", "etcd_snapshot_cron": "0 3 * * mon-fri", "etcd_snapshot_retention": 0})
    assert field_errors(zero, "etcd_snapshot_retention")
    fine = _choose_etcd(at_datastore, etcd_snapshot_cron="@every 6h")
    assert fine.redirect_chain[-1][0] == step_url("hosts")
    assert WizardState(at_datastore.session).get("datastore")["etcd_snapshot_cron"] == \
        "@every 6h"
    fine = _choose_etcd(at_datastore, etcd_snapshot_cron="  30 2  * * mon-fri ",
                        etcd_snapshot_retention=9)
    assert fine.redirect_chain[-1][0] == step_url("hosts")
    saved = WizardState(at_datastore.session).get("datastore")
    assert (saved["etcd_snapshot_cron"], saved["etcd_snapshot_retention"]) == (
        "30 2 * * mon-fri", 9)


def _hosts(client: Client, servers: int, agents: int = 0) -> Any:
    rows = [{"role": "server", "private_ip": f"10.0.1.{11 + i}"} for i in range(servers)]
    rows += [{"role": "agent", "private_ip": f"10.0.1.{31 + i}"} for i in range(agents)]
    return client.post(step_url("hosts"), {**host_rows(*rows), "action": "next"}, follow=True)


def test_etcd_needs_3_or_5_servers(at_datastore: Client) -> None:
    _choose_etcd(at_datastore)
    blank = at_datastore.get(step_url("hosts")).content.decode()
    assert 'name="hosts-TOTAL_FORMS" value="3"' in blank  # the 3 servers etcd needs
    for servers in (2, 4, 6):
        refused = html.unescape(_hosts(at_datastore, servers).content.decode())
        assert f"Embedded etcd needs an odd number of servers: 3 or 5 (you have {servers})" \
            in refused, servers
        assert not WizardState(at_datastore.session).done("hosts")
    one = html.unescape(_hosts(at_datastore, 1).content.decode())
    assert "One embedded-etcd server is not highly available" in one
    assert not WizardState(at_datastore.session).done("hosts")
    for servers in (3, 5):
        done = _hosts(at_datastore, servers, agents=1)
        assert done.redirect_chain[-1][0] == step_url("k3s"), servers


def test_one_server_only_when_acknowledged(at_datastore: Client) -> None:
    _choose_etcd(at_datastore, etcd_single_server="on")
    done = _hosts(at_datastore, 1)
    assert done.redirect_chain[-1][0] == step_url("k3s")
    assert "not highly available" in html.unescape(done.content.decode())


def test_review_says_no_rds_is_billed_and_refuses_hosts_that_no_longer_fit(
        at_review: Client, cloud: Emulator) -> None:  # noqa: F811
    session = at_review.session
    WizardState(session).put("datastore", {"kind": "etcd", "etcd_snapshot_cron": "0 */6 * * *",
                                           "etcd_snapshot_retention": 7})
    session.save()
    # The review's one server came with an RDS datastore; etcd needs 3 (or an acknowledgement).
    sent_back = at_review.get(step_url("review"), follow=True)
    assert sent_back.redirect_chain[-1][0] == step_url("hosts")
    assert "One embedded-etcd server is not highly available" in html.unescape(
        sent_back.content.decode())
    session = at_review.session
    base = cloud.vswitch["cidr"].rsplit(".", 1)[0]
    WizardState(session).put("hosts", {"hosts": [
        {"role": "server", "private_ip": f"{base}.{21 + i}", "ssh_port": 22, "ssh_user": "root",
         "auth": "password", "password": "s3cret-pass"} for i in range(3)], "warnings": []})
    session.save()
    review = html.unescape(at_review.get(step_url("review")).content.decode())
    assert "No RDS instance is bought or billed" in review
    assert 'Snapshots at "0 */6 * * *", 7 kept per server' in review
    assert "RDS MySQL instance" not in review
