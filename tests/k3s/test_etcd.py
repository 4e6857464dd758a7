"""K3s embedded etcd HA on lab hosts: a real etcd member per server, seen as a K3s host shows it.

Each lab host has its own network namespace (so every server has its own 127.0.0.1:2379) and
its own /var/lib/rancher. Servers join through the first server's address, as K3s's docs say
(docs.k3s.io/datastore/ha-embedded). Behaviour pinned to k3s-io/k3s pkg/etcd/etcd.go,
member_controller.go, snapshot.go, pkg/cli/etcdsnapshot/etcd_snapshot.go and
pkg/cluster/managed.go (see sandbox/k3s/README.md "Embedded etcd").
"""

from __future__ import annotations

import json
import re
import shlex
import time
from collections.abc import Iterator

import pytest

from sandbox.k3s.binary import binary_bytes
from sandbox.lab.lab import Lab
from sandbox.lab.state import Host
from sandbox.lab.testing import running_lab
from tests.support.tools import require, require_root

pytestmark = [pytest.mark.slow, pytest.mark.lab]

TOKEN = "etcd-cluster-token-1"
LOG = "/var/log/k3s.log"
PID = "/run/k3s.pid"
TLS = "/var/lib/rancher/k3s/server/tls/etcd"
# Nodes report every second and are NotReady 5 s after; the etcd leader promotes learners
# every 2 s instead of 15 s (manageTickerTime).
FAST = ("--kubelet-arg=node-status-update-frequency=1s "
        "--kube-controller-manager-arg=node-monitor-grace-period=5s")
ENV = "K3S_STANDIN_ETCD_MANAGE_SECONDS=2 K3S_STANDIN_WARMUP_SECONDS=0"


def run(lab: Lab, host: Host, command: str, timeout: float = 60) -> str:
    result = lab.run(host, command, timeout=timeout)
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout


def journal(lab: Lab, host: Host) -> str:
    return lab.run(host, f"cat {LOG} 2>/dev/null").stdout


def k3s_lines(lab: Lab, host: Host) -> list[str]:
    """The journal without etcd's own JSON lines (K3s's journal interleaves both)."""
    return [line for line in journal(lab, host).splitlines() if line.startswith("time=")]


def start(lab: Lab, host: Host, args: str) -> None:
    run(lab, host, f"{ENV} setsid nohup /usr/local/bin/k3s server {args} {FAST} --node-ip "
                   f"{host.ip} >> {LOG} 2>&1 < /dev/null & echo $! > {PID}")


def stop(lab: Lab, host: Host, sig: str = "TERM") -> None:
    """Stop the server and wait for its etcd to go (a leader's etcd first tries to hand over
    leadership, which takes its election timeout when the peers are down)."""
    lab.run(host, f"kill -{sig} $(cat {PID}) 2>/dev/null; "
                  "for i in $(seq 300); do pgrep -x etcd >/dev/null || pgrep -f "
                  "'/usr/local/bin/[k]3s server' >/dev/null || exit 0; sleep 0.2; done; exit 1",
            timeout=90)


