"""Put this directory first on a Python child's PYTHONPATH: with ALIYUN_EMULATOR_DNS set,
the child resolves NLB DNS names through the emulator's stand-in (sandbox/aliyun/nlb/resolve)."""

from sandbox.aliyun.nlb.resolve import install_from_env

install_from_env()
