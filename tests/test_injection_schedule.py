"""The reference-injection schedule (PISA's reference weight w per denoising step) and separate text / reference
guidance: the exact ends (w = 1 is today's PISA bit for bit, w = 0 each frame's stock attention), the weighted
definition against a literal loop, both PISA modes, several references, the per-step schedule in the pipeline, the
separate guidance formula against explicit branch calls, and spec parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from PIL import Image
from skimage import data

from model_helpers import tiny_motion_unet, unet_inputs
from vm_model.injection import parse_injection_schedule, schedule_weights
from vm_model.pisa import (
    PISAAttnProcessor,
    PISAConfig,
    PISARemovedError,
    ReferenceCrossAttnProcessor,
    check_pisa_installed,
    install_pisa,
    pisa_kwargs,
    spatial_self_attention_names,
    uninstall_pisa,
)
from vm_model.unet_call import unet_with_reference

FRAMES, TOKENS, DIM = 3, 6, 16


# ------------------------------------------------------------------------------------------------ spec parsing
@pytest.mark.parametrize("spec, steps, expected", [
    ("constant", 5, [1, 1, 1, 1, 1]),
    ("customcrafter:0.5", 5, [0, 0, 1, 1, 1]),  # positions 0, .25, .5, .75, 1
    ("customcrafter", 6, [0, 0, 1, 1, 1, 1]),  # default F = 0.4: positions 0, .2, .4, ...
    ("linear", 5, [0, 0.25, 0.5, 0.75, 1]),
    ("linear:0.25:0.75", 5, [0, 0, 0.5, 1, 1]),
    ("0:0,0.4:1", 11, [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]),
    ("0:0.5,0.5:0,0.9:1", 11, [.5, .5, .5, .5, .5, 0, 0, 0, 0, 1, 1]),
    ("0:0", 3, [0, 0, 0]),
    ("constant", 1, [1]),
    ("linear", 1, [0]),
])
def test_schedule_weights(spec, steps, expected):
    assert parse_injection_schedule(spec).weights(steps) == pytest.approx(expected)


@pytest.mark.parametrize("spec, message", [
    ("0.1:0", "first point must be at position 0"),
    ("0:0,0:1", "positions must increase"),
    ("0:2", "weight must be in"),
    ("0:nan", "weight must be in"),
    ("sometimes", "not POSITION:WEIGHT"),
    ("linear:0.6:0.2", "ramp end B must be after"),
    ("linear:0.2", "linear:A:B"),
    ("customcrafter:x", "not a number"),
    ("constant:1", "takes no arguments"),
    ("", "non-empty"),
])
def test_bad_specs_are_refused_with_the_reason(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_injection_schedule(spec)


def test_constant_schedules_take_the_paper_path():
    assert schedule_weights("constant", 30) is None
    assert schedule_weights("customcrafter:0", 30) is None
    assert schedule_weights([1.0, 1.0], 2) is None
    assert schedule_weights(None, 30) is None
    assert schedule_weights("0:0,0.5:1", 3) == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="3 weights for 2"):
        schedule_weights([0.0, 1.0, 1.0], 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        schedule_weights([0.0, 1.5], 2)


def test_protocol_validates_the_new_fields_naming_the_option():
    from vm_model.protocol import GenerationProtocol, beyond_paper_kwargs

    with pytest.raises(ValueError, match="--injection-schedule"):
        GenerationProtocol(injection_schedule="0.2:1")
    with pytest.raises(ValueError, match="--reference-guidance-scale"):
        GenerationProtocol(reference_guidance_scale=-1.0)
    assert beyond_paper_kwargs(GenerationProtocol()) == {}
    assert beyond_paper_kwargs(GenerationProtocol(injection_schedule="customcrafter", reference_guidance_scale=2.0)) \
        == {"injection_schedule": "customcrafter", "reference_guidance_scale": 2.0}


def test_flags_of_vm_generate_and_bench_run(capsys):
    import argparse

    from vm_common.config import add_dataclass_arguments, build_config
    from vm_model.generate import GenerateConfig

    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, GenerateConfig)
    text = parser.format_help()
    assert "--injection-schedule" in text and "--reference-guidance-scale" in text
    cfg = build_config(GenerateConfig, parser.parse_args(["--injection-schedule", "0:0,0.4:1",
                                                          "--reference-guidance-scale", "2"]))
    assert cfg.generation.injection_schedule == "0:0,0.4:1" and cfg.generation.reference_guidance_scale == 2.0
    with pytest.raises(ValueError, match="injection-schedule"):
        build_config(GenerateConfig, parser.parse_args(["--injection-schedule", "0:0,0.4:7"]))


# ---------------------------------------------------------------------------------------- the processor itself
@pytest.fixture(scope="module")
def attn():
    torch.manual_seed(0)
    return Attention(query_dim=DIM, heads=2, dim_head=8).eval()


def _hidden(refs: int, batch: int = 2, seed: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch * (FRAMES + refs), TOKENS, DIM, generator=g)


def _literal_weighted(attn, hidden, refs: int, weight: float) -> torch.Tensor:
    """The definition, literally: for each generated frame i, attention over [frame i ; references] where every
    logit between tokens of different frames is shifted by log w; the references' output is the mean of the copies."""
    total, n = FRAMES + refs, TOKENS
    heads, d = attn.heads, DIM // attn.heads
    frame_of = torch.arange(1 + refs).repeat_interleave(n)
    bias = torch.where(frame_of[:, None] == frame_of[None, :], 0.0, math.log(weight))
    outs = []
    for b in range(hidden.shape[0] // total):
        rows = hidden[b * total:(b + 1) * total]
        ref_tokens = rows[FRAMES:].reshape(refs * n, DIM)
        video, ref_copies = [], []
        for i in range(FRAMES):
            x = torch.cat([rows[i], ref_tokens])
            q, k, v = (p(x).view(-1, heads, d).transpose(0, 1) for p in (attn.to_q, attn.to_k, attn.to_v))
            probs = torch.softmax(q @ k.transpose(1, 2) * attn.scale + bias, dim=-1)
            y = attn.to_out[0]((probs @ v).transpose(0, 1).reshape(-1, DIM))
            video.append(y[:n])
            ref_copies.append(y[n:])
        outs.append(torch.cat([torch.stack(video), torch.stack(ref_copies).mean(0).view(refs, n, DIM)]))
    return torch.cat(outs)


@pytest.mark.parametrize("mode", ["concat", "lse"])
@pytest.mark.parametrize("refs", [1, 2])
def test_weight_one_is_todays_pisa_bit_for_bit(attn, mode, refs):
    proc, hidden = PISAAttnProcessor(PISAConfig(mode=mode)), _hidden(refs)
    with torch.no_grad():
        today = proc(attn, hidden, vm_num_frames=FRAMES + refs, vm_num_references=refs)
        one = proc(attn, hidden, **pisa_kwargs(FRAMES + refs, refs, 1.0))
    assert "vm_reference_weight" not in pisa_kwargs(FRAMES + refs, refs, 1.0)
    torch.testing.assert_close(one, today, atol=0, rtol=0)


@pytest.mark.parametrize("mode", ["concat", "lse"])
@pytest.mark.parametrize("refs", [1, 2])
def test_weight_zero_is_each_frames_stock_attention(attn, mode, refs):
    proc, hidden = PISAAttnProcessor(PISAConfig(mode=mode)), _hidden(refs)
    stock = AttnProcessor2_0()
    with torch.no_grad():
        got = proc(attn, hidden, **pisa_kwargs(FRAMES + refs, refs, 0.0))
        per_frame = torch.cat([stock(attn, hidden[j:j + 1]) for j in range(hidden.shape[0])])
        batched = stock(attn, hidden)
    torch.testing.assert_close(got, batched, atol=0, rtol=0)
    torch.testing.assert_close(got, per_frame, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", ["concat", "lse"])
@pytest.mark.parametrize("refs", [1, 2])
@pytest.mark.parametrize("weight", [0.3, 1e-3])
def test_weighted_pisa_equals_the_literal_definition(attn, mode, refs, weight):
    proc, hidden = PISAAttnProcessor(PISAConfig(mode=mode)), _hidden(refs)
    with torch.no_grad():
        got = proc(attn, hidden, **pisa_kwargs(FRAMES + refs, refs, weight))
        expected = _literal_weighted(attn, hidden, refs, weight)
    torch.testing.assert_close(got, expected, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", ["concat", "lse"])
def test_weight_zero_is_the_limit_of_small_weights(attn, mode):
    """Exclusion at w = 0 is continuous with the log-w shift (no -inf arithmetic, no jump)."""
    proc, hidden = PISAAttnProcessor(PISAConfig(mode=mode)), _hidden(2)
    with torch.no_grad():
        zero = proc(attn, hidden, **pisa_kwargs(FRAMES + 2, 2, 0.0))
        tiny = proc(attn, hidden, **pisa_kwargs(FRAMES + 2, 2, 1e-9))
        small = proc(attn, hidden, **pisa_kwargs(FRAMES + 2, 2, 0.3))
    torch.testing.assert_close(tiny, zero, atol=1e-6, rtol=1e-5)
    assert (small - zero).abs().max() > 1e-3


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan"), float("inf")])
def test_weight_outside_0_1_is_refused(weight):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pisa_kwargs(5, 1, weight)


def test_cross_attention_processor_declares_the_weight():
    """diffusers hands attn1's kwargs to attn2 as well and drops undeclared ones; ours declares it and ignores it."""
    torch.manual_seed(0)
    attn2 = Attention(query_dim=DIM, cross_attention_dim=8, heads=2, dim_head=8).eval()
    hidden, text = _hidden(1), torch.randn(2 * (FRAMES + 1), 4, 8)
    proc = ReferenceCrossAttnProcessor()
    with torch.no_grad():
        a = proc(attn2, hidden, text, **pisa_kwargs(FRAMES + 1, 1, 0.25))
        b = proc(attn2, hidden, text, **pisa_kwargs(FRAMES + 1, 1))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------- the whole tiny UNet
@pytest.fixture(scope="module")
def unet():
    return tiny_motion_unet()


@pytest.mark.parametrize("mode", ["concat", "lse"])
@pytest.mark.parametrize("refs", [1, 2])
def test_unet_ends_of_the_weight(unet, mode, refs):
    video, ref, text = unet_inputs(refs=refs)
    stock = tiny_motion_unet()  # diffusers' processors everywhere: each frame attends over its own tokens
    install_pisa(unet, PISAConfig(mode=mode))
    try:
        with torch.no_grad():
            today = unet_with_reference(unet, video, ref, 500, text)
            one = unet_with_reference(unet, video, ref, 500, text, reference_weight=1.0)
            zero = unet_with_reference(unet, video, ref, 500, text, reference_weight=0.0)
            half = unet_with_reference(unet, video, ref, 500, text, reference_weight=0.5)
            plain = stock(torch.cat([video, ref], 2), 500,
                          encoder_hidden_states=text.repeat_interleave(4 + refs, 0)).sample
    finally:
        uninstall_pisa(unet)
    for a, b in zip(one, today):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(torch.cat(zero, 2), plain, atol=0, rtol=0)
    assert (half[0] - today[0]).abs().max() > 1e-4 and (half[0] - zero[0]).abs().max() > 1e-4


def test_weighted_call_refuses_processors_that_would_drop_the_weight(unet):
    class FramesOnly(AttnProcessor2_0):  # knows the frame counts, not the weight
        def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                     vm_num_frames=None, vm_num_references=0):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)

    install_pisa(unet)
    procs = dict(unet.attn_processors)
    for name in spatial_self_attention_names(unet):
        procs[name] = FramesOnly()
    unet.set_attn_processor(procs)
    try:
        check_pisa_installed(unet)  # fine without a weight
        with pytest.raises(PISARemovedError, match="vm_reference_weight"):
            check_pisa_installed(unet, weighted=True)
        video, ref, text = unet_inputs()
        with pytest.raises(PISARemovedError):
            unet_with_reference(unet, video, ref, 500, text, reference_weight=0.5)
    finally:
        uninstall_pisa(unet)


# ------------------------------------------------------------------------------------------------- pipeline
@pytest.fixture(scope="module")
def pipe():
    from vm_model.components import load_pipeline
    from vm_model.sources import ModelSources

    pipe = load_pipeline(ModelSources(base_model="builtin:tiny", motion_adapter="builtin:tiny"), device="cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def reference(pipe):
    return pipe.prepare_reference_latents(Image.fromarray(data.chelsea()), 64, 64, "cpu", torch.float32)


def _latents(pipe, reference, steps=3, **kwargs):
    return pipe(prompt="A cat.", negative_prompt="blurry", reference_latents=reference, num_frames=2, height=64,
                width=64, num_inference_steps=steps, guidance_scale=kwargs.pop("guidance_scale", 6.0),
                generator=torch.Generator().manual_seed(0), output_type="latent", **kwargs).frames


def test_pipeline_defaults_are_the_paper_bit_for_bit(pipe, reference):
    today = _latents(pipe, reference)
    torch.testing.assert_close(_latents(pipe, reference, injection_schedule="constant"), today, atol=0, rtol=0)
    torch.testing.assert_close(_latents(pipe, reference, injection_schedule=[1.0, 1.0, 1.0],
                                        reference_guidance_scale=None), today, atol=0, rtol=0)


def test_pipeline_weight_zero_everywhere_is_stock_spatial_attention(pipe, reference):
    off = _latents(pipe, reference, injection_schedule="0:0")
    pipe.set_pisa_config(PISAConfig(enabled=False))  # every spatial processor runs stock attention per frame
    try:
        stock = _latents(pipe, reference)
    finally:
        pipe.set_pisa_config(PISAConfig())
    torch.testing.assert_close(off, stock, atol=0, rtol=0)
    assert (off - _latents(pipe, reference)).abs().max() > 1e-4


def test_pipeline_passes_one_weight_per_step(pipe, reference, monkeypatch):
    import vm_model.pipeline as pipeline_module

    seen = []
    real = pipeline_module.unet_with_reference

    def spy(*args, **kwargs):
        seen.append(kwargs.get("reference_weight"))
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_module, "unet_with_reference", spy)
    _latents(pipe, reference, steps=5, injection_schedule="customcrafter:0.5")
    assert seen == [0.0, 0.0, 1.0, 1.0, 1.0]
    seen.clear()
    _latents(pipe, reference, steps=3, injection_schedule="linear")
    assert seen == [0.0, 0.5, 1.0]


def test_pipeline_refuses_the_controls_without_a_reference(pipe):
    with pytest.raises(ValueError, match="act on a reference"):
        pipe(prompt="A cat.", num_frames=2, height=64, width=64, num_inference_steps=2,
             injection_schedule="customcrafter", output_type="latent")
    with pytest.raises(ValueError, match="act on a reference"):
        pipe(prompt="A cat.", num_frames=2, height=64, width=64, num_inference_steps=2,
             reference_guidance_scale=2.0, output_type="latent")


def test_separate_guidance_is_the_formula_over_explicit_branch_calls(pipe, reference, monkeypatch):
    """One step: the guided prediction equals s_text (eps(text, ref) - eps(neg, ref)) + s_ref (eps(neg, ref) -
    eps(neg, zero ref)) + eps(neg, zero ref), each branch computed alone."""
    import vm_model.pipeline as pipeline_module

    captured = {}
    real_combine = pipeline_module.combine

    def spy(prediction, guidance_scale, reference_guidance_scale):
        out = real_combine(prediction, guidance_scale, reference_guidance_scale)
        captured.setdefault("guided", out)
        return out

    real_unet = pipeline_module.unet_with_reference

    def spy_unet(unet, model_input, ref, t, text, added, **kwargs):
        captured.setdefault("inputs", (model_input.clone(), ref.clone(), t, text.clone()))
        return real_unet(unet, model_input, ref, t, text, added, **kwargs)

    monkeypatch.setattr(pipeline_module, "combine", spy)
    monkeypatch.setattr(pipeline_module, "unet_with_reference", spy_unet)
    s_text, s_ref = 5.0, 1.5
    _latents(pipe, reference, steps=1, guidance_scale=s_text, reference_guidance_scale=s_ref)
    model_input, ref, t, text = captured["inputs"]
    x = model_input[:1]
    neg, pos = text[:1], text[2:]
    zero = torch.zeros_like(reference)
    assert torch.equal(ref[:1], zero) and torch.equal(ref[1:2], reference) and torch.equal(ref[2:], reference)
    assert torch.equal(text[0], text[1]) and not torch.equal(text[1], text[2])
    with torch.no_grad():
        eps_u = unet_with_reference(pipe.unet, x, zero, t, neg)[0]
        eps_ur = unet_with_reference(pipe.unet, x, reference, t, neg)[0]
        eps_tr = unet_with_reference(pipe.unet, x, reference, t, pos)[0]
    expected = eps_u + s_text * (eps_tr - eps_ur) + s_ref * (eps_ur - eps_u)
    torch.testing.assert_close(captured["guided"], expected, atol=1e-4, rtol=1e-4)


def test_equal_scales_telescope_to_the_paper_guidance(pipe, reference):
    paper = _latents(pipe, reference, guidance_scale=6.0)
    separate = _latents(pipe, reference, guidance_scale=6.0, reference_guidance_scale=6.0)
    torch.testing.assert_close(separate, paper, atol=1e-4, rtol=1e-4)
    different = _latents(pipe, reference, guidance_scale=6.0, reference_guidance_scale=1.0)
    assert (different - paper).abs().max() > 1e-3


def test_render_video_passes_the_controls(pipe, reference):
    from vm_model.protocol import GenerationProtocol, render_video

    protocol = GenerationProtocol(num_frames=2, height=64, width=64, steps=3, negative_prompt="none", seeds=[3],
                                  injection_schedule="0:0,0.5:1", reference_guidance_scale=2.0)
    video = render_video(pipe, protocol, "A cat.", reference, 3)
    direct = pipe(prompt="A cat.", reference_latents=reference, num_frames=2, height=64, width=64,
                  num_inference_steps=3, guidance_scale=8.0, generator=torch.Generator("cpu").manual_seed(3),
                  output_type="np", injection_schedule="0:0,0.5:1", reference_guidance_scale=2.0).frames[0]
    np.testing.assert_array_equal(video, direct)


def test_report_shows_the_controls_of_each_run():
    from pathlib import Path

    from vm_eval.html_report import render_html
    from vm_eval.report import aggregate

    meta = {"_dir": "runs/x", "benchmark": "toy", "generation": {
        "guidance_scale": 4.0, "reference_guidance_scale": 2.0, "injection_schedule": "customcrafter"}}
    html = render_html([], aggregate([]), Path("."), run_meta=[meta])
    assert "injection_schedule: customcrafter" in html and "reference_guidance_scale: 2.0" in html
