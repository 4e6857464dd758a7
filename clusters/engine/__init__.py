"""The step engine: runs a graph of steps on Celery, one claimed step at a time.

- `pipeline`: create a run, advance it, claim and execute a step, retry, cancel, the sweeper
  that reclaims expired leases; and the Celery tasks that call these (their names, such as
  "clusters.advance_run", are fixed: queued messages and the beat schedule name them).
- `registry`: step handlers by name (`@step_handler("slb.create")`), loaded from
  settings.PANEL_STEP_MODULES.
- `stepcontext`, `steplog`, `outcomes`: what a handler is given, where it writes, what it
  returns (Done, Wait, Fail, Skip).
- `polling`: how long a waiting step waits before its next look (the asked interval, growing
  while its answer stays the same).

May import: clusters.models, clusters.core. Not the handlers (clusters.steps, found through
the registry by name), not the operations, adapters or web (checked by .importlinter).
"""
