"""What the two front doors share, the browser's pages (clusters.web) and the REST API
(clusters.api): one set of rules for both.

- `forms`: every form a person (or a script) fills in, one module per page: the wizard's six
  steps, the cloud account, the dashboard filter, the day-2 forms (add a node, upgrade). Every
  rule that can be checked before money is spent is checked there, with its message next to
  the field; the API shows the same messages keyed by the same fields.
- `wizard`: the wizard's saved state (any mapping: the session, or one API request's answers)
  and the Cluster it becomes; `cluster_spec`: a whole cluster's answers checked at once, step
  by step through the wizard's own forms (what the API's create does); `review`: the review
  page's checks (answers that no longer fit, a saved instance order checked against the
  zone again), what it lists with prices, and Create; `host_rows`: the hosts page's rows
  (add, remove, pick from the VPC's list).
- `queries`: owned objects (the one owner lookup: another user's things are 404) and run
  snapshots; `audit`: writing the audit trail from a request.

Why a package of its own: the API is the web layer's sibling and must not import it, and a
rule copied into both would drift. May import clusters.operations, the adapters, clusters.k3s,
clusters.core and clusters.models; never clusters.web or clusters.api (.importlinter).
"""
