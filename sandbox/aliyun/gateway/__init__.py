"""The emulator's gateway: what every product shares and none owns.

HTTP server and control API (`server`, `control`), authentication and routing (`cloud`,
`signing`), parameter declarations and validation (`params`), the product registry
(`registry`), state on disk (`state`), the scaled clock (`clock`), faults, the call log,
paging, ids, XML, tags and the seeded network.

May import: the standard library and sandbox.netns. Never a product module (ecs, vpc, slb,
rds, bss): products register themselves here, the registry finds them by name.
"""
