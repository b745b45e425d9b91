"""The official release's PISA layout (benchmarks/pisa/official.py) computes what vm_model.pisa computes."""

from __future__ import annotations

import torch

from benchmarks.pisa.official import install_official_layout
from vm_model.pisa import PISAConfig, install_pisa
from vm_model.unet_call import unet_with_reference

from model_helpers import tiny_motion_unet


def test_official_layout_equals_pisa_concat():
    unet = tiny_motion_unet()
    g = torch.Generator().manual_seed(0)
    video, ref = torch.randn(2, 4, 3, 8, 8, generator=g), torch.randn(2, 4, 1, 8, 8, generator=g)
    text = torch.randn(2, 7, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        install_pisa(unet, PISAConfig(mode="concat"))
        ours = unet_with_reference(unet, video, ref, 500, text)
        install_official_layout(unet)
        official = unet_with_reference(unet, video, ref, 500, text)
    for a, b in zip(ours, official):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
