"""ID routing on PISA (vm_model.routing): parity with today's PISA when off / absent, the routed attention against a
literal per-token computation, hard routing, the routing loss targets, and the router's trip through weights files."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers.models.attention_processor import Attention

from model_helpers import tiny_motion_unet, unet_inputs, randomize_routers
from vm_model.pisa import PISAAttnProcessor, PISAConfig, install_pisa, uninstall_pisa
from vm_model.routing import (
    IGNORE,
    ROUTER_ATTR,
    ReferenceRouter,
    RoutingControl,
    add_routers,
    has_routers,
    remove_routers,
    routing_loss,
    routing_targets,
)
from vm_model.unet_call import unet_with_reference


@pytest.fixture(scope="module")
def unet():
    return tiny_motion_unet()


@pytest.mark.parametrize("mode", ["concat", "lse"])
def test_one_reference_without_router_or_with_routing_off_is_todays_pisa_bit_for_bit(unet, mode):
    video, ref, text = unet_inputs(refs=1)
    install_pisa(unet, PISAConfig(mode=mode))
    try:
        with torch.no_grad():
            today_v, today_r = unet_with_reference(unet, video, ref, 500, text)
            # no router: a routing control changes nothing
            soft_v, soft_r = unet_with_reference(unet, video, ref, 500, text, routing=RoutingControl("soft"))
            add_routers(unet)
            randomize_routers(unet)
            off_v, off_r = unet_with_reference(unet, video, ref, 500, text, routing=RoutingControl("off"))
            routed_v, _ = unet_with_reference(unet, video, ref, 500, text)
    finally:
        remove_routers(unet)
        uninstall_pisa(unet)
    for a, b in ((soft_v, today_v), (soft_r, today_r), (off_v, today_v), (off_r, today_r)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.allclose(routed_v, today_v)  # a (random) router does act


def _literal_routed(attn, hidden, frames, refs, router, hard=False):
    """Per generated token: softmax over [own frame keys ; reference r keys + log p_r] with the layer's projections."""
    total = frames + refs
    batch, n = hidden.shape[0] // total, hidden.shape[1]
    x = hidden.view(batch, total, n, -1)
    lp = router(x[:, :frames], x[:, frames:])  # (B, F, N, R+1)
    h = attn.heads
    outs = []
    for b in range(batch):
        for i in range(frames):
            seq = torch.cat([x[b, i], x[b, frames:].reshape(refs * n, -1)])
            q = attn.to_q(x[b, i]).view(n, h, -1).transpose(0, 1)
            k = attn.to_k(seq).view(seq.shape[0], h, -1).transpose(0, 1)
            v = attn.to_v(seq).view(seq.shape[0], h, -1).transpose(0, 1)
            logits = q @ k.transpose(1, 2) * attn.scale  # (h, N, N + RN)
            for r in range(refs):
                add = lp[b, i, :, r]
                if hard:
                    add = torch.where(lp[b, i].argmax(-1) == r, 0.0, float("-inf"))
                logits[:, :, n * (1 + r):n * (2 + r)] += add[None, :, None]
            o = (logits.softmax(-1) @ v).transpose(0, 1).reshape(n, -1)
            outs.append(attn.to_out[0](o))
    return torch.stack(outs).view(batch, frames, n, -1)


@pytest.mark.parametrize("mode", ["concat", "lse"])
@pytest.mark.parametrize("hard", [False, True])
def test_routed_generated_rows_equal_literal_per_token_attention(mode, hard):
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    router = ReferenceRouter(16, 8)
    with torch.no_grad():
        for p in router.parameters():
            p.normal_(0, 0.7)
    setattr(attn, ROUTER_ATTR, router)
    frames, refs, batch, n = 3, 2, 2, 5
    hidden = torch.randn(batch * (frames + refs), n, 16)
    proc = PISAAttnProcessor(PISAConfig(mode=mode))
    with torch.no_grad():
        got = proc(attn, hidden, vm_num_frames=frames + refs, vm_num_references=refs,
                   vm_routing=RoutingControl("hard" if hard else "soft")).view(batch, frames + refs, n, 16)
        expected = _literal_routed(attn, hidden, frames, refs, router, hard)
        # the reference rows are today's PISA: routing acts on the generated rows only
        delattr(attn, ROUTER_ATTR)
        plain = proc(attn, hidden, vm_num_frames=frames + refs, vm_num_references=refs).view(batch, frames + refs,
                                                                                              n, 16)
    torch.testing.assert_close(got[:, :frames], expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got[:, frames:], plain[:, frames:], atol=1e-5, rtol=1e-4)


