"""Mutation testing of the project (``make mutation``, ``python -m mutation``): not part of ``make test``, it is
slow. Nothing imports it; it imports the harness only."""
