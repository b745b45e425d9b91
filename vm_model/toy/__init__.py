"""A toy domain that trains on CPU, for proving the VideoMaker mechanism end to end.

``domain``: textured subjects moving over a plain background (captions name only the motion, so appearance can come
from the reference alone), written as a `vm train` manifest. ``metrics``: subject fidelity against the reference
and motion direction from OpenCV DIS flow. ``components``: the toy base model folder (tiny UNet, text encoder,
motion adapter, and a small VAE trained on the domain). ``benchmarks/toy_customization.py`` runs the experiment.
"""
