"""Fast checks of the embedded-etcd pieces that need no etcd: names, listing, cron, flags."""

from __future__ import annotations

import base64
import datetime
import json
import os
import ssl
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
import yaml

from sandbox.k3s import etcdnodes, snapshots
from sandbox.k3s.config import load
from sandbox.k3s.etcd import (
    ETCD_ROLE_LABEL,
    NODE_ADDRESS_ANNOTATION,
    NODE_NAME_ANNOTATION,
    REMOVE_ANNOTATION,
    REMOVED_NODE_NAME_ANNOTATION,
    EtcdPaths,
    Member,
    _prefix_end,
    go_list,
)
from sandbox.k3s.kine import DatastoreError
from sandbox.k3s.logs import Fatal
from sandbox.k3s.nodes import NODE_PREFIX
from sandbox.k3s.server import Server
from sandbox.k3s.versions import release
from tests.support.kube_api import live_kube_api
from tests.support.memory_kine import MemoryKine


def _server(tmp_path: Path, argv: list[str]) -> Server:
    config = tmp_path / "config.yaml"
    config.write_text("")
    settings = load("server", ["--data-dir", str(tmp_path), *argv],
                    environ={"K3S_CONFIG_FILE": str(config)})
    return Server(settings, release("v1.33.1+k3s1"))


def test_datastore_choice_follows_assign_managed_driver(tmp_path: Path) -> None:
    """k3s pkg/cluster/managed.go assignManagedDriver."""
    assert _server(tmp_path, ["--cluster-init"]).embedded_etcd()
    assert _server(tmp_path, ["--server", "https://10.0.0.1:6443", "--token", "t"]).embedded_etcd()
    # --cluster-init with an external datastore: no error, the datastore wins.
    assert not _server(tmp_path, ["--cluster-init", "--datastore-endpoint",
                                  "mysql://u:p@tcp(db:3306)/k3s"]).embedded_etcd()
    # A server URL without a token is no managed etcd (K3s: SQLite).
    assert not _server(tmp_path, ["--server", "https://10.0.0.1:6443"]).embedded_etcd()
    # Once a WAL is on disk, etcd whatever the flags say.
    os.makedirs(EtcdPaths(str(tmp_path)).wal_dir)
    assert _server(tmp_path, []).embedded_etcd()


