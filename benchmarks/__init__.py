"""Benchmarks: measured figures for the orchestrator against its targets and the alternatives.

Run everything with ``python -m benchmarks`` from a source checkout, one case
with ``--case NAME``, a smoke run with ``--quick``. Each figure is the median
of repeated runs with their min and max; results go to a table on stdout and
to JSON (``benchmarks/results/latest.json`` by default). See
``docs/performance.md`` for the latest figures and how to read them.
"""
