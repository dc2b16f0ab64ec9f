"""N serving containers of the CPU image behind HAProxy on this machine, with podman.

Each replica is published on its own 127.0.0.1 port and serves the model file of its own host folder,
mounted at /models (so a rollout is replacing that file, replica by replica: the service hot-swaps it, or
refuses it and keeps its model). HAProxy balances one loopback port over those ports, health-checking
``/readyz``. ``python -m cifar10_pipeline.deploy.replicas --help`` (``make serve-replicas``).
"""
