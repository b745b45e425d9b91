"""Position-aware ID routing (``vm train --router-neighbourhood``, vm_model.routing.neighbourhood_pool): off is the
per-token router bit for bit; on, each token's reference scores are the subject-weighted mean over its spatial
neighbourhood (checked against a literal loop), a region votes together, and the setting travels with the weights."""

from __future__ import annotations

import pytest
import torch

from model_helpers import tiny_motion_unet, unet_inputs, randomize_routers
from vm_model.pisa import install_pisa, uninstall_pisa
from vm_model.routing import (
    ROUTER_ATTR,
    ReferenceRouter,
    RoutingControl,
    add_routers,
    has_routers,
    neighbourhood_pool,
    remove_routers,
    router_grid,
)
from vm_model.unet_call import unet_with_reference


def _routers(unet):
    return [m for n, m in unet.named_modules() if n.endswith(ROUTER_ATTR)]


def test_pool_equals_literal_weighted_window_mean():
    g = torch.Generator().manual_seed(0)
    h, w, size = 6, 7, 3
    logits = torch.randn(2, 3, h * w, 2, generator=g)
    weight = torch.rand(2, 3, h * w, generator=g)
    got = neighbourhood_pool(logits, weight, (h, w), size)
    eps = 1e-3
    for b in range(2):
        for f in range(3):
            for i in range(h):
                for j in range(w):
                    cells = [(a, c) for a in range(i - 1, i + 2) for c in range(j - 1, j + 2)
                             if 0 <= a < h and 0 <= c < w]
                    num = sum(weight[b, f, a * w + c] * logits[b, f, a * w + c] for a, c in cells) / len(cells)
                    den = sum(weight[b, f, a * w + c] for a, c in cells) / len(cells)
                    expected = (num + eps * logits[b, f, i * w + j]) / (den + eps)
                    torch.testing.assert_close(got[b, f, i * w + j], expected, atol=1e-5, rtol=1e-5)
    # a grid shorter than twice the window is left alone (bit for bit)
    small = torch.randn(1, 1, 16, 2, generator=g)
    assert torch.equal(neighbourhood_pool(small, torch.ones(1, 1, 16), (4, 4), 3), small)


def test_a_region_votes_together_and_background_does_not_count():
    h = w = 6
    logits = torch.zeros(1, 1, h * w, 2)
    weight = torch.zeros(1, 1, h * w)
    region = [(i, j) for i in range(1, 4) for j in range(1, 4)]  # a 3x3 subject
    for i, j in region:
        logits[0, 0, i * w + j] = torch.tensor([0.0, 2.0])  # votes for reference 1
        weight[0, 0, i * w + j] = 1.0
    logits[0, 0, 2 * w + 2] = torch.tensor([3.0, 0.0])  # its centre alone prefers reference 0
    for i in range(h):
        for j in range(w):
            if (i, j) not in region:
                logits[0, 0, i * w + j] = torch.tensor([9.0, -9.0])  # strong background votes, weight 0
    out = neighbourhood_pool(logits, weight, (h, w), 3)[0, 0]
    centre = out[2 * w + 2]
    assert centre[1] > centre[0]  # outvoted by its region
    for i, j in region:
        assert out[i * w + j, 1] > out[i * w + j, 0]  # the background (weight 0) does not pull to reference 0
    torch.testing.assert_close(out[-1], logits[0, 0, -1])  # an all-background window keeps the token's own scores


def test_router_off_is_the_per_token_router_bit_for_bit_and_on_is_a_distribution():
    g = torch.Generator().manual_seed(1)
    off, on = ReferenceRouter(16, 8), ReferenceRouter(16, 8, neighbourhood=3)
    with torch.no_grad():
        for p in off.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    on.load_state_dict(off.state_dict())
    assert set(on.state_dict()) == set(ReferenceRouter(16, 8).state_dict())  # a setting, not a weight
    video, refs = torch.randn(2, 3, 64, 16, generator=g), torch.randn(2, 2, 64, 16, generator=g)
    plain = off(video, refs, (8, 8))
    assert torch.equal(plain, off(video, refs))  # latent_hw unused when off
    q, k = off.query(video), off.key(refs)
    scores = torch.einsum("bfnd,brmd->bfnrm", q, k) / 8 ** 0.5
    literal = torch.log_softmax(torch.cat([torch.logsumexp(scores, -1) - torch.log(torch.tensor(64.0)),
                                           off.none(video)], -1), -1)
    torch.testing.assert_close(plain, literal)
    pooled = on(video, refs, (8, 8))
    assert pooled.shape == plain.shape and not torch.allclose(pooled, plain)
    torch.testing.assert_close(pooled.exp().sum(-1), torch.ones(pooled.shape[:-1]))
    torch.testing.assert_close(pooled[..., -1].exp(), plain[..., -1].exp(), atol=0.5, rtol=0)  # "none" stays own
    with pytest.raises(ValueError, match="odd"):
        ReferenceRouter(16, 8, neighbourhood=2)
    with pytest.raises(ValueError, match="latent size"):
        router_grid(32, None)
    assert router_grid(16, (4, 16)) == (2, 8) and router_grid(64, None) == (8, 8)


