"""Reliability scenarios with pass/fail goals: the service fuzzed, soaked and hot-swapped under load; training and
tuning killed with ``kill -9`` and resumed. ``python -m reliability`` (``make stress``); ``--help`` lists them.

Each scenario is a module of this package with ``NAME: str``, ``run(smoke: bool) -> dict`` (its figures, among
them ``goals``: a list of ``{"goal": str, "met": bool, "figure": str}``) and ``markdown(figures: dict) -> str``;
``__main__.SCENARIOS`` names them. It lives beside ``src/`` and is not installed: run it from the repository root.
It imports the project and ``harness``, never ``benchmarks`` or ``tests``.
"""
