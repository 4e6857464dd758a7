"""Imports every step handler module so their names are registered."""

from clusters.steps import (  # noqa: F401
    datastore_check,
    destroy,
    health_check,
    k3s_install,
    kubeconfig,
    kubeconfig_renewal,
    node_removal,
    preflight_cloud,
    preflight_hosts,
    rds,
    slb,
    upgrade,
)
