"""Imports every step handler module so their names are registered."""

from clusters.steps import (  # noqa: F401
    datastore,
    destroy,
    health,
    k3s,
    kubeconfig,
    kubeconfig_renewal,
    node,
    preflight_cloud,
    preflight_hosts,
    rds,
    slb,
    upgrade,
)