def test_cluster_init_from_env_and_config(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("")
    settings = load("server", [], environ={"K3S_CLUSTER_INIT": "true",
                                           "K3S_CONFIG_FILE": str(tmp_path / "c.yaml")})
    assert settings.bool("cluster-init")
    (tmp_path / "c.yaml").write_text("cluster-init: true\netcd-snapshot-retention: 7\n")
    settings = load("server", [], environ={"K3S_CONFIG_FILE": str(tmp_path / "c.yaml")})
    assert settings.bool("cluster-init")
    assert settings.text("etcd-snapshot-retention") == "7"
    assert settings.text("etcd-snapshot-schedule-cron") == "0 */12 * * *"
    snapshot_cli = load("etcd-snapshot", ["--name", "x", "--snapshot-retention", "3"],
                        environ={"K3S_CONFIG_FILE": str(tmp_path / "c.yaml")})
    assert snapshot_cli.text("etcd-snapshot-name") == "x"
    assert snapshot_cli.text("etcd-snapshot-retention") == "3"


def test_paths_are_k3s_paths() -> None:
    paths = EtcdPaths("/var/lib/rancher/k3s")
    assert paths.db_dir == "/var/lib/rancher/k3s/server/db/etcd"
    assert paths.snapshot_dir == "/var/lib/rancher/k3s/server/db/snapshots"
    assert paths.reset_file == "/var/lib/rancher/k3s/server/db/reset-flag"
    assert paths.tls("client.crt") == "/var/lib/rancher/k3s/server/tls/etcd/client.crt"


def test_prefix_end_and_go_lists() -> None:
    assert _prefix_end("/registry/") == "L3JlZ2lzdHJ5MA=="  # "/registry0"
    assert go_list(["a=https://1:2380", "b=https://2:2380"]) == \
        "[a=https://1:2380 b=https://2:2380]"


def _item(name: str, size: int, created: str) -> dict:
    return {"spec": {"snapshotName": name,
                     "location": f"file:///var/lib/rancher/k3s/server/db/snapshots/{name}"},
            "status": {"size": str(size), "creationTime": created}}


def test_ls_table_is_go_tabwriter_sorted_by_creation() -> None:
    """pkg/cli/etcdsnapshot: tabwriter(0, 0, 1, ' ', 0), sorted by time, then name."""
    listed = {"items": [_item("on-demand-n1-1700000100", 2437152, "2023-11-14T22:15:00Z"),
                        _item("etcd-snapshot-n1-1700000000", 123, "2023-11-14T22:13:20Z")]}
    location = "file:///var/lib/rancher/k3s/server/db/snapshots/"
    # Each column is as wide as its widest cell plus one space; the last is not padded.
    assert snapshots.table(listed).splitlines() == [
        "Name" + " " * 24 + "Location" + " " * 68 + "Size    Created",
        f"etcd-snapshot-n1-1700000000 {location}etcd-snapshot-n1-1700000000 123     "
        "2023-11-14T22:13:20Z",
        f"on-demand-n1-1700000100     {location}on-demand-n1-1700000100     2437152 "
        "2023-11-14T22:15:00Z"]


def test_retention_keeps_the_newest_of_one_prefix(tmp_path: Path) -> None:
    for stamp in (100, 300, 200):
        (tmp_path / f"etcd-snapshot-n1-{stamp}").write_bytes(b"x")
    (tmp_path / "on-demand-n1-50").write_bytes(b"x")
    settings = snapshots.SnapshotSettings(str(tmp_path), retention=2)
    assert snapshots.retention(settings, "etcd-snapshot") == ["etcd-snapshot-n1-100"]
    assert sorted(os.listdir(tmp_path)) == ["etcd-snapshot-n1-200", "etcd-snapshot-n1-300",
                                            "on-demand-n1-50"]
    listed = snapshots.listing(settings, "n1")
    assert [i["status"]["creationTime"] for i in listed["items"]] == [
        "1970-01-01T00:03:20Z", "1970-01-01T00:05:00Z", "1970-01-01T00:00:50Z"]


def test_cron_schedules() -> None:
    every_minute = snapshots.Cron("* * * * *")
    now = datetime.datetime(2026, 12, 1, 19, 0, 30, tzinfo=datetime.UTC)
    assert every_minute.seconds_until_next(now) == 30
    twice_a_day = snapshots.Cron("0 */12 * * *")
    assert twice_a_day.seconds_until_next(now) == 5 * 3600 - 30
    assert snapshots.Cron("5,10 1-2 * * 1-5").matches(
        datetime.datetime(2026, 11, 30, 2, 10, tzinfo=datetime.UTC))  # a Monday
    with pytest.raises(ValueError, match="expected exactly 5 fields"):
        snapshots.Cron("* * * *")
    with pytest.raises(ValueError, match="above maximum"):
        snapshots.Cron("61 * * * *")


def test_cron_is_robfig_v3() -> None:
    """robfig/cron v3 parser.go getRange/parseIntOrName and spec.go bounds/dayMatches."""
    monday_1st = datetime.datetime(2026, 6, 1, 0, 0, tzinfo=datetime.UTC)   # a Monday, 1 June
    friday_13th = datetime.datetime(2026, 11, 13, 0, 0, tzinfo=datetime.UTC)
    tuesday_2nd = datetime.datetime(2026, 6, 2, 0, 0, tzinfo=datetime.UTC)
    # Both day fields restricted: either one matching runs (crontab(5) OR).
    either = snapshots.Cron("0 0 13 * 1")
    assert either.matches(monday_1st) and either.matches(friday_13th)
    assert not either.matches(tuesday_2nd)
    # One of them "*": both must match (AND), "*" matching every day.
    assert not snapshots.Cron("0 0 13 * *").matches(monday_1st)
    # "*/2" is a restriction (step > 1 drops the star bit): OR again.
    assert snapshots.Cron("0 0 */2 * mon").matches(monday_1st)          # day 1 = */2 too
    assert snapshots.Cron("0 0 */2 * fri").matches(datetime.datetime(
        2026, 6, 5, 0, 0, tzinfo=datetime.UTC))                           # Friday 5th (odd)
    # Names, any case, also in ranges.
    assert snapshots.Cron("0 0 * JUN Mon-fri").matches(monday_1st)
    assert not snapshots.Cron("0 0 * jan-may *").matches(monday_1st)
    assert snapshots.Cron("@daily").matches(monday_1st)
    # "N/step" means N-max/step.
    assert snapshots.Cron("30/15 * * * *").matches(monday_1st.replace(minute=45))
    assert not snapshots.Cron("30/15 * * * *").matches(monday_1st.replace(minute=15))
    for spec, message in [("0 0 * * 7", r"end of range \(7\) above maximum \(6\): 7"),
                          ("0 0 0 * *", r"beginning of range \(0\) below minimum \(1\): 0"),
                          ("0 0 * * 5-2", r"beginning of range \(5\) beyond end of range \(2\)"),
                          ("0 0 * * sunday", "failed to parse int from sunday"),
                          ("*/0 * * * *", "step of range should be a positive number"),
                          ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
                          ("@fortnightly", "unrecognized descriptor")]:
        with pytest.raises(ValueError, match=message):
            snapshots.Cron(spec)


def _etcd_node(annotations: dict[str, str]) -> dict:
    return {"metadata": {"name": "s2", "labels": {ETCD_ROLE_LABEL: "true"},
                         "annotations": annotations}, "status": {}}


def test_a_rejoined_member_can_be_removed_again(tmp_path: Path) -> None:
    """member_controller.go sync: removed-node-name differing from the current member name
    (the server rejoined as a new member) clears both removal annotations."""
    store = MemoryKine()
    member = Member(EtcdPaths(str(tmp_path)), "s1", "10.0.0.1")
    store.create(NODE_PREFIX + "s2", json.dumps(_etcd_node({
        REMOVE_ANNOTATION: "true", REMOVED_NODE_NAME_ANNOTATION: "s2-aaaaaaaa",
        NODE_NAME_ANNOTATION: "s2-bbbbbbbb", NODE_ADDRESS_ANNOTATION: "10.0.0.2"})).encode())
    etcdnodes.reconcile(member, store)  # type: ignore[arg-type]
    row = store.get(NODE_PREFIX + "s2")
    assert row is not None
    assert json.loads(row.value)["metadata"]["annotations"] == {
        NODE_NAME_ANNOTATION: "s2-bbbbbbbb", NODE_ADDRESS_ANNOTATION: "10.0.0.2"}
    # The same name: already removed, nothing changes.
    store.update(NODE_PREFIX + "s2", json.dumps(_etcd_node({
        REMOVE_ANNOTATION: "true", REMOVED_NODE_NAME_ANNOTATION: "s2-bbbbbbbb",
        NODE_NAME_ANNOTATION: "s2-bbbbbbbb", NODE_ADDRESS_ANNOTATION: "10.0.0.2"})).encode(),
        row.id)
    etcdnodes.reconcile(member, store)  # type: ignore[arg-type]
    again = store.get(NODE_PREFIX + "s2")
    assert again is not None
    assert REMOVED_NODE_NAME_ANNOTATION in json.loads(again.value)["metadata"]["annotations"]


def test_snapshot_dir_only_the_default_is_created(tmp_path: Path) -> None:
    """pkg/etcd/snapshot.go snapshotDir: a non-default --etcd-snapshot-dir must exist."""
    default = str(tmp_path / "server" / "db" / "snapshots")
    assert snapshots.snapshot_dir(snapshots.SnapshotSettings(default, 5, default)) == default
    assert os.path.isdir(default)
    mine = str(tmp_path / "backups")
    with pytest.raises(DatastoreError, match=f"failed to get etcd-snapshot-dir: stat {mine}: "
                       "no such file or directory"):
        snapshots.snapshot_dir(snapshots.SnapshotSettings(mine, 5, default))
    assert not os.path.exists(mine)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DatastoreError, match="is not a directory"):
        snapshots.snapshot_dir(snapshots.SnapshotSettings(str(tmp_path / "afile"), 5, default))


