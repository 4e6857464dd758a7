"""Imports every step handler module so their names are registered."""

from clusters.steps import (  # noqa: F401
    datastore_check,
    health_check,
    k3s_install,
    kubeconfig,
    preflight_cloud,
    preflight_hosts,
    rds,
    slb,
)
