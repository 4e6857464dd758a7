"""The REST API under /api/v1/ (Django REST framework; OpenAPI 3 by drf-spectacular).

- `auth`: `Authorization: Bearer <token>` (tokens of clusters.interface.tokens); the
  browser's session works too, with CSRF. `permissions`: a read-only token starts nothing.
  `throttling`: a request budget per token. `pagination`, `errors`: one page shape and one
  error shape for every endpoint.
- `serializers`: what the API answers (never a secret) and the request shapes the schema
  documents; `views`: thin, like the pages' views: owner lookups and the forms of
  clusters.interface, operations started through clusters.operations and audited with
  clusters.interface.audit, exactly as the browser's buttons do. `urls`.

The web layer's sibling: may import clusters.interface, clusters.operations, the adapters
(live choices), clusters.k3s, clusters.core and clusters.models; never clusters.web, and
nothing below imports it (.importlinter).
"""
