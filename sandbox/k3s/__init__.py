"""K3s stand-in: artifact server, install script and a `k3s` program honouring K3s's contract.

See README.md in this directory for how the panel and tests use it.
"""
