"""PISA measurements shared by the ``model_pisa_cost`` and ``model_train_memory`` scenarios.

* ``model``       the measured UNet (full SD1.5 + v1-5 motion adapter, or the tiny configs) and its inputs
* ``forward``     forward-call timings (interleaved variants) and peak memory, ratios to stock AnimateDiff
* ``train_step``  peak memory and time of one training step, with or without gradient checkpointing
* ``sdpa_probe``  the largest PISA attention call on 5-D vs 4-D tensors
* ``jobs``        the above as jobs for ``benchmarks.harness.jobs`` (each in a fresh process)
* ``targets``     the issue's targets judged on the figures, and plain-language notes on the outcome
* ``report``      the markdown of a ``model_pisa_cost`` result
"""