def wait_journal(lab: Lab, host: Host, text: str, after: int = 0, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = k3s_lines(lab, host)[after:]
        found = "\n".join(lines)
        if text in found or "level=fatal" in found:
            return found
        time.sleep(0.5)
    return "\n".join(k3s_lines(lab, host)[after:])


def join(lab: Lab, host: Host, args: str) -> None:
    """Start a joining server once: K3s's ETCD.Start retries the join every second while etcd
    answers "too many learner members" or "unhealthy cluster" (logging `Waiting for other
    members to finish joining etcd cluster: ...`), so no restart is needed."""
    before = len(k3s_lines(lab, host))
    start(lab, host, args)
    found = wait_journal(lab, host, "Successfully registered node", before, 150)
    assert "Successfully registered node" in found and "level=fatal" not in found, found


def etcd_api(lab: Lab, host: Host, path: str, body: str = "{}") -> dict:
    out = run(lab, host, f"curl -s -m 10 --cacert {TLS}/server-ca.crt --cert {TLS}/client.crt "
                         f"--key {TLS}/client.key -X POST -d {shlex.quote(body)} "
                         f"https://127.0.0.1:2382{path}")
    return dict(json.loads(out))


def kubectl(lab: Lab, host: Host, args: str, timeout: float = 120
            ) -> tuple[int, str, str]:
    result = lab.run(host, f"k3s kubectl {args}", timeout=timeout)
    return result.returncode, result.stdout, result.stderr


def members(lab: Lab, host: Host) -> list[dict]:
    return list(etcd_api(lab, host, "/v3/cluster/member/list").get("members", []))


def wait_until(check: object, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(1)
    raise AssertionError(message)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Lab, list[Host]]]:
    require_root("network namespaces for lab hosts")
    require("etcd", "etcdctl", "curl", "kubectl")
    with running_lab(4) as lab:
        hosts = lab.hosts
        for host in hosts:
            lab.run(host, "mkdir -p /usr/local/bin && cat > /usr/local/bin/k3s && "
                          "chmod 755 /usr/local/bin/k3s",
                    input=binary_bytes("v1.33.1+k3s1", "amd64").decode(), check=True)
        first = hosts[0]
        start(lab, first, f"--cluster-init --token {TOKEN} "
                          "--etcd-snapshot-schedule-cron='* * * * *' --etcd-snapshot-retention=2")
        found = wait_journal(lab, first, "Successfully registered node", 0, 60)
        assert "Successfully registered node" in found, journal(lab, first)
        for host in hosts[1:3]:
            join(lab, host, f"--server https://{first.ip}:6443 --token {TOKEN}")
        yield lab, hosts


def test_three_servers_share_one_etcd_cluster(cluster: tuple[Lab, list[Host]]) -> None:
    lab, hosts = cluster
    first = hosts[0]
    lines = "\n".join(k3s_lines(lab, first))
    assert "Starting etcd for new cluster" in lines
    second = "\n".join(k3s_lines(lab, hosts[1]))
    assert re.search(r"Adding member \S+-[0-9a-f]{8}=https://" + re.escape(hosts[1].ip)
                     + r":2380 to etcd cluster \[\S+=https://" + re.escape(first.ip)
                     + r":2380\]", second), second
    assert "Starting etcd to join cluster with members [" in second
    assert "etcd data store connection OK" in second
    wait_until(lambda: len(members(lab, first)) == 3
               and not any(m.get("isLearner") for m in members(lab, first)), 60,
               "learners not promoted")
    names = sorted(m["name"] for m in members(lab, first))
    for host in hosts[:3]:
        on_disk = run(lab, host, "cat /var/lib/rancher/k3s/server/db/etcd/name")
        assert on_disk in names
        assert on_disk.startswith(host.hostname + "-")
        # The etcd CAs travel in the bootstrap data: one CA set for every server.
        assert run(lab, host, f"sha256sum < {TLS}/server-ca.crt") == \
            run(lab, first, f"sha256sum < {TLS}/server-ca.crt")
    # K3s's etcd options file (executor.ETCDConfig.ToConfigFile), as on a real host.
    config = run(lab, hosts[1], "cat /var/lib/rancher/k3s/server/db/etcd/config")
    assert (f"listen-client-urls: https://127.0.0.1:2379,https://{hosts[1].ip}:2379,"
            "https://127.0.0.1:2382" in config.splitlines())
    # ListenClientHTTPURLs (etcd-io/etcd#15402): the JSON gateway on loopback 2382 only.
    assert "listen-client-http-urls: https://127.0.0.1:2382" in config.splitlines()
    refused = lab.run(first, f"curl -s -m 5 --cacert {TLS}/server-ca.crt --cert {TLS}/client.crt "
                             f"--key {TLS}/client.key -X POST -d '{{}}' "
                             f"https://{hosts[1].ip}:2382/v3/cluster/member/list")
    assert refused.returncode == 7, refused  # curl: could not connect
    assert f"advertise-client-urls: https://{hosts[1].ip}:2379" in config.splitlines()
    assert "election-timeout: 5000" in config.splitlines()
    status = etcd_api(lab, hosts[1], "/v3/maintenance/status")
    assert status["leader"] in [m["ID"] for m in members(lab, first)]
    code, out, err = kubectl(lab, hosts[2], "get nodes --no-headers")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines()}
    for host in hosts[:3]:
        assert rows[host.hostname][1:3] == ["Ready", "control-plane,etcd,master"]
    code, out, _ = kubectl(lab, first, f"get node {hosts[1].hostname} -o json")
    meta = json.loads(out)["metadata"]
    assert meta["labels"]["node-role.kubernetes.io/etcd"] == "true"
    assert meta["annotations"]["etcd.k3s.cattle.io/node-address"] == hosts[1].ip
    assert meta["annotations"]["etcd.k3s.cattle.io/node-name"] in names
    assert meta["finalizers"] == ["wrangler.cattle.io/managed-etcd-controller"]


