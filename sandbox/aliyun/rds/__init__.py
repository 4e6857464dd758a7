"""Emulated RDS for MySQL (2014-08-15), backed by a real MariaDB per instance.

`instances` holds the instance actions and imports the rest of the product: `product` (the
product, lookups), `rules` (names, passwords, privileges), `catalogue` and `offer` (what a
zone sells), `accounts`, `network` (connection strings, whitelist), `config` and `parameters`
(parameter templates and tasks), `usage` (DescribeResourceUsage), `runtime` (the MariaDB of
each instance), `gate` (the whitelist gate in front of it), `mysqld` (running mariadbd);
`price` is DescribePrice. registry.PRODUCT_MODULES names `instances` and `price`.

May import: sandbox.aliyun.gateway, sandbox.netns; not the other products.
"""
