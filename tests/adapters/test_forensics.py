"""The diagnostics report of a failed host (clusters/k3s/forensics.py): config keys without
values, bounded sections, a failed probe reported and not fatal, everything redacted."""

from __future__ import annotations

import pytest

from clusters.core.redaction import Redactor
from clusters.engine.pipeline import StepSpec, create_run
from clusters.k3s.config import ClusterSettings, NodeIdentity, render_server_config
from clusters.k3s.forensics import (
    MAX_LINE_CHARS,
    MAX_SECTION_CHARS,
    ProbeResult,
    bounded,
    config_keys,
    probes,
    report,
)
from clusters.models import LogLine, Node, RunKind, StepStatus
from tests.adapters.sshd_server import PASSWORDS, SshServer
from tests.support.engine_specs import in_process_engine
from tests.support.factories import make_cluster

TOKEN = "K10token-of-the-cluster-secret"
PASSWORD = "Db-Pass:w/rd@1"
DSN = f"mysql://k3s:{PASSWORD}@tcp(rm-abc.mysql.rds.aliyuncs.com:3306)/k3s"


def by_key(unit: str = "k3s") -> dict[str, object]:
    return {probe.key: probe for probe in probes(unit)}


def test_the_commands_are_what_a_person_types_on_debian_each_with_a_timeout() -> None:
    assert [p.command for p in probes("k3s")] == [
        "systemctl status k3s --no-pager", "journalctl -u k3s -n 50 --no-pager",
        "cat /etc/rancher/k3s/config.yaml", "df -h", "free -m"]
    assert [p.command for p in probes("k3s-agent")][:2] == [
        "systemctl status k3s-agent --no-pager", "journalctl -u k3s-agent -n 50 --no-pager"]
    assert all(0 < p.timeout <= 30 for p in probes("k3s"))


def test_the_config_file_shows_its_keys_and_never_a_value() -> None:
    text = render_server_config(
        ClusterSettings(token=TOKEN, datastore_endpoint=DSN, tls_sans=("10.0.0.9", "lb.example"),
                        disable=("traefik",)),
        NodeIdentity(node_ip="10.0.0.5"))
    keys = config_keys(text)
    assert keys[:3] == ["token: ***", "datastore-endpoint: ***", "tls-san: *** (2 items)"]
    assert "node-ip: ***" in keys and "disable: *** (1 item)" in keys
    shown = "\n".join(keys)
    for value in (TOKEN, PASSWORD, "rm-abc", "10.0.0.9", "10.0.0.5", "traefik", "0600"):
        assert value not in shown


def test_a_broken_config_file_still_shows_only_names() -> None:
    keys = config_keys(f"token: {TOKEN}\ndatastore-endpoint: '{DSN}\nnode-ip: [10.0.0.5\n")
    assert keys[0].startswith("(not valid YAML at line ")
    assert keys[1:] == ["token: ***", "datastore-endpoint: ***", "node-ip: ***"]
    assert config_keys("") == ["(the file is empty)"]
    assert config_keys("- a\n- b\n")[0].startswith("(not a YAML mapping but a list")
    assert config_keys("token:\nnested:\n  a: 1\n  b: 2\n") == [
        "token: (empty)", "nested: *** (2 keys)"]


def test_sections_are_bounded_in_lines_and_characters_and_say_so() -> None:
    lines = [f"line {n}" for n in range(100)]
    assert bounded(lines, 10, "tail") == ["(90 earlier lines left out)",
                                          *(f"line {n}" for n in range(90, 100))]
    assert bounded(lines, 10) == [*(f"line {n}" for n in range(10)), "(90 more lines left out)"]
    huge = ["x" * 5000] * 50
    kept = bounded(huge, 50, "tail")
    assert all(len(line) <= MAX_LINE_CHARS + 6 for line in kept)
    assert sum(len(line) + 1 for line in kept[1:]) <= MAX_SECTION_CHARS
    assert kept[0].endswith("earlier lines left out)")
    assert bounded(["one"], 5) == ["one"]


