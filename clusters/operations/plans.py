"""The step graphs of each operation: which steps a run has and what each waits for.

Why separate: the engine knows nothing of K3s; the steps know nothing of ordering. This module
is the one place that says "the SLB comes before K3s, so its address is in the certificate".
"""

from __future__ import annotations

from clusters.engine.pipeline import StepSpec
from clusters.models import Cluster, DatastoreKind, NodeRole


def create_plan(cluster: Cluster) -> list[StepSpec]:
    """Preflight, then RDS and SLB in parallel, then servers one at a time, then the rest."""
    servers = list(cluster.nodes.filter(role=NodeRole.SERVER).order_by("pk"))
    agents = list(cluster.nodes.filter(role=NodeRole.AGENT).order_by("pk"))
    specs = [
        StepSpec("preflight_cloud", "Check credentials, region, zone, VPC and vSwitch",
                 "preflight.cloud"),
        StepSpec("preflight_hosts", "Check every host over SSH", "preflight.hosts",
                 ["preflight_cloud"]),
    ]
    if cluster.datastore_kind == DatastoreKind.RDS:
        specs += [
            StepSpec("rds_create", "Create the RDS MySQL instance", "rds.create",
                     ["preflight_hosts"]),
            StepSpec("rds_configure", "Whitelist servers, create account and database, "
                     "fix parameters", "rds.configure", ["rds_create"]),
        ]
        datastore_ready = "rds_configure"
    else:
        datastore_ready = "preflight_hosts"
    specs += [
        StepSpec("datastore_check", "Prove the datastore accepts K3s's schema",
                 "datastore.check", [datastore_ready]),
        # Bought only once the datastore is proven: a bad DSN of the user's buys nothing.
        StepSpec("slb_create", "Create the SLB (its address goes into the certificate)",
                 "slb.create", ["datastore_check"]),
    ]
    previous = ["slb_create"]
    for index, server in enumerate(servers):
        key = f"server_{server.pk}"
        specs.append(StepSpec(key, f"Install K3s server {index + 1} ({server.private_ip})",
                              "k3s.install_server", previous, {"node_id": server.pk}))
        previous = [key]
    specs += [
        StepSpec("slb_listener", "Add servers to the SLB and start TCP 6443",
                 "slb.listener", previous),
        StepSpec("kubeconfig", "Fetch the kubeconfig and point it at the SLB",
                 "k3s.kubeconfig", ["slb_listener"]),
        StepSpec("verify", "Verify the API through the SLB as kubectl will", "verify.cluster",
                 ["kubeconfig"]),
    ]
    agent_keys = []
    for agent in agents:
        key = f"agent_{agent.pk}"
        agent_keys.append(key)
        specs.append(StepSpec(key, f"Install K3s agent ({agent.private_ip})",
                              "k3s.install_agent", ["verify"], {"node_id": agent.pk}))
    specs.append(StepSpec("health", "First health check", "health.check",
                          ["verify", *agent_keys]))
    return specs