def test_a_wrong_token_is_refused(cluster: tuple[Lab, list[Host]]) -> None:
    lab, hosts = cluster
    stranger = hosts[3]
    start(lab, stranger, f"--server https://{hosts[0].ip}:6443 --token not-the-token")
    found = wait_journal(lab, stranger, "level=fatal", 0, 30)
    assert (f'level=fatal msg="starting kubernetes: preparing server: https://{hosts[0].ip}:6443'
            '/v1-k3s/server-bootstrap: 401 Unauthorized"') in found, found
    assert len(members(lab, hosts[0])) == 3
    assert lab.run(stranger, "pgrep -x etcd").returncode == 1


def test_db_info_is_local_or_server_role(cluster: tuple[Lab, list[Host]]) -> None:
    """pkg/etcd/etcd.go handler: /db/info behind auth.IsLocalOrHasRole(k3s:server)."""
    lab, hosts = cluster
    first, stranger = hosts[0], hosts[3]
    url = f"https://{first.ip}:6443/db/info"
    local = run(lab, first, "curl -s -m 10 -k https://127.0.0.1:6443/db/info")
    assert len(json.loads(local)["members"]) == 3  # loopback: no credentials needed
    for user in ("node", "nobody"):
        answer = lab.run(stranger, f"curl -s -m 10 -k -w '\\n%{{http_code}}' "
                                   f"-u {user}:{TOKEN} {url}")
        body, code = answer.stdout.rsplit("\n", 1)
        assert code == "403", answer
        assert json.loads(body)["message"] == "forbidden"
    answer = run(lab, stranger, f"curl -s -m 10 -k -u server:{TOKEN} {url}")
    assert len(json.loads(answer)["members"]) == 3


def test_snapshot_save_list_prune(cluster: tuple[Lab, list[Host]]) -> None:
    lab, hosts = cluster
    first = hosts[0]
    snapdir = "/var/lib/rancher/k3s/server/db/snapshots"
    saved = []
    for _ in range(2):
        result = lab.run(first, "k3s etcd-snapshot save", timeout=60)
        assert result.returncode == 0, result.stderr
        match = re.search(r'msg="Snapshot (on-demand-' + re.escape(first.hostname)
                          + r"-(\d+)) saved\.\"", result.stderr)
        assert match, result.stderr
        saved.append(match.group(1))
        time.sleep(1.1)  # names carry whole seconds
    result = lab.run(first, "k3s etcd-snapshot save --name before-upgrade", timeout=60)
    assert result.returncode == 0, result.stderr
    listed = run(lab, first, "k3s etcd-snapshot ls")
    lines = listed.splitlines()
    assert re.fullmatch(r"Name +Location +Size +Created", lines[0])
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    for name in saved:
        size = run(lab, first, f"stat -c %s {snapdir}/{name}").strip()
        assert rows[name][1:3] == [f"file://{snapdir}/{name}", size]
        assert int(size) > 20000  # a real etcd snapshot, not an empty file
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rows[name][3])
    assert any(name.startswith(f"before-upgrade-{first.hostname}-") for name in rows)
    # The columns line up as Go's tabwriter pads them.
    column = lines[0].index("Location")
    assert all(line[column:].startswith("file://") and line[column - 1] == " "
               for line in lines[1:])
    result = lab.run(first, "k3s etcd-snapshot prune --snapshot-retention 1", timeout=60)
    assert result.returncode == 0, result.stderr
    assert f'msg="Snapshot {saved[0]} deleted."' in result.stderr
    left = run(lab, first, f"ls {snapdir}").split()
    assert saved[0] not in left and saved[1] in left
    assert any(name.startswith("before-upgrade-") for name in left)
    result = lab.run(first, f"k3s etcd-snapshot delete {saved[1]} nosuch", timeout=60)
    assert f'msg="Snapshot {saved[1]} deleted."' in result.stderr
    assert 'level=warning msg="Snapshot nosuch not found."' in result.stderr