def test_router_distribution_captured_and_differentiable(unet):
    video, ref, text = unet_inputs(refs=2)
    install_pisa(unet)
    add_routers(unet)
    try:
        control = RoutingControl(capture=[])
        pred, _ = unet_with_reference(unet, video, ref, 500, text, routing=control)
        assert len(control.capture) == 2 * len(unet.down_blocks)  # tiny UNet: one PISA layer per attention block
        lp = control.capture[0]
        assert lp.shape[:2] == (2, 4) and lp.shape[-1] == 3
        torch.testing.assert_close(lp.exp().sum(-1), torch.ones(lp.shape[:-1]))
        masks = torch.zeros(2, 2, 4, 64, 64)
        masks[:, 0, :, :32, :32] = 1
        masks[:, 1, :, 32:, 32:] = 1
        loss = routing_loss(control.capture, masks, (8, 8))
        loss.backward()
        grads = [p.grad for n, p in unet.named_parameters() if ".vm_router." in n]
        assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    finally:
        unet.zero_grad(set_to_none=True)
        remove_routers(unet)
        uninstall_pisa(unet)


def test_routing_targets_subject_none_and_ignored_edges_and_overlaps():
    masks = torch.zeros(1, 2, 1, 4, 4)
    masks[0, 0, 0, :2, :2] = 1  # subject 0: top-left 2x2 = token (0, 0) of a 2x2 grid
    masks[0, 1, 0, 2:, 2:] = 1  # subject 1: bottom-right
    masks[0, 1, 0, 2:, 1] = 1  # subject 1 covers 2 of token (1, 0)'s 4 pixels: >= 0.5 -> subject 1
    masks[0, 0, 0, 0, 2] = 1  # subject 0 covers 1 of token (0, 1)'s pixels: an edge, ignored
    t = routing_targets(masks, 2, 2)[0, 0].tolist()
    assert t == [0, IGNORE, 1, 1]
    both = torch.ones(1, 2, 1, 2, 2)  # two subjects over the same token: an overlap, ignored
    assert routing_targets(both, 1, 1).item() == IGNORE
    assert routing_targets(torch.zeros(1, 2, 1, 2, 2), 1, 1).item() == 2  # background: none


def test_router_travels_with_weights_and_turns_routing_on(tmp_path, unet):
    from vm_model.checkpoint import load_videomaker_weights, save_trainable_weights

    install_pisa(unet)
    add_routers(unet)
    randomize_routers(unet)
    for name, p in unet.named_parameters():
        p.requires_grad_(".vm_router." in name or ".attn1." in name)
    try:
        path = save_trainable_weights(unet, tmp_path / "w.safetensors")
        video, ref, text = unet_inputs(refs=2)
        with torch.no_grad():
            expected, _ = unet_with_reference(unet, video, ref, 500, text)
    finally:
        remove_routers(unet)
        uninstall_pisa(unet)
    fresh = tiny_motion_unet()
    install_pisa(fresh)
    assert not has_routers(fresh)
    report = load_videomaker_weights(fresh, path)
    assert has_routers(fresh) and not report.unexpected
    with torch.no_grad():
        got, _ = unet_with_reference(fresh, video, ref, 500, text)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_fresh_router_starts_near_uniform_over_references():
    router = ReferenceRouter(16)
    lp = router(torch.randn(1, 2, 5, 16), torch.randn(1, 3, 5, 16))
    p = lp.exp()
    torch.testing.assert_close(p[..., :3], torch.full_like(p[..., :3], (1 - p[0, 0, 0, 3].item()) / 3))
    assert p[..., 3].max() < math.exp(-4) * 1.01
