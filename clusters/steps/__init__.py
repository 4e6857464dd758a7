"""Step handlers only, one module per handler prefix: `slb.detach` lives in `steps/slb.py`.

`all` imports every module so their names are registered (settings.PANEL_STEP_MODULES).
`rolling` holds what the server-by-server handlers (upgrade, kubeconfig renewal) share.

May import: clusters.engine (the registry, StepContext, outcomes), clusters.adapters,
clusters.k3s, clusters.core, clusters.models. Never the operations or web (checked by
.importlinter).
"""
