"""The shared benchmark harness: one module per job, imported by the scenarios in ``benchmarks/``.

* ``device``      device naming (the ``cpu-intel-xeon-processor-1t`` tag of result file names), sync, dtypes
* ``timing``      median, one timed call, side-by-side (interleaved) measurement of several calls
* ``memory``      peak memory above a baseline (CUDA allocator / tensor bytes / resident set), memory guard
* ``flops``       FLOP counting (with PyTorch's CPU flash-attention kernel) and attention-backend recording
* ``jobs``        a measurement run in a fresh process (so that memory peaks do not pollute each other)
* ``provenance``  what produced a result, built on ``vm_common.provenance``
* ``results``     writing a result as JSON + rendered markdown, and small markdown helpers
* ``cli``         argparse and logging boilerplate of a scenario
"""
