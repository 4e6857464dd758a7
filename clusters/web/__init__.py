"""The web layer: the browser's pages, views (thin), page read-models and display helpers.

- `views`: dashboard, cluster page, run status and logs, kubeconfig, cloud accounts;
  `node_views`, `upgrade_views`, `wizard_views`: the actions of those pages; `token_views`:
  the user's API tokens; `urls`; `actions`: what every "start an operation" button does
  (refusal, audit, message, redirect).
- `cluster_page`: what the cluster page shows; `display`: formats; `ratelimit`.

The forms, the wizard's saved state, the owner lookups and the audit trail are shared with
the REST API and live in clusters.interface. May import everything below it:
clusters.interface, clusters.operations (to start anything), the adapters (live checks,
prices), clusters.k3s, clusters.core, clusters.models. Never clusters.api, its sibling;
nothing imports the web layer except clusters.templatetags and panel.urls (checked by
.importlinter).
"""
