"""Pure K3s knowledge the provisioning steps use: no SSH, no Django, no network.

Modules: `versions` (parse/compare/upgrade path/kine DDL), `dsn` (datastore endpoint),
`config` (config.yaml), `install` (install command line), `kubeconfig` (rewrite for the LB),
`diagnosis` (journal lines → plain explanations), `forensics` (the read-only commands run on a
failed host and their bounded, redacted report).
"""

from clusters.k3s.config import (
    CONFIG_PATH,
    ClusterSettings,
    NodeIdentity,
    render_server_config,
    server_config,
)
from clusters.k3s.diagnosis import Diagnosis, diagnose, explain
from clusters.k3s.dsn import DatastoreEndpointError, MySQLEndpoint, build_endpoint, parse_endpoint
from clusters.k3s.install import InstallSource, install_command, install_env, start_command
from clusters.k3s.kubeconfig import Kubeconfig, api_url, rewrite_kubeconfig
from clusters.k3s.versions import (
    K3sVersion,
    KineSchema,
    is_channel,
    kine_ddl,
    kine_schema,
    parse_version,
    upgrade_problem,
)

__all__ = [
    "CONFIG_PATH", "ClusterSettings", "DatastoreEndpointError", "Diagnosis", "InstallSource",
    "K3sVersion", "KineSchema", "Kubeconfig", "MySQLEndpoint", "NodeIdentity", "api_url",
    "build_endpoint", "diagnose", "explain", "install_command", "install_env", "is_channel",
    "kine_ddl", "kine_schema", "parse_endpoint", "parse_version", "render_server_config",
    "rewrite_kubeconfig", "server_config", "start_command", "upgrade_problem",
]
