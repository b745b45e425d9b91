"""torch.compile of the UNet with PISA installed (benchmarks/model_unet_compile.py) on the tiny configs: one graph,
no graph break, for both PISA computations, with the kwargs the pipeline passes."""

from __future__ import annotations

import pytest
import torch

from benchmarks import model_unet_compile
from benchmarks.pisa.model import apply_variant, build_unet


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["concat", "lse"])
def test_tiny_unet_with_pisa_compiles_without_graph_breaks(mode):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        unet = build_unet("tiny")
        apply_variant(unet, f"pisa_{mode}")
        args, kwargs = model_unet_compile._inputs(unet, "tiny", 4, 64, "cpu", torch.float32)
        assert kwargs == {"vm_num_frames": 5, "vm_num_references": 1}
        ex = model_unet_compile.explain_call(unet, args, kwargs)
    finally:
        torch.set_num_threads(threads)
    assert ex["graph_count"] == 1 and ex["graph_break_count"] == 0, ex["break_reasons"]
    assert ex["op_count"] > 0


@pytest.mark.slow
def test_a_varying_reference_weight_compiles_one_graph_per_weight():
    """Pins the documented limitation (docs/model.md, torch.compile with PISA): the reference weight is a Python
    float that PISA branches on, so each distinct weight is its own graph; a repeated weight reuses its graph."""
    from torch._dynamo.utils import counters

    from vm_model.pisa import pisa_kwargs

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        unet = build_unet("tiny")
        apply_variant(unet, "pisa_lse")
        args, _ = model_unet_compile._inputs(unet, "tiny", 4, 64, "cpu", torch.float32)
        torch._dynamo.reset()
        counters.clear()
        compiled = torch.compile(unet, backend="eager")
        graphs = []
        for w in (0.3, 0.6, 0.3):
            with torch.inference_mode():
                compiled(*args[:2], encoder_hidden_states=args[2], cross_attention_kwargs=pisa_kwargs(5, 1, w),
                         return_dict=False)
            graphs.append(int(counters["stats"]["unique_graphs"]))
    finally:
        torch.set_num_threads(threads)
        torch._dynamo.reset()
    assert graphs == [1, 2, 2]
