"""Plumbing shared by vm_data, vm_model and vm_eval: logging, weights resolution, config, I/O, media, the `vm` command."""

__all__ = []
