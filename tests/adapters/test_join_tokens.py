"""Join tokens: agents get their own token, joining nodes the secure form that pins the CA."""

from __future__ import annotations

import pytest
import yaml

from clusters.adapters import clusterconfig
from clusters.core.errors import PermanentError
from clusters.k3s import ClusterSettings, render_server_config
from clusters.k3s.tokens import parse_token, secure_token, verified_ca_hash
from clusters.k3s.uninstall import belongs_to
from clusters.models import Cluster, ClusterStatus
from clusters.operations.create import start_create
from sandbox.k3s import bootstrap
from tests.support.factories import make_cluster

CA = "ab" * 32


def test_secure_token_reads_back_as_k3s_and_the_stand_in_read_it() -> None:
    token = secure_token(CA, "node", "agent-secret")
    assert token == f"K10{CA}::node:agent-secret"
    parsed = parse_token(token)
    assert (parsed.ca_hash, parsed.username, parsed.password) == (CA, "node", "agent-secret")
    assert bootstrap.token_ca_hash(token) == CA
    assert bootstrap.normalize_token(token) == "agent-secret"
    assert parse_token("short-secret").password == "short-secret"
    assert not parse_token("short-secret").secure
    with pytest.raises(PermanentError, match="64 hex"):
        parse_token("K10abc::server:x")


def test_the_agent_token_is_in_every_server_config() -> None:
    dsn = "mysql://k:p@tcp(h:3306)/k"
    settings = ClusterSettings(token="server-secret", agent_token="agent-secret",
                               datastore_endpoint=dsn, tls_sans=("1.2.3.4",))
    assert yaml.safe_load(render_server_config(settings))["agent-token"] == "agent-secret"
    legacy = ClusterSettings(token="server-secret", datastore_endpoint=dsn, tls_sans=("1.2.3.4",))
    assert "agent-token" not in yaml.safe_load(render_server_config(legacy))
    assert "agent-secret" not in repr(settings)


def test_the_ca_hash_is_read_only_from_this_clusters_token_files() -> None:
    server_file = f"K10{CA}::server:server-secret"
    agent_file = f"K10{CA}::node:agent-secret"
    assert verified_ca_hash(server_file, agent_file, server_password="server-secret",
                            agent_password="agent-secret") == CA
    # Without an agent token K3s links agent-token to token.
    assert verified_ca_hash(server_file, server_file, server_password="server-secret") == CA
    with pytest.raises(PermanentError, match="another cluster"):
        verified_ca_hash(server_file, agent_file, server_password="other",
                         agent_password="agent-secret")
    with pytest.raises(PermanentError, match="without the agent-token"):
        verified_ca_hash(server_file, server_file, server_password="server-secret",
                         agent_password="agent-secret")
    with pytest.raises(PermanentError, match="secure server token"):
        verified_ca_hash("server-secret", agent_file, server_password="server-secret")


@pytest.mark.django_db
def test_joining_nodes_get_the_secure_forms_and_agents_the_node_token() -> None:
    cluster = make_cluster(k3s_token="server-secret", k3s_agent_token="agent-secret")
    assert clusterconfig.server_join_token(cluster) == "server-secret"  # the first server
    with pytest.raises(PermanentError, match="CA hash is not known"):
        clusterconfig.agent_join_token(cluster)
    cluster.k3s_ca_hash = CA
    assert clusterconfig.server_join_token(cluster) == f"K10{CA}::server:server-secret"
    assert clusterconfig.agent_join_token(cluster) == f"K10{CA}::node:agent-secret"


@pytest.mark.django_db
def test_a_cluster_made_before_agent_tokens_keeps_the_server_token_but_secure() -> None:
    cluster = make_cluster(k3s_token="server-secret", k3s_ca_hash=CA)
    assert cluster.k3s_agent_token == ""
    assert clusterconfig.agent_join_token(cluster) == f"K10{CA}::server:server-secret"


@pytest.mark.django_db
def test_create_gives_a_draft_an_agent_token_but_never_a_failed_create() -> None:
    # In this tier the test's transaction never commits: the runs start, nothing is sent.
    draft = make_cluster(k3s_token="")
    failed = make_cluster(k3s_token="server-secret", status=ClusterStatus.FAILED)
    start_create(draft)
    start_create(failed)
    draft, failed = (Cluster.objects.get(pk=c.pk) for c in (draft, failed))
    assert draft.k3s_token and draft.k3s_agent_token and draft.k3s_agent_token != draft.k3s_token
    assert failed.k3s_agent_token == ""  # its servers may already run without one
    assert draft.k3s_agent_token in draft.secret_values()


def test_a_host_holding_either_token_in_either_form_is_ours() -> None:
    tokens = ("server-secret", "agent-secret")
    for token in ("server-secret", f"K10{CA}::server:server-secret",
                  f"K10{CA}::node:agent-secret"):
        assert belongs_to(yaml.safe_dump({"token": token}), tokens)
    assert not belongs_to(yaml.safe_dump({"token": f"K10{CA}::node:other"}), tokens)
    assert not belongs_to("token: [", tokens)
    assert not belongs_to(yaml.safe_dump({"token": "x"}), ("", ""))
