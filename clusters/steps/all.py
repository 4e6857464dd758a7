"""Imports every step handler module so their names are registered."""

from clusters.steps import (  # noqa: F401
    datastore,
    destroy,
    ecs,
    etcd,
    health,
    k3s,
    kubeconfig,
    network,
    nlb,
    node,
    preflight,
    rds,
    slb,
    upgrade,
    verify,
)
