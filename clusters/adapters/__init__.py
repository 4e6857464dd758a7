"""The outside world, one module per thing the panel talks to.

- `aliyun/`: Alibaba Cloud through the official SDK (ECS/VPC, SLB, RDS, BSS prices);
  `cloud`: an account's client and the purchase ledger (CloudResource, ClientTokens);
  `purchase`: buying for a ledger row again and again (adopt by tag, else create; token
  generations);
  `pricing`: the price quote of a new cluster.
- `ssh`, `nodes`: SSH sessions and commands on a node; `hostcleanup`: finding and removing
  this cluster's K3s on a host; `forensics`: reading a failed host's diagnostics into a log.
- `health`: the one judgment of how a cluster is doing, read through the adapters below (the
  create run's last step and the periodic check share it; starting a check is
  clusters.operations.health).
- `datastore`, `datastore_health`: MySQL checks and kine's measurements; `kubeapi`: the
  Kubernetes API; `clusterconfig`: the K3s configuration and API client of a stored cluster;
  `k3s_release`: K3s releases and channels; `credentials`: generated names and secrets;
  `wizard_checks`: the live checks the wizard makes while a person types.

May import: clusters.k3s, clusters.core, clusters.models. Never the engine, steps, operations
or web (checked by .importlinter); helpers that take a step's context name
clusters.engine.stepcontext.StepContext in type hints only (under TYPE_CHECKING).
"""