def test_snapshot_dir_must_exist_and_compress_zips(cluster: tuple[Lab, list[Host]]) -> None:
    """snapshot.go snapshotDir / compressSnapshot, snapshot_handler.go withRequest."""
    lab, hosts = cluster
    first = hosts[0]
    result = lab.run(first, "k3s etcd-snapshot save --dir /var/backups/nosuch", timeout=60)
    assert result.returncode == 1, result
    assert "level=fatal" in result.stderr
    assert ("failed to get etcd-snapshot-dir: stat /var/backups/nosuch: no such file or "
            "directory") in "\n".join(k3s_lines(lab, first))
    assert lab.run(first, "test -e /var/backups/nosuch").returncode == 1
    result = lab.run(first, "k3s etcd-snapshot save --name zipped --snapshot-compress",
                     timeout=60)
    assert result.returncode == 0, result.stderr
    match = re.search(r'msg="Snapshot (zipped-\S+\.zip) saved\."', result.stderr)
    assert match, result.stderr
    snapdir = "/var/lib/rancher/k3s/server/db/snapshots"
    listing = run(lab, first, f"python3 -m zipfile -l {snapdir}/{match.group(1)}")
    assert match.group(1).removesuffix(".zip") in listing
    assert match.group(1).removesuffix(".zip") not in run(lab, first, f"ls {snapdir}").split()


def test_a_scheduled_snapshot_happens(cluster: tuple[Lab, list[Host]]) -> None:
    lab, hosts = cluster
    first = hosts[0]
    prefix = f"etcd-snapshot-{first.hostname}-"
    wait_until(lambda: prefix in run(lab, first, "ls /var/lib/rancher/k3s/server/db/snapshots"),
               75, "no scheduled snapshot within a minute")
    assert "Saving etcd snapshot to /var/lib/rancher/k3s/server/db/snapshots/" + prefix in \
        "\n".join(k3s_lines(lab, first))


def test_quorum_loss_and_recovery(cluster: tuple[Lab, list[Host]]) -> None:
    lab, hosts = cluster
    first, second, third = hosts[:3]
    stop(lab, second)
    stop(lab, third, "KILL")  # a crashed server: its etcd must not outlive it
    # The member dies with its server, as K3s's in-process etcd does.
    assert lab.run(second, "pgrep -x etcd").returncode == 1
    assert lab.run(third, "pgrep -x etcd").returncode == 1
    code, _, err = kubectl(lab, first, f"label node {first.hostname} quorum=lost")
    assert code != 0
    assert "Error from server: etcdserver: request timed out" in err, err
    code, _, err = kubectl(lab, first, "get --raw /readyz")
    assert code != 0 and "[-]etcd failed: reason withheld" in err, err
    assert "etcdserver: no leader" in etcd_api(lab, first, "/v3/maintenance/status")["errors"]
    # infoHandler: MemberList is a quorum read in K3s's etcd client, so /db/info fails (500).
    answer = lab.run(first, "curl -s -m 20 -k -w '\\n%{http_code}' "
                            "https://127.0.0.1:6443/db/info", timeout=30)
    body, code = answer.stdout.rsplit("\n", 1)
    assert code == "500", answer
    assert json.loads(body)["message"].startswith(
        "Internal error occurred: failed to get etcd MemberList: "), body
    before = len(k3s_lines(lab, second))
    start(lab, second, f"--server https://{first.ip}:6443 --token {TOKEN}")
    found = wait_journal(lab, second, "Successfully registered node", before, 120)
    assert "Starting etcd for existing cluster member" in found, found
    wait_until(lambda: kubectl(lab, first, f"label --overwrite node {first.hostname} "
                                           "quorum=back", 60)[0] == 0, 90, "no recovery")
    code, out, _ = kubectl(lab, second, f"get node {first.hostname} --show-labels")
    assert "quorum=back" in out


