"""NLB (Network Load Balancer, Nlb 2022-04-30): load balancers over two or more zones, server
groups, TCP listeners, asynchronous jobs, tags.

Why: the panel can put an NLB in front of the K3s API instead of a CLB. As for CLB, a Running
listener here is a real TCP proxy with real health checks (the proxy of l4proxy.py, one per
zone address), so "the cluster answers through the NLB's DNS name" is observed.

- `securitygroups`: LoadBalancerJoin/LeaveSecurityGroup (the listeners enforce the rules);
- `product`: the product, error answers, tables, lookups and jobs' bookkeeping;
- `loadbalancers`, `servergroups`, `listeners`, `tags`: the actions;
- `jobs`: the ticker that completes asynchronous jobs, and GetJobStatus;
- `runtime`: the proxies kept in line with the state, and the inventory;
- `dns`: the DNS stand-in that resolves each NLB's DNS name to its zone addresses;
- `resolve`: how the world's processes use it (lab hosts, Python, kubectl).

Importing this package registers every action (registry.PRODUCT_MODULES names it).
"""

from sandbox.aliyun.nlb import (  # noqa: F401
    dns,
    jobs,
    listeners,
    loadbalancers,
    runtime,
    securitygroups,
    servergroups,
    tags,
)