def test_unet_with_neighbourhood_routers_off_parity_on_acts_and_setting_travels(tmp_path):
    from vm_model.checkpoint import load_videomaker_weights, save_trainable_weights

    unet = tiny_motion_unet()
    install_pisa(unet)
    add_routers(unet)
    randomize_routers(unet)
    video, ref, text = unet_inputs(refs=2)
    control = RoutingControl(capture=[])
    with torch.no_grad():
        per_token, _ = unet_with_reference(unet, video, ref, 500, text)
        add_routers(unet, neighbourhood=3)  # the same weights, pooled
        assert all(r.neighbourhood == 3 for r in _routers(unet))
        pooled, _ = unet_with_reference(unet, video, ref, 500, text, routing=control)
        add_routers(unet, neighbourhood=0)
        back, _ = unet_with_reference(unet, video, ref, 500, text)
    assert control.capture and control.latent_hw is None  # the caller's control keeps its capture list
    torch.testing.assert_close(back, per_token, atol=0, rtol=0)
    assert not torch.allclose(pooled, per_token)
    add_routers(unet, neighbourhood=3)
    for name, p in unet.named_parameters():
        p.requires_grad_(".vm_router." in name)
    path = save_trainable_weights(unet, tmp_path / "w.safetensors", metadata={"config": {"router_neighbourhood": 3}})
    remove_routers(unet)
    uninstall_pisa(unet)
    fresh = tiny_motion_unet()
    install_pisa(fresh)
    load_videomaker_weights(fresh, path)
    assert has_routers(fresh) and all(r.neighbourhood == 3 for r in _routers(fresh))
    with torch.no_grad():
        got, _ = unet_with_reference(fresh, video, ref, 500, text)
    torch.testing.assert_close(got, pooled, atol=0, rtol=0)


def test_train_config_checks_the_neighbourhood():
    from vm_model.train import TrainConfig

    with pytest.raises(ValueError, match="needs --router"):
        TrainConfig(router_neighbourhood=3)
    with pytest.raises(ValueError, match="odd"):
        TrainConfig(router=True, router_neighbourhood=4)
    assert TrainConfig(router=True, router_neighbourhood=3).router_neighbourhood == 3


def test_two_subject_draw_redraws_the_first_subject_when_no_second_is_far_enough(monkeypatch):
    """A mid-range first colour can leave no second subject far enough (it stopped `--seed 1` of the toy
    experiment): after 200 tries the first subject is redrawn too."""
    from types import SimpleNamespace

    import numpy as np

    from vm_model.toy import multi

    grey, red, blue = (128, 128, 128), (250, 10, 10), (10, 10, 250)
    draws = iter([grey] + [grey] * 200 + [red, blue])
    monkeypatch.setattr(multi, "random_subject", lambda *a, **k: SimpleNamespace(color1=(c := next(draws)), color2=c))
    pair = multi.random_pair(np.random.default_rng(0), 32, 4, 0)
    assert (pair.subjects[0].color1, pair.subjects[1].color1) == (red, blue)
    monkeypatch.undo()
    assert len(multi.heldout_pairs(8, 32, 4, 1)) == 8


def test_non_square_latent_routes_with_the_call_s_grid():
    """A neighbourhood router on a non-square latent gets its token grid from the call (unet_with_reference fills
    the control's latent size); the pipeline passes a soft control whenever the UNet has routers."""
    unet = tiny_motion_unet()
    install_pisa(unet)
    add_routers(unet, neighbourhood=3)
    randomize_routers(unet)
    g = torch.Generator().manual_seed(4)
    video, ref, text = torch.randn(1, 4, 2, 8, 16, generator=g), torch.randn(1, 4, 2, 8, 16, generator=g), \
        torch.randn(1, 7, 32, generator=g)
    try:
        with torch.no_grad():
            control = RoutingControl(capture=[])
            out, _ = unet_with_reference(unet, video, ref, 500, text, routing=control)
            assert out.shape == video.shape and control.capture[0].shape == (1, 2, 128, 3)
            with pytest.raises(ValueError, match="latent size"):
                unet_with_reference(unet, video, ref, 500, text)  # no control: no grid for 128 tokens
    finally:
        remove_routers(unet)
        uninstall_pisa(unet)
