"""VideoMakerPipeline on the tiny preset: official-release behaviour, reference inputs, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AnimateDiffPipeline
from PIL import Image

from vm_model.components import load_pipeline
from vm_model.pisa import PISAConfig
from vm_model.sources import ModelSources
from vm_model.pipeline import VideoMakerPipeline

CALL = dict(num_frames=3, num_inference_steps=2, output_type="np")


@pytest.fixture(scope="module")
def pipe():
    return load_pipeline(ModelSources(base_model="builtin:tiny", motion_adapter="builtin:tiny"), device="cpu")


def _ref_image(seed=0, size=64):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (size, size, 3), dtype=np.uint8)


def _run(pipe, **kw):
    kw = {**CALL, **kw}
    return pipe(generator=torch.Generator().manual_seed(0), **kw).frames


def test_without_reference_equals_stock_animatediff(pipe):
    stock = AnimateDiffPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                unet=pipe.unet, motion_adapter=pipe.motion_adapter, scheduler=pipe.scheduler)
    ours = _run(pipe, prompt="a cat", negative_prompt="blurry", guidance_scale=7.5)
    theirs = stock(prompt="a cat", negative_prompt="blurry", guidance_scale=7.5,
                   generator=torch.Generator().manual_seed(0), **CALL).frames
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_defaults_follow_the_official_release():
    import inspect

    sig = inspect.signature(VideoMakerPipeline.__call__).parameters
    assert sig["num_inference_steps"].default == 30
    assert sig["guidance_scale"].default == 8.0
    assert sig["num_frames"].default == 16


def test_guidance_branches_use_zero_reference_and_reference_is_last(pipe):
    seen = []
    hook = pipe.unet.register_forward_pre_hook(lambda m, args, kw: seen.append(args[0].clone()), with_kwargs=True)
    try:
        ref = torch.randn(1, 4, 1, 8, 8)
        _run(pipe, prompt="a dog", reference_latents=ref, guidance_scale=8.0)
    finally:
        hook.remove()
    sample = seen[0]
    assert sample.shape == (2, 4, 4, 8, 8)  # [uncond, cond] x (3 frames + 1 reference)
    assert torch.all(sample[0, :, 3] == 0)  # unconditional branch: all-zero reference latent
    torch.testing.assert_close(sample[1, :, 3], ref[0, :, 0])  # reference appended last, noise-free
    assert len(seen) == 2  # one batched UNet call per step


def test_reference_input_forms_agree(pipe, tmp_path):
    arr = _ref_image()
    path = tmp_path / "ref.png"
    Image.fromarray(arr).save(path)
    a = _run(pipe, prompt="a dog", reference_image=arr)
    b = _run(pipe, prompt="a dog", reference_image=Image.fromarray(arr))
    c = _run(pipe, prompt="a dog", reference_image=str(path))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    other = _run(pipe, prompt="a dog", reference_image=_ref_image(seed=1))
    assert np.abs(a - other).max() > 1e-4  # the reference reaches the video


def test_several_references_become_several_frames(pipe):
    seen = []
    hook = pipe.unet.register_forward_pre_hook(lambda m, args, kw: seen.append(args[0].shape), with_kwargs=True)
    try:
        _run(pipe, prompt="two photos", reference_image=[_ref_image(0), _ref_image(1)], guidance_scale=1.0)
    finally:
        hook.remove()
    assert seen[0] == (1, 4, 5, 8, 8)


def test_image_conversions(pipe, tmp_path):
    gray = Image.fromarray(_ref_image()[..., 0])
    rgba = Image.fromarray(np.dstack([_ref_image(), np.full((64, 64), 255, np.uint8)]))
    deep = Image.fromarray(_ref_image()[..., 0].astype(np.uint16) * 257)
    for image in (gray, rgba, deep):
        frames = _run(pipe, prompt="x", reference_image=image)
        assert image.mode in ("L", "RGBA", "I;16")
        assert frames.shape == (1, 3, 64, 64, 3) and np.isfinite(frames).all()
    # opaque RGBA == its RGB
    np.testing.assert_array_equal(_run(pipe, prompt="x", reference_image=rgba),
                                  _run(pipe, prompt="x", reference_image=_ref_image()))


@pytest.mark.parametrize("bad, match", [
    (dict(prompt="   "), "empty"),
    (dict(prompt="x", reference_image="/no/such/image.png"), "not found"),
    (dict(prompt="x", num_frames=40, reference_latents=torch.zeros(1, 4, 1, 8, 8)), "maximum sequence length"),
    (dict(prompt="x", reference_latents=torch.zeros(1, 4, 8, 8)), r"\(B, C, R, h, w\)"),
    (dict(prompt="x", reference_latents=torch.zeros(1, 4, 1, 16, 16)), "expected"),
])
def test_bad_input_is_a_clear_error(pipe, bad, match):
    with pytest.raises(ValueError, match=match):
        _run(pipe, **bad)


def test_unreadable_image(pipe, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="broken.png"):
        _run(pipe, prompt="x", reference_image=broken)


def test_built_from_a_2d_unet_and_motion_adapter(pipe):
    """Constructed like AnimateDiffPipeline: a UNet2DConditionModel plus a MotionAdapter become a UNetMotionModel
    with PISA installed."""
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from vm_model.pisa import PISAAttnProcessor
    from vm_model.tiny import tiny_motion_adapter_config, tiny_unet_config

    vm = VideoMakerPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                            unet=UNet2DConditionModel(**tiny_unet_config()),
                            motion_adapter=MotionAdapter(**tiny_motion_adapter_config()))
    assert isinstance(vm.unet, UNetMotionModel)
    assert sum(isinstance(p, PISAAttnProcessor) for p in vm.unet.attn_processors.values()) == 4
    assert vm.scheduler.config.timestep_spacing == "linspace" and vm.scheduler.config.steps_offset == 1
    frames = vm(prompt="x", reference_image=_ref_image(), generator=torch.Generator().manual_seed(0), **CALL).frames
    assert frames.shape == (1, 3, 64, 64, 3)


def test_a_reference_call_refuses_when_pisa_was_replaced(pipe):
    from vm_model.pisa import PISARemovedError

    ref = torch.zeros(1, 4, 1, 8, 8)
    pipe.unet.fuse_qkv_projections()
    try:
        with pytest.raises(PISARemovedError, match="FusedAttnProcessor2_0|AttnProcessor2_0"):
            pipe(prompt="x", reference_latents=ref, **CALL)
    finally:
        pipe.unet.unfuse_qkv_projections()
        pipe.set_pisa_config(pipe.pisa_config or PISAConfig())
    from diffusers.models.attention_processor import AttnProcessor2_0

    pipe.unet.set_attn_processor(AttnProcessor2_0())
    try:
        with pytest.raises(PISARemovedError, match="install_pisa"):
            pipe(prompt="x", reference_latents=ref, **CALL)
        pipe(prompt="x", **CALL)  # without a reference it is plain AnimateDiff: allowed
    finally:
        pipe.set_pisa_config(PISAConfig())
    pipe(prompt="x", reference_latents=ref, **CALL)  # reinstalled: works again


def test_ip_adapter_inputs_with_a_reference_are_refused(pipe):
    with pytest.raises(ValueError, match="IP-Adapter"):
        pipe(prompt="x", reference_latents=torch.zeros(1, 4, 1, 8, 8), ip_adapter_image_embeds=[torch.zeros(2, 1, 4)],
             **CALL)