def test_deleting_a_dead_servers_node_removes_its_member(cluster: tuple[Lab, list[Host]]
                                                         ) -> None:
    lab, hosts = cluster
    first, third = hosts[0], hosts[2]
    dead = run(lab, third, "cat /var/lib/rancher/k3s/server/db/etcd/name")
    assert dead in [m["name"] for m in members(lab, first)]
    code, out, err = kubectl(lab, first, f"delete node {third.hostname}")
    assert code == 0, err
    assert f'node "{third.hostname}" deleted' in out
    assert dead not in [m["name"] for m in members(lab, first)]
    assert len(members(lab, first)) == 2
    lines = "\n".join(k3s_lines(lab, first) + k3s_lines(lab, hosts[1]))
    assert f"Removing etcd member {third.hostname} from cluster" in lines
    assert re.search(rf"Removing name={re.escape(dead)} id=\d+ address={re.escape(third.ip)} "
                     "from etcd", lines)
    code, _, err = kubectl(lab, first, f"get node {third.hostname}")
    assert code != 0 and "NotFound" in err


def test_a_removed_member_rejoins_after_two_restarts(cluster: tuple[Lab, list[Host]]) -> None:
    """k3s pkg/daemons/executor/embed.go: told it was removed, the member writes a tombstone
    and stops ("please restart k3s to rejoin"); the next start moves db/etcd aside and joins."""
    lab, hosts = cluster
    first, third = hosts[0], hosts[2]
    before = len(k3s_lines(lab, third))
    start(lab, third, f"--server https://{first.ip}:6443 --token {TOKEN}")
    found = wait_journal(lab, third, "please restart k3s to rejoin the cluster", before, 60)
    assert ("This node has been removed from the cluster - please restart k3s to rejoin the "
            "cluster") in found, found
    assert lab.run(third, "test -e /var/lib/rancher/k3s/server/db/etcd/tombstone"
                   ).returncode == 0
    stop(lab, third)
    before = len(k3s_lines(lab, third))
    join(lab, third, f"--server https://{first.ip}:6443 --token {TOKEN}")
    lines = "\n".join(k3s_lines(lab, third)[before:])
    assert "tombstone file has been detected, removing data dir to rejoin the cluster" in lines
    assert lab.run(third, "ls -d /var/lib/rancher/k3s/server/db/etcd-backup-*").returncode == 0
    wait_until(lambda: len(members(lab, first)) == 3, 60, "the member did not rejoin")
    stop(lab, third)


def test_cluster_reset_restores_a_snapshot_into_a_one_member_cluster(
        cluster: tuple[Lab, list[Host]]) -> None:
    lab, hosts = cluster
    first, second = hosts[0], hosts[1]
    result = lab.run(first, "k3s etcd-snapshot save --name restore-me", timeout=60)
    snapshot = re.search(r"Snapshot (restore-me-\S+) saved", result.stderr)
    assert snapshot, result.stderr
    path = f"/var/lib/rancher/k3s/server/db/snapshots/{snapshot.group(1)}"
    code, _, err = kubectl(lab, first, f"label --overwrite node {first.hostname} after=snapshot")
    assert code == 0, err
    stop(lab, second)
    stop(lab, first)
    reset = lab.run(first, f"{ENV} /usr/local/bin/k3s server --cluster-reset "
                           f"--cluster-reset-restore-path={path} --token {TOKEN} "
                           f"--node-ip {first.ip}", timeout=180)
    output = reset.stdout + reset.stderr
    assert reset.returncode == 0, "\n".join(
        line for line in output.splitlines() if '"level":"info"' not in line)[-4000:]
    assert re.search(r"Pre-restore etcd database moved to /var/lib/rancher/k3s/server/db/"
                     r"etcd-old-\d+", output)
    assert ("Managed etcd cluster membership has been reset, restart without --cluster-reset "
            "flag now.") in output
    assert lab.run(first, "ls -d /var/lib/rancher/k3s/server/db/etcd-old-*").returncode == 0
    assert lab.run(first, "test -e /var/lib/rancher/k3s/server/db/reset-flag").returncode == 0
    again = lab.run(first, f"/usr/local/bin/k3s server --cluster-reset --token {TOKEN} "
                           f"--node-ip {first.ip}", timeout=60)
    assert again.returncode == 1
    assert "Managed etcd cluster membership was previously reset" in again.stdout
    before = len(k3s_lines(lab, first))
    start(lab, first, f"--token {TOKEN}")
    found = wait_journal(lab, first, "Successfully registered node", before, 90)
    assert "Successfully registered node" in found, found
    assert lab.run(first, "test -e /var/lib/rancher/k3s/server/db/reset-flag").returncode == 1
    assert [m["name"] for m in members(lab, first)] == \
        [run(lab, first, "cat /var/lib/rancher/k3s/server/db/etcd/name")]
    code, out, _ = kubectl(lab, first, f"get node {first.hostname} --show-labels")
    assert code == 0 and "after=snapshot" not in out  # the state of the snapshot



