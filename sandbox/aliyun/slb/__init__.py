"""SLB (Classic Load Balancer) 2014-05-15: load balancers, TCP listeners, backends, tags.

Why: the panel puts an SLB in front of the K3s API (TCP 6443). A started listener here is a
real TCP proxy with real health checks (../l4proxy.py), so "the cluster answers through the
SLB" and "a dead server turns abnormal" are observed, not asserted by the emulator.

- `product`: the product, its limits and error answers, shared lookups;
- `loadbalancers`, `listeners`, `backends`, `tags`, `acls`: the actions, one module per
  resource (`acls`: access control lists, which the proxy enforces on each source address);
- `runtime`: the real proxies kept in line with the state (the TCP proxy itself is
  sandbox/aliyun/l4proxy.py, shared with NLB).

Importing this package registers every action (registry.PRODUCT_MODULES names it).
"""

from sandbox.aliyun.slb import (  # noqa: F401
    acls,
    backends,
    listeners,
    loadbalancers,
    runtime,
    tags,
)