def test_a_report_keeps_going_past_failed_probes_and_redacts_everything() -> None:
    probe = by_key()
    journal = "\n".join(
        [f"Dec 01 k3s[9]: noise {n}" for n in range(120)]
        + [f'Dec 01 k3s[9]: level=fatal msg="Error 1045: Access denied for user k3s using '
           f'password {PASSWORD}"'])
    results = [
        ProbeResult(probe["unit"], 3, "\u00d7 k3s.service - Lightweight Kubernetes\n"
                    "     Active: failed (Result: exit-code)\n"),
        ProbeResult(probe["journal"], 0, journal),
        ProbeResult(probe["config"], 0, f"token: {TOKEN}\ndatastore-endpoint: {DSN}\n"),
        ProbeResult(probe["disk"], error="no answer within 15 s"),
        ProbeResult(probe["memory"], 127, "", "sh: 1: free: not found\n"),
    ]
    lines = report("10.0.0.5", "the step failed", results, Redactor([TOKEN, PASSWORD]),
                   install_output=f"[INFO]  Downloading\n[ERROR] token {TOKEN} refused")
    text = "\n".join(lines)
    assert lines[0] == "==== Diagnostics of 10.0.0.5 (the step failed) ===="
    assert lines[-1] == "==== End of the diagnostics of 10.0.0.5 ===="
    assert "--- Install script output (last 40 lines) ---\n[INFO]  Downloading\n" \
           "[ERROR] token *** refused\n" in text
    assert "--- Unit status (systemctl status k3s --no-pager, exit 3) ---\n" \
           "\u00d7 k3s.service - Lightweight Kubernetes\n" in text
    assert "--- Last 50 journal lines (journalctl -u k3s -n 50 --no-pager) ---\n" \
           "(66 earlier lines left out)\nDec 01 k3s[9]: noise 66\n" in text
    assert "using password ***" in text
    assert "Known problem: The database refused the user name or password" in text
    assert "--- K3s config, keys only (values redacted) (cat /etc/rancher/k3s/config.yaml) " \
           "---\ntoken: ***\ndatastore-endpoint: ***\n" in text
    assert "--- Free disk (df -h) ---\n(could not run: no answer within 15 s)\n" in text
    assert "--- Free memory (MiB) (free -m, exit 127) ---\nsh: 1: free: not found\n" in text
    assert TOKEN not in text and PASSWORD not in text


def test_an_unreadable_config_says_why_and_an_unreachable_host_says_so_once() -> None:
    probe = by_key()
    lines = report("10.0.0.6", "collected on request", [
        ProbeResult(probe["config"], 1, "", "cat: /etc/rancher/k3s/config.yaml: No such file "
                    "or directory\n")], Redactor())
    assert "(not readable, exit 1: cat: /etc/rancher/k3s/config.yaml: No such file or " \
           "directory)" in lines
    lines = report("10.0.0.7", "collected on request", [], Redactor([PASSWORD]),
                   unreachable=f"SSH login as root@10.0.0.7 failed ({PASSWORD})")
    assert lines == ["==== Diagnostics of 10.0.0.7 (collected on request) ====",
                     "(could not log in to 10.0.0.7: SSH login as root@10.0.0.7 failed (***); "
                     "nothing was collected)",
                     "==== End of the diagnostics of 10.0.0.7 ===="]


@pytest.mark.django_db(transaction=True)  # hosts are read in threads with their own connection
@pytest.mark.parametrize("fails", [True, False])
def test_a_failed_install_step_ends_its_log_with_the_hosts_diagnostics(
        sshd: SshServer, fails: bool) -> None:
    """The engine runs a step under `collects_diagnostics` (clusters/steps/k3s.py) whose
    script fails on a real sshd: its output, then the host's report, then the failure."""
    cluster = make_cluster(nodes=1)
    node = cluster.nodes.get()
    Node.objects.filter(pk=node.pk).update(private_ip=sshd.host, ssh_port=sshd.port,
                                           ssh_user="pt_nopw", ssh_password=PASSWORDS["pt_nopw"])
    with in_process_engine() as engine:
        run = engine.act(create_run, cluster, RunKind.TEST, [StepSpec(
            "install", "Install", "test.install_that_fails",
            args={"node_id": node.pk, "done": not fails})])
        engine.deliver_all()
    step = run.steps.get()
    lines = list(LogLine.objects.filter(step=step).order_by("seq").values_list("text", flat=True))
    if not fails:
        assert step.status == StepStatus.SUCCEEDED
        assert not any(line.startswith("==== Diagnostics") for line in lines), lines
        return
    assert step.status == StepStatus.FAILED
    start = lines.index(f"==== Diagnostics of {sshd.host} (the step failed; collected before "
                        "anything else touched the host) ====")
    assert f"[{sshd.host}] [ERROR] Download failed" in lines[:start]
    assert lines[start + 1:start + 4] == ["--- Install script output (last 40 lines) ---",
                                          "[INFO]  Downloading k3s", "[ERROR] Download failed"]
    assert [line.split(" (")[0] for line in lines[start:] if line.startswith("--- ")][1:] == [
        "--- Unit status", "--- Last 50 journal lines", "--- K3s config, keys only",
        "--- Free disk", "--- Free memory"]
    assert lines[-2:] == [f"==== End of the diagnostics of {sshd.host} ====", step.error]
    assert step.error.startswith(f"The K3s install script failed on {sshd.host} (exit 3)")
    assert PASSWORDS["pt_nopw"] not in "\n".join(lines)