def test_compressed_snapshot_is_k3s_zip(tmp_path: Path) -> None:
    """compressSnapshot: <name>.zip, one deflated entry <name>, the plain file removed; the
    listing reads the time from the name without .zip."""
    name = "on-demand-n1-1700000000"
    (tmp_path / name).write_bytes(b"etcd snapshot bytes" * 100)
    moment = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC)
    path = snapshots.compress(str(tmp_path), name, moment)
    assert path == str(tmp_path / f"{name}.zip")
    assert os.listdir(tmp_path) == [f"{name}.zip"]
    with zipfile.ZipFile(path) as archive:
        [entry] = archive.infolist()
        assert entry.filename == name
        assert entry.compress_type == zipfile.ZIP_DEFLATED
        assert archive.read(name) == b"etcd snapshot bytes" * 100
    listed = snapshots.listing(snapshots.SnapshotSettings(str(tmp_path)), "n1")
    assert [(i["spec"]["snapshotName"], i["status"]["creationTime"]) for i in listed["items"]] \
        == [(f"{name}.zip", "2023-11-14T22:13:20Z")]


def test_joining_a_kine_backed_server_is_refused_as_k3s(tmp_path: Path) -> None:
    """pkg/server/router.go bootstrapHandler: a server without embedded etcd answers
    /v1-k3s/server-bootstrap 400 "etcd disabled"; the joiner stops on that answer."""
    with live_kube_api(tmp_path) as api:
        url = yaml.safe_load(api.kubeconfig)["clusters"][0]["cluster"]["server"]
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(f"{url}/v1-k3s/server-bootstrap", headers={  # noqa: S310
            "Authorization": "Basic " + base64.b64encode(b"server:s").decode()})
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, context=context, timeout=10)  # noqa: S310
        assert answer.value.code == 400
        body = json.loads(answer.value.read())
        assert (body["reason"], body["message"]) == ("BadRequest", "etcd disabled")
        (tmp_path / "joiner").mkdir()
        joiner = _server(tmp_path / "joiner", ["--server", url, "--token", "s"])
        with pytest.raises(Fatal) as fatal:
            joiner._http_bootstrap(url, "s")
        assert str(fatal.value) == (f"starting kubernetes: preparing server: {url}"
                                    "/v1-k3s/server-bootstrap: 400 Bad Request")


def test_the_member_list_comes_only_from_the_tokens_ca(tmp_path: Path) -> None:
    """clientaccess.ParseAndValidateToken: with a K10 token the joiner checks /cacerts against
    the token's CA hash before it asks /db/info (not only for the bootstrap data), in the join
    loop ETCD.Start runs."""
    with live_kube_api(tmp_path) as api:
        url = yaml.safe_load(api.kubeconfig)["clusters"][0]["cluster"]["server"]
        (tmp_path / "joiner").mkdir()
        token = "K10" + "0" * 64 + "::server:s"
        joiner = _server(tmp_path / "joiner", ["--server", url, "--token", token])
        with pytest.raises(Fatal, match=r"token CA hash does not match the Cluster CA "
                                        r"certificate hash: 0{64} != [0-9a-f]{64}"):
            joiner._join(Member(EtcdPaths(str(tmp_path / "joiner")), "joiner", "127.0.0.1"),
                         url, token)