def test_cluster_reset_without_a_snapshot_keeps_the_members_data(
        cluster: tuple[Lab, list[Host]]) -> None:
    """--cluster-reset alone: this member's own data, forced into a one-member cluster."""
    lab, hosts = cluster
    first = hosts[0]
    code, _, err = kubectl(lab, first, f"label --overwrite node {first.hostname} kept=yes")
    assert code == 0, err
    old_name = run(lab, first, "cat /var/lib/rancher/k3s/server/db/etcd/name")
    stop(lab, first)
    reset = lab.run(first, f"{ENV} /usr/local/bin/k3s server --cluster-reset --token {TOKEN} "
                           f"--node-ip {first.ip}", timeout=180)
    output = reset.stdout + reset.stderr
    assert reset.returncode == 0, output[-3000:]
    assert "Managed etcd cluster membership has been reset" in output
    assert "Pre-restore etcd database moved" not in output
    before = len(k3s_lines(lab, first))
    start(lab, first, f"--token {TOKEN}")
    found = wait_journal(lab, first, "Successfully registered node", before, 90)
    assert "Successfully registered node" in found, found
    new_name = run(lab, first, "cat /var/lib/rancher/k3s/server/db/etcd/name")
    assert new_name != old_name  # Reset gives the member a new name (setName(true))
    assert [m["name"] for m in members(lab, first)] == [new_name]
    code, out, _ = kubectl(lab, first, f"get node {first.hostname} --show-labels")
    assert code == 0 and "kept=yes" in out


def test_a_removal_etcd_refuses_is_dropped(cluster: tuple[Lab, list[Host]]) -> None:
    """member_controller.go sync: etcd refuses to remove the only voting member
    (ErrMemberNotEnoughStarted, etcd's strict reconfig check); K3s then clears the remove
    annotation, so the removal does not happen later by surprise. (With one of three members
    down etcd answers "unhealthy cluster" instead, which K3s retries.)"""
    lab, hosts = cluster
    first = hosts[0]
    assert len(members(lab, first)) == 1  # after the cluster resets above
    before = len(k3s_lines(lab, first))
    code, _, err = kubectl(lab, first, f"annotate node {first.hostname} "
                                       "etcd.k3s.cattle.io/remove=true")
    assert code == 0, err
    wait_until(lambda: any(
        "etcd member removal rejected, clearing remove annotation: etcdserver: "
        "re-configuration failed due to not enough started members" in line
        for line in k3s_lines(lab, first)[before:]), 60, "the refused removal was not logged")
    wait_until(lambda: "etcd.k3s.cattle.io/remove" not in kubectl(
        lab, first, f"get node {first.hostname} -o jsonpath='{{.metadata.annotations}}'")[1],
        30, "the remove annotation stayed")
    assert len(members(lab, first)) == 1
    code, _, err = kubectl(lab, first, f"label --overwrite node {first.hostname} still=writable")
    assert code == 0, err
