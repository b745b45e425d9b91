"""Benchmarks: runnable scenarios on a shared harness (see ``benchmarks/README.md``).

Run a scenario from the repository root as a module, e.g. ``python -m benchmarks.model_pisa_cost --help``.
``benchmarks.harness`` holds what every scenario needs (device naming, timing, peak memory, FLOPs, isolated jobs,
provenance, result files, command line); ``benchmarks.pisa`` holds the PISA measurements two scenarios share.
"""
