"""Presets: named sets of defaults that every command applies the same way (see ``vm_common.config``).

- ``full``: the paper's models and protocol (real weights, by Hugging Face id or local path).
- ``tiny``: small random components built offline, for tests and for trying the tool on a CPU; anything made with
  them is labelled ``random_weights: true``.
- ``toy``: the small trained toy VideoMaker that ships in the package (``builtin:toy``: 32x32 clips of 4 frames of
  a coloured shape moving left / right / up / down; ``docs/toy_customization.md``), with the protocol it was
  evaluated with; it runs on a CPU in seconds and shows the method working (``vm bench run --benchmark toy``).

A preset is nested like the configs that embed :class:`~vm_model.sources.ModelSources` (``sources``) and
:class:`~vm_model.protocol.GenerationProtocol` (``generation``); commands add their own keys with
:func:`presets_for`.
"""

from __future__ import annotations

from typing import Any

TINY_SOURCES = {"base_model": "builtin:tiny", "motion_adapter": "builtin:tiny", "vae": None,
                "videomaker_weights": None}
# 128 px is the smallest size every metric accepts (the dynamic-degree flow needs at least 128).
TINY_PROTOCOL = {"num_frames": 8, "height": 128, "width": 128, "steps": 2}

TOY_SOURCES = {"base_model": "builtin:toy", "motion_adapter": "builtin:toy", "vae": None,
               "videomaker_weights": "builtin:toy"}
# what the toy experiment evaluates with (benchmarks/toy_customization.py: ToyConfig; recorded in toy.json)
TOY_PROTOCOL = {"num_frames": 4, "height": 32, "width": 32, "steps": 25, "guidance_scale": 4.0,
                "negative_prompt": "none", "fps": 4.0}

PRESETS: dict[str, dict[str, Any]] = {
    "full": {},
    "tiny": {"sources": TINY_SOURCES, "generation": TINY_PROTOCOL},
    "toy": {"sources": TOY_SOURCES, "generation": TOY_PROTOCOL},
}
PRESET_HELP = ("full: the paper's models and protocol; tiny: small random components (CPU, tests); toy: the shipped "
               "toy VideoMaker (CPU, trained)")


def presets_for(command_extras: dict[str, dict[str, Any]] | None = None, *, keys: tuple[str, ...] = ("sources",
                                                                                                     "generation")
                ) -> dict[str, dict[str, Any]]:
    """The presets restricted to the sections a command's config has (``keys``), plus its own extras per preset."""
    out: dict[str, dict[str, Any]] = {}
    for name, sections in PRESETS.items():
        merged = {k: v for k, v in sections.items() if k in keys}
        merged.update((command_extras or {}).get(name, {}))
        out[name] = merged
    return out
