"""A toy domain that trains on CPU, for proving the VideoMaker mechanism end to end, and the toy model it ships.

``domain``: textured subjects moving over a plain background (captions name only the motion, so appearance can come
from the reference alone), written as a `vm train` manifest; held-out subjects by index. ``metrics``: subject
fidelity against the reference (``assignment``: exact optimal assignment in numpy) and motion direction from
OpenCV DIS flow. ``components``: the toy base model folder (built by :mod:`vm_model.tiny`'s builders; a small VAE
trained on the domain). ``export`` / ``shipped``: the trained toy VideoMaker that ships in ``weights/``
(``builtin:toy``, ``--preset toy``). ``benchmarks/toy_customization.py`` runs the experiment.
"""
