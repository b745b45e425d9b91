"""Whole-generation measurements (``benchmarks/model_generation_cost.py``): random-weight components built offline,
a pipeline per execution setting, videos made through ``vm_model.protocol.render_videos``."""
