"""Imports every step handler module so their names are registered."""

from clusters.steps import datastore as datastore_check  # noqa: F401
