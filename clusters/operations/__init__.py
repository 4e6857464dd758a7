"""What a user can ask of a cluster, one module per operation, each holding its rules and its
step graph: `create`, `destroy`, `allowlist` (the API's allowed sources), `nodes` (add,
remove), `upgrade`, `kubeconfig` (renewal), `kube_credentials` (personal, revocable
kubeconfigs: ServiceAccount tokens, no run),
`health` (the health checks as Celery tasks), `diagnostics` (reading a failed run's hosts
on request, a Celery task too), `host_keys` (accepting a node's new SSH key, no run); `runs`
is what they share (the refusal, the one-run-at-a-time lock, cancel, a finished run's
cluster status); `retries` says when a stopped run may resume (asking each kind's own rules
again) and resumes it; `node_intake` checks and saves new hosts.

Views, the admin and the wizard call only what this package exports (`operations.start_*`,
`retry`, `retry_refusal`, `cancel`, `request_health_check`). May import: clusters.engine (to
create runs),
clusters.adapters, clusters.k3s, clusters.core, clusters.models; never clusters.steps or
clusters.web (checked by .importlinter).
"""

from clusters.adapters.instance_order import bought_instance_ids
from clusters.operations.allowlist import start_allowlist_change
from clusters.operations.create import start_create
from clusters.operations.destroy import (
    confirm_problem,
    holds_generated_key,
    keep_instances_problem,
    start_destroy,
    take_generated_key,
)
from clusters.operations.diagnostics import Collection, start_diagnostics
from clusters.operations.health import (
    request_health_check,
    request_snapshot_refresh,
    snapshot_refresh_refusal,
)
from clusters.operations.host_keys import accept_host_key, host_key_refusal
from clusters.operations.kube_credentials import audit_details as kube_credential_details
from clusters.operations.kube_credentials import issue as issue_kube_credential
from clusters.operations.kube_credentials import issue_refusal as kube_credential_refusal
from clusters.operations.kube_credentials import revoke as revoke_kube_credential
from clusters.operations.kubeconfig import start_kubeconfig_renewal
from clusters.operations.nodes import (
    billed_summary,
    etcd_even_warning,
    etcd_quorum_problem,
    ha_warning,
    instance_removal_note,
    instances_refusal,
    keep_instance_problem,
    not_bought_problem,
    removal_details,
    removal_warning,
    servers_left_after,
    start_add_instances,
    start_add_nodes,
    start_remove_node,
)
from clusters.operations.retries import retry, retry_refusal
from clusters.operations.runs import (
    OperationRefused,
    active_run,
    cancel,
    diagnosing,
    on_run_finished,
)
from clusters.operations.upgrade import start_upgrade

__all__ = [
    "Collection",
    "OperationRefused",
    "accept_host_key",
    "active_run",
    "billed_summary",
    "bought_instance_ids",
    "cancel",
    "confirm_problem",
    "diagnosing",
    "etcd_even_warning",
    "etcd_quorum_problem",
    "ha_warning",
    "holds_generated_key",
    "host_key_refusal",
    "instance_removal_note",
    "instances_refusal",
    "issue_kube_credential",
    "keep_instance_problem",
    "keep_instances_problem",
    "kube_credential_details",
    "kube_credential_refusal",
    "not_bought_problem",
    "on_run_finished",
    "removal_details",
    "removal_warning",
    "request_health_check",
    "request_snapshot_refresh",
    "retry",
    "retry_refusal",
    "revoke_kube_credential",
    "servers_left_after",
    "snapshot_refresh_refusal",
    "start_add_instances",
    "start_add_nodes",
    "start_allowlist_change",
    "start_create",
    "start_destroy",
    "start_diagnostics",
    "start_kubeconfig_renewal",
    "start_remove_node",
    "start_upgrade",
    "take_generated_key",
]
