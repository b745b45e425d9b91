"""Plumbing shared by vm_data, vm_model and vm_eval: logging, weights resolution, config, I/O, media, the `vm` command,
the default device (``devices``), processes / work split / shard names of sharded runs (``distributed``) and the
status words written into rows (``status``)."""

__all__ = []
