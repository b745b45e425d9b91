"""PISA against a literal per-frame implementation of the paper, and its install / ablation / checkpointing
behaviour, on a tiny UNetMotionModel in float32."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from model_helpers import tiny_motion_unet, unet_inputs
from vm_model.grad_checkpointing import disable_full_gradient_checkpointing, enable_full_gradient_checkpointing
from vm_model.pisa import (
    PISAAttnProcessor,
    PISAConfig,
    ReferenceCrossAttnProcessor,
    install_pisa,
    pisa_kwargs,
    spatial_self_attention_names,
    uninstall_pisa,
)
from vm_model.unet_call import unet_with_reference


class LiteralLoopPISA:
    """The paper, literally: for each sample and each generated frame i, self-attention over the tokens
    [frame i ; reference tokens] with the stock processor; the reference output is the mean of its F copies."""

    def __init__(self):
        self.stock = AttnProcessor2_0()

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 vm_num_frames=None, vm_num_references=0):
        if not vm_num_references:
            return self.stock(attn, hidden_states)
        total, refs = vm_num_frames, vm_num_references
        frames = total - refs
        batch = hidden_states.shape[0] // total
        n = hidden_states.shape[1]
        outputs = []
        for b in range(batch):
            rows = hidden_states[b * total:(b + 1) * total]
            ref_tokens = rows[frames:].reshape(1, refs * n, -1)
            video_out, ref_out = [], []
            for i in range(frames):
                x = torch.cat([rows[i:i + 1], ref_tokens], dim=1)
                y = self.stock(attn, x)
                video_out.append(y[:, :n])
                ref_out.append(y[:, n:])
            ref_mean = torch.stack(ref_out).mean(0).reshape(refs, n, -1)
            outputs.append(torch.cat([torch.cat(video_out), ref_mean]))
        return torch.cat(outputs)


def _install_loop(unet):
    procs = dict(unet.attn_processors)
    for name in spatial_self_attention_names(unet):
        procs[name] = LiteralLoopPISA()
    for name in procs:
        if name.endswith("attn2.processor") and "motion_modules" not in name:
            procs[name] = ReferenceCrossAttnProcessor()  # declares the kwargs; stock behaviour by default
    unet.set_attn_processor(procs)


@pytest.fixture(scope="module")
def unet():
    return tiny_motion_unet()


@pytest.mark.parametrize("refs", [1, 2])
def test_pisa_equals_literal_per_frame_loop(unet, refs):
    video, ref, text = unet_inputs(batch=2, frames=4, refs=refs)
    install_pisa(unet)
    with torch.no_grad():
        fast_v, fast_r = unet_with_reference(unet, video, ref, 500, text)
    _install_loop(unet)
    with torch.no_grad():
        slow_v, slow_r = unet_with_reference(unet, video, ref, 500, text)
    uninstall_pisa(unet)
    torch.testing.assert_close(fast_v, slow_v, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(fast_r, slow_r, atol=2e-5, rtol=1e-4)
    assert fast_v.shape == (2, 4, 4, 8, 8) and fast_r.shape == (2, 4, refs, 8, 8)


def test_reference_changes_the_video_only_through_pisa_when_installed(unet):
    """Sanity: with PISA the reference content affects the generated frames."""
    video, ref, text = unet_inputs()
    install_pisa(unet)
    with torch.no_grad():
        a, _ = unet_with_reference(unet, video, ref, 500, text)
        b, _ = unet_with_reference(unet, video, ref + 1.0, 500, text)
    uninstall_pisa(unet)
    assert (a - b).abs().max() > 1e-3


def test_without_references_pisa_equals_stock(unet):
    video, _, text = unet_inputs(refs=0)
    stock = tiny_motion_unet()
    with torch.no_grad():
        expected, _ = unet_with_reference(stock, video, None, 500, text)
        install_pisa(unet)
        got, _ = unet_with_reference(unet, video, None, 500, text)
        uninstall_pisa(unet)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_install_uninstall_restores_stock(unet):
    before = {k: type(v) for k, v in unet.attn_processors.items()}
    names = install_pisa(unet, PISAConfig(reference_in_cross_attention=False))
    assert len(names) == 4  # tiny UNet: 1 down + 1 mid + 2 up spatial transformers
    assert all(isinstance(unet.attn_processors[n], PISAAttnProcessor) for n in names)
    motion = {k: v for k, v in unet.attn_processors.items() if "motion_modules" in k}
    assert motion and all(type(v) is before[k] for k, v in motion.items())
    uninstall_pisa(unet)
    assert {k: type(v) for k, v in unet.attn_processors.items()} == before


def test_pisa_off_is_plain_attention_over_all_frames(unet):
    """Ablation 'PISA off': the reference is an extra frame; spatial attention is per frame (stock)."""
    video, ref, text = unet_inputs()
    stock = tiny_motion_unet()
    install_pisa(unet, PISAConfig(enabled=False))
    with torch.no_grad():
        got = unet(torch.cat([video, ref], 2), 500, encoder_hidden_states=text.repeat_interleave(5, 0),
                   cross_attention_kwargs=pisa_kwargs(5, 1)).sample
        expected = stock(torch.cat([video, ref], 2), 500, encoder_hidden_states=text.repeat_interleave(5, 0)).sample
    uninstall_pisa(unet)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_reference_kept_out_of_text_cross_attention():
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    attn = Attention(query_dim=16, cross_attention_dim=8, heads=2, dim_head=8).eval()
    hidden = torch.randn(2 * 3, 5, 16)  # batch 2, 2 frames + 1 reference
    text = torch.randn(2 * 3, 4, 8)
    proc = ReferenceCrossAttnProcessor(PISAConfig(reference_in_cross_attention=False))
    with torch.no_grad():
        out = proc(attn, hidden, text, vm_num_frames=3, vm_num_references=1).view(2, 3, 5, 16)
        stock = AttnProcessor2_0()(attn, hidden, text).view(2, 3, 5, 16)
    assert torch.all(out[:, 2] == 0)
    torch.testing.assert_close(out[:, :2], stock[:, :2])


@pytest.mark.parametrize("refs", [1, 2])
def test_lse_merge_equals_concat(unet, refs):
    video, ref, text = unet_inputs(refs=refs)
    with torch.no_grad():
        install_pisa(unet, PISAConfig(mode="concat"))
        a_v, a_r = unet_with_reference(unet, video, ref, 500, text)
        install_pisa(unet, PISAConfig(mode="lse"))
        b_v, b_r = unet_with_reference(unet, video, ref, 500, text)
    uninstall_pisa(unet)
    torch.testing.assert_close(a_v, b_v, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a_r, b_r, atol=1e-5, rtol=1e-4)


def test_lse_mode_refuses_training(unet):
    video, ref, text = unet_inputs()
    install_pisa(unet, PISAConfig(mode="lse"))
    try:
        with pytest.raises(RuntimeError, match="inference-only"):
            unet_with_reference(unet, video, ref, 500, text)
    finally:
        uninstall_pisa(unet)


def _grads(unet, video, ref, text):
    unet.zero_grad(set_to_none=True)
    v, r = unet_with_reference(unet, video, ref, 500, text)
    (v.square().mean() + 0.1 * r.square().mean()).backward()
    return {n.replace("._checkpoint_wrapped_module", ""): p.grad.clone()
            for n, p in unet.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_gives_the_same_gradients():
    unet = tiny_motion_unet().train()
    install_pisa(unet)
    video, ref, text = unet_inputs()
    plain = _grads(unet, video, ref, text)
    enable_full_gradient_checkpointing(unet)
    wrapped = sum("_checkpoint_wrapped_module" in n for n, _ in unet.named_parameters())
    assert wrapped > 0  # the motion modules are covered too
    ckpt = _grads(unet, video, ref, text)
    state_keys = set(unet.state_dict())
    disable_full_gradient_checkpointing(unet)
    assert state_keys == set(unet.state_dict())  # checkpointing never changes parameter names
    assert plain.keys() == ckpt.keys() and len(plain) > 50
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)


def test_too_many_frames_for_the_motion_modules(unet):
    video, ref, text = unet_inputs(batch=1, frames=32, refs=1)
    with pytest.raises(ValueError, match="maximum sequence length 32"):
        unet_with_reference(unet, video, ref, 500, text)


def test_missing_frame_count_is_a_clear_error(unet):
    install_pisa(unet)
    try:
        with pytest.raises(ValueError, match="vm_num_frames"):
            unet(torch.randn(1, 4, 3, 8, 8), 1, encoder_hidden_states=torch.randn(3, 7, 32),
                 cross_attention_kwargs={"vm_num_references": 1})
    finally:
        uninstall_pisa(unet)


@pytest.mark.parametrize("mode", ["concat", "lse"])
def test_pisa_calls_sdpa_with_4d_tensors(unet, monkeypatch, mode):
    """The fused SDPA kernels take 4-D input only; 5-D input silently falls back to the unfused math path."""
    import vm_model.pisa as pisa

    shapes = []
    real = pisa.F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        shapes.append(q.ndim)
        return real(q, k, v, **kw)

    monkeypatch.setattr(pisa.F, "scaled_dot_product_attention", spy)
    video, ref, text = unet_inputs()
    install_pisa(unet, PISAConfig(mode=mode))
    try:
        with torch.no_grad():
            unet_with_reference(unet, video, ref, 500, text)
    finally:
        uninstall_pisa(unet)
    assert shapes and set(shapes) == {4}


def test_attention_with_lse_fused_equals_unfused():
    from vm_model.pisa import _attention_with_lse, _attention_with_lse_unfused

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(6, 10, 8, generator=g) for _ in range(3))
    out, lse = _attention_with_lse(q, k, v, 0.35)
    ref_out, ref_lse = _attention_with_lse_unfused(q, k, v, 0.35, max_score_bytes=1)  # chunked one group at a time
    expected = torch.softmax(q @ k.transpose(1, 2) * 0.35, -1) @ v
    torch.testing.assert_close(ref_out, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(lse, ref_lse, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ref_lse, torch.logsumexp(q @ k.transpose(1, 2) * 0.35, -1), atol=1e-6, rtol=1e-6)
