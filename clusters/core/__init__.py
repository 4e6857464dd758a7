"""What every layer shares: the error types a step, an adapter or the pure K3s code raises
(`errors`), secret redaction (`redaction`), the encryption of secrets at rest (`crypto`,
used by the model field clusters.fields), step titles as message ids (`titles`), text made
safe to store (`storable`) and when a step's heartbeat is late (`heartbeat`).

May import: the standard library and third-party packages only, nothing else of the panel
(checked by .importlinter): that is what lets adapters and clusters.k3s use these without
depending on the engine.
"""
