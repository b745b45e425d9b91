"""The parts of `vm train` that each do one job, used by :mod:`vm_model.train`:

- :mod:`.run_log`: the run's ``losses.jsonl``, exactly once across kill and ``--resume``.
- :mod:`.trackers`: ``--report-to`` (TensorBoard / Weights & Biases through accelerate) and the step metrics.
- :mod:`.ema`: an exponential moving average of the trainable weights, saved and resumed with the checkpoints.
- :mod:`.lora`: LoRA (peft) on the trainable set, its small safetensors file, loading and merging.
- :mod:`.validation`: validation videos every N steps, written as GIFs and scored with vm_eval.
- :mod:`.files`: tensors + JSON metadata to a safetensors file, atomically.
- :mod:`.conditioning`: a batch -> text embeddings, video and reference latents, encoded on the fly or read from
  a latent cache (`--latent-cache`, :mod:`vm_model.latent_cache`).
"""
