"""Offline emulator of the Alibaba Cloud RPC OpenAPI (ECS, VPC, SLB, RDS).

Why: the panel talks to Alibaba Cloud through the official, unmodified SDK; tests and demos
point that SDK at this emulator, which must be as strict as the real gateway (signatures,
nonces, versions, error shapes) and back its resources with real processes and sockets.
"""
