"""Reliability figures: ``python -m benchmarks.stress`` (``make stress``); ``--help`` lists the scenarios.

Each scenario is a module ``benchmarks/stress/<name>.py`` with ``NAME: str``, ``run(smoke: bool) -> dict``
(its figures, among them ``goals``: a list of ``{"goal": str, "met": bool, "figure": str}``) and
``markdown(figures: dict) -> str``; ``__main__`` imports the ones asked for by name, runs them one after
another and writes each one's JSON and markdown like ``make bench`` does.
"""
