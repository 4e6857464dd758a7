"""The web layer: views (thin), forms, the wizard's state, page read-models and display helpers.

- `views`: dashboard, cluster page, run status and logs, kubeconfig, cloud accounts;
  `node_views`, `upgrade_views`, `wizard_views`: the actions of those pages; `urls`;
  `actions`: what every "start an operation" button does (refusal, audit, message, redirect).
- `cluster_page`: what the cluster page shows and the forms it carries; `queries`: owned
  objects (the one owner lookup) and run snapshots; `display`: formats; `forms`, `wizard`: the
  wizard's forms and saved state; `audit`: writing the audit trail from a request.

May import everything below it: clusters.operations (to start anything), the adapters (live
checks, prices), clusters.k3s, clusters.core, clusters.models. Nothing imports the web layer
except clusters.templatetags and panel.urls (checked by .importlinter).
"""
