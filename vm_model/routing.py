"""ID routing on PISA: several subjects, each from its own reference (after Ingredients, arXiv 2501.01790).

With R references appended as extra frames (``vm_model.pisa``), plain PISA lets every generated token attend to
every reference's tokens, so two subjects blend. A :class:`ReferenceRouter`, one per PISA layer, registered as the
submodule ``vm_router`` of that layer's ``attn1`` (so its parameters live in the UNet's state dict and travel with
`vm train` checkpoints and ``--weights``), predicts for each generated token a distribution over the R references
plus "none":

    logit_r(x)    = log mean_j exp(<W_q x, W_k y_rj> / sqrt(d))   (x: the token's hidden state entering attn1;
    logit_none(x) = w_n . x + b_n                                  y_rj: the tokens of reference r)

and PISA adds ``log p_r(x)`` to the logits from that token to every key of reference r (its own frame's keys get
0), so a token routed to "none" attends to its own frame only, and one routed to r sees only reference r. It works
for any R (the descriptor is per reference, the parameters are shared). Hard routing (inference option): the
argmax gets 0 and the others -inf. Position-aware routing (off by default; ``vm train --router-neighbourhood``): the
reference scores are pooled over each token's spatial neighbourhood before the softmax (:func:`neighbourhood_pool`).

The per-call switch and the loss capture travel in ``cross_attention_kwargs`` like the frame counts
(:class:`RoutingControl` under the key ``vm_routing``); without it a layer that has a router routes (soft), one
without runs today's PISA (bit for bit). The routing loss (:func:`routing_loss`) is the cross-entropy of the
captured distributions against per-token targets from the subject masks (:func:`routing_targets`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

ROUTER_ATTR = "vm_router"
ROUTER_KEY = f".{ROUTER_ATTR}."  # in state-dict keys: ...attn1.vm_router.query.weight
RoutingMode = Literal["soft", "hard", "off"]
ROUTING_MODES = ("soft", "hard", "off")
IGNORE = -100  # routing-loss target of a token that is neither clearly one subject nor clearly background
DEFAULT_ROUTER_DIM = 32


MAX_REFERENCE_TOKENS = 256  # reference tokens a router matches against (more are average-pooled down to this)
NEIGHBOURHOOD_KEY = "router_neighbourhood"  # the TrainConfig field (checkpoint metadata) naming the pooling window


def neighbourhood_pool(logits: torch.Tensor, weight: torch.Tensor, grid: tuple[int, int], size: int) -> torch.Tensor:
    """Position-aware routing: each token's reference logits (B, F, N, R) replaced by the ``weight``-weighted mean
    over its ``size`` x ``size`` spatial neighbourhood on the (h, w) token ``grid`` (same frame). ``weight`` (B, F, N):
    how much a token counts (the router uses its probability of being a subject, so background tokens do not dilute
    a subject's vote); a neighbourhood of weight ~0 keeps the token's own logits. Grids whose shorter side is below
    ``2 * size`` are returned unchanged (there a token's features already span much of the frame, and the window
    would reach the other subject)."""
    h, w = grid
    if size <= 1 or min(h, w) < 2 * size:
        return logits
    b, f, n, r = logits.shape
    lg = logits.permute(0, 1, 3, 2).reshape(b * f, r, h, w)
    wt = weight.reshape(b * f, 1, h, w).to(lg.dtype)

    def pool(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, size, stride=1, padding=size // 2, count_include_pad=False)

    eps = 1e-3
    pooled = (pool(lg * wt) + eps * lg) / (pool(wt) + eps)
    return pooled.reshape(b, f, r, n).permute(0, 1, 3, 2)


def check_neighbourhood(size: int) -> int:
    if size and (size < 3 or size % 2 == 0):
        raise ValueError(f"router neighbourhood must be 0 (off) or an odd size >= 3, got {size}")
    return int(size)


def router_grid(tokens: int, latent_hw: tuple[int, int] | None) -> tuple[int, int]:
    """The (h, w) token grid of a routed layer: from the call's latent size (:class:`RoutingControl` ``latent_hw``,
    filled by ``unet_with_reference``) or, without it, a square grid."""
    if latent_hw is not None:
        return token_grid(tokens, *latent_hw)
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"a neighbourhood router on {tokens} tokens needs the latent size: pass a RoutingControl "
                         "through unet_with_reference (or the pipeline's routing=)")
    return side, side


class ReferenceRouter(torch.nn.Module):
    """Token -> log-distribution over R references + none (module docstring). ``dim``: the layer's channels.

    A token's score for reference r is a soft maximum of its projected similarity to r's tokens (log of the mean of
    the exponentiated similarities): "does r contain something like me". (A first design scored the token against
    r's mean-pooled descriptor; on the toy it learned subject vs background but routed subject tokens between the
    references at chance, docs/multi_subject.md.) References with more than :data:`MAX_REFERENCE_TOKENS` tokens are
    average-pooled along the token sequence first, which bounds the score tensor at large resolutions.

    ``neighbourhood`` (odd, >= 3; 0 = off, the default and the design above bit for bit): position-aware routing,
    the reference logits pooled over the token's spatial neighbourhood (:func:`neighbourhood_pool`, weighted by each
    neighbour's subject probability) before the softmax, so a region votes together (docs/multi_subject.md). A
    setting, not a weight: `vm train --router-neighbourhood` records it in the checkpoint's config metadata, which
    loading reads."""

    def __init__(self, dim: int, router_dim: int = DEFAULT_ROUTER_DIM, neighbourhood: int = 0):
        super().__init__()
        self.neighbourhood = check_neighbourhood(neighbourhood)
        self.query = torch.nn.Linear(dim, router_dim, bias=False)
        self.key = torch.nn.Linear(dim, router_dim, bias=False)
        self.none = torch.nn.Linear(dim, 1)
        # start as "every reference equally, no none": the query is zero (all reference logits 0, so the gradient
        # reaches the query through the random key) and the none logit is well below them
        torch.nn.init.zeros_(self.query.weight)
        torch.nn.init.normal_(self.key.weight, std=dim ** -0.5)
        torch.nn.init.zeros_(self.none.weight)
        torch.nn.init.constant_(self.none.bias, -4.0)

    def forward(self, video: torch.Tensor, refs: torch.Tensor,
                latent_hw: tuple[int, int] | None = None) -> torch.Tensor:
        """video (B, F, N, C), refs (B, R, N, C) -> log-probabilities (B, F, N, R + 1), the last one "none".
        ``latent_hw``: the call's latent size (the token grid of a neighbourhood router; unused otherwise)."""
        q = self.query(video.float() if self.query.weight.dtype == torch.float32 else video)
        b, r, m, c = refs.shape
        if m > MAX_REFERENCE_TOKENS:
            refs = F.adaptive_avg_pool1d(refs.reshape(b * r, m, c).transpose(1, 2), MAX_REFERENCE_TOKENS)
            refs = refs.transpose(1, 2).reshape(b, r, MAX_REFERENCE_TOKENS, c)
            m = MAX_REFERENCE_TOKENS
        k = self.key(refs.to(q.dtype))  # (B, R, M, d)
        scores = torch.einsum("bfnd,brmd->bfnrm", q, k) / math.sqrt(q.shape[-1])
        logits = torch.logsumexp(scores, dim=-1) - math.log(m)  # (B, F, N, R)
        none = self.none(video.to(q.dtype))  # (B, F, N, 1)
        if self.neighbourhood:
            subject = 1.0 - torch.softmax(torch.cat([logits, none], dim=-1).float(), dim=-1)[..., -1].detach()
            grid = router_grid(video.shape[2], latent_hw)
            logits = neighbourhood_pool(logits, subject, grid, self.neighbourhood)
        return torch.log_softmax(torch.cat([logits, none], dim=-1).float(), dim=-1)


@dataclass
class RoutingControl:
    """Per-call routing: ``mode`` soft / hard / off (off = today's PISA even where routers exist); ``capture``: a
    list that each routed layer appends its (B, F, N, R + 1) log-probabilities to (the routing loss)."""

    mode: RoutingMode = "soft"
    capture: list | None = field(default=None, repr=False)
    latent_hw: tuple[int, int] | None = None  # the call's latent (h, w): filled by unet_with_reference

    def __post_init__(self) -> None:
        if self.mode not in ROUTING_MODES:
            raise ValueError(f"routing mode must be one of {ROUTING_MODES}, got {self.mode!r}")


def routing_bias(log_probs: torch.Tensor, tokens: int, mode: RoutingMode) -> torch.Tensor:
    """The additive logit bias of the generated rows: (B, F, N, N + R*N) from (B, F, N, R + 1) log-probabilities:
    0 on the token's own frame, log p_r on reference r's N keys (hard: 0 for the argmax reference, -inf for the
    others; a token whose argmax is "none" gets -inf on every reference)."""
    refs = log_probs.shape[-1] - 1
    lp = log_probs[..., :refs]
    if mode == "hard":
        choice = log_probs.argmax(dim=-1, keepdim=True)  # (B, F, N, 1)
        index = torch.arange(refs, device=lp.device)
        lp = torch.where(choice == index, torch.zeros_like(lp), torch.full_like(lp, float("-inf")))
    own = torch.zeros(*lp.shape[:-1], tokens, dtype=lp.dtype, device=lp.device)
    return torch.cat([own, lp.repeat_interleave(tokens, dim=-1)], dim=-1)


# ------------------------------------------------------------------------------------------ install / detect
def _attn1_modules(unet) -> dict[str, torch.nn.Module]:
    from .pisa import spatial_self_attention_names

    model = getattr(unet, "module", unet)
    names = [n[: -len(".processor")] for n in spatial_self_attention_names(model)]
    modules = dict(model.named_modules())
    return {n: modules[n] for n in names}


def add_routers(unet, router_dim: int = DEFAULT_ROUTER_DIM, neighbourhood: int | None = None) -> int:
    """Give every PISA layer (spatial ``attn1``) a fresh router (kept when it has one). ``neighbourhood``: the
    routers' pooling window (:class:`ReferenceRouter`; None: 0 for new routers, existing ones keep theirs). Returns
    the parameter count of all routers."""
    count = 0
    for attn in _attn1_modules(unet).values():
        if getattr(attn, ROUTER_ATTR, None) is None:
            weight = attn.to_q.weight
            router = ReferenceRouter(attn.to_q.in_features, router_dim, neighbourhood or 0).to(device=weight.device)
            setattr(attn, ROUTER_ATTR, router)
        elif neighbourhood is not None:
            getattr(attn, ROUTER_ATTR).neighbourhood = check_neighbourhood(neighbourhood)
        count += sum(p.numel() for p in getattr(attn, ROUTER_ATTR).parameters())
    return count


def routers_neighbourhood(unet) -> int | None:
    """The pooling window the model's routers use (None without routers): what a checkpoint must record, whatever
    the flags of the run that saved it said (routers that came with --weights keep their own)."""
    sizes = {getattr(attn, ROUTER_ATTR).neighbourhood for attn in _attn1_modules(unet).values()
             if getattr(attn, ROUTER_ATTR, None) is not None}
    if len(sizes) > 1:
        raise ValueError(f"the routers of one model have different neighbourhoods: {sorted(sizes)}")
    return sizes.pop() if sizes else None


def has_routers(unet) -> bool:
    return any(getattr(attn, ROUTER_ATTR, None) is not None for attn in _attn1_modules(unet).values())


def remove_routers(unet) -> None:
    for attn in _attn1_modules(unet).values():
        if getattr(attn, ROUTER_ATTR, None) is not None:
            delattr(attn, ROUTER_ATTR)


def state_has_router(state: dict) -> bool:
    return any(ROUTER_KEY in key for key in state)


def router_dim_in_state(state: dict) -> int:
    for key, value in state.items():
        if ROUTER_KEY in key and key.endswith("query.weight"):
            return int(value.shape[0])
    raise ValueError("the state dict has no router weights")


def router_neighbourhood_in_metadata(path) -> int:
    """The routers' neighbourhood setting a `vm train` weights file records (the routers' own, else the run's
    config); 0 when absent."""
    from .training.lora import read_metadata

    metadata = read_metadata(path)
    if isinstance(metadata.get(NEIGHBOURHOOD_KEY), int):  # the routers' own setting, recorded at save time
        return check_neighbourhood(metadata[NEIGHBOURHOOD_KEY])
    config = metadata.get("config")  # files written before that: the run's flag
    return check_neighbourhood(int(config.get(NEIGHBOURHOOD_KEY) or 0)) if isinstance(config, dict) else 0


def is_router_parameter(name: str) -> bool:
    return ROUTER_KEY in name


# -------------------------------------------------------------------------------------------- routing loss
def routing_targets(subject_masks: torch.Tensor, height: int, width: int, threshold: float = 0.5,
                    background: float = 0.05) -> torch.Tensor:
    """Per-token class targets at a layer's token grid: subject_masks (B, R, F, H, W) in [0, 1] -> (B, F, h*w) long.

    Each token's subject coverage is the mean of the mask over its pixels (area downsampling). Target r: the token
    is covered at least ``threshold`` by subject r and less than that by every other; R ("none"): every subject
    covers it less than ``background``. Everything else (edges, and overlaps where two subjects both cover it at
    least ``threshold``) is :data:`IGNORE`: neither answer would be right."""
    b, r, f = subject_masks.shape[:3]
    cover = F.adaptive_avg_pool2d(subject_masks.float().flatten(0, 2), (height, width)).view(b, r, f, -1)
    strong = cover >= threshold  # (B, R, F, N)
    target = torch.full((b, f, height * width), IGNORE, dtype=torch.long, device=subject_masks.device)
    one = strong.sum(dim=1) == 1
    target[one] = strong.float().argmax(dim=1)[one]
    target[(cover < background).all(dim=1)] = r
    return target


def token_grid(tokens: int, height: int, width: int) -> tuple[int, int]:
    """The (h, w) token grid of a layer with ``tokens`` tokens on a (height, width) latent (a downsampled copy)."""
    factor = math.sqrt(height * width / tokens)
    h, w = round(height / factor), round(width / factor)
    if h * w != tokens:
        raise ValueError(f"{tokens} tokens are no downsampled grid of a {height}x{width} latent")
    return h, w


def routing_loss(captured: list[torch.Tensor], subject_masks: torch.Tensor, latent_hw: tuple[int, int],
                 sample_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over layers of the token cross-entropy between each layer's routing distribution (B, F, N, R + 1) and
    the mask targets at its grid; ``sample_weight`` (B,): 0 for samples without references (image dropout).
    Class-balanced between subject tokens and background ("none") tokens: each group's mean cross-entropy counts
    half (background tokens outnumber subject tokens, and with a plain mean the router learned "subject or not"
    well and "which subject" at chance; docs/multi_subject.md). Tokens whose target is :data:`IGNORE` do not count;
    a layer without any counted token adds 0."""
    if not captured:
        raise ValueError("no routing distributions were captured: the UNet has no routers")
    losses = []
    for log_probs in captured:
        b, f, n, classes = log_probs.shape
        h, w = token_grid(n, *latent_hw)
        target = routing_targets(subject_masks.to(log_probs.device), h, w)  # (B, F, N)
        if sample_weight is not None:
            target = torch.where(sample_weight.view(-1, 1, 1).to(target.device) > 0, target,
                                 torch.full_like(target, IGNORE))
        flat = target.reshape(-1)
        nll = F.nll_loss(log_probs.reshape(-1, classes), flat, ignore_index=IGNORE, reduction="none")
        groups = [nll[(flat >= 0) & (flat < classes - 1)], nll[flat == classes - 1]]  # subjects, none
        parts = [g.mean() for g in groups if g.numel()]
        losses.append(torch.stack(parts).mean() if parts else log_probs.sum() * 0.0)
    return torch.stack(losses).mean()


def routing_accuracy(captured: list[torch.Tensor], subject_masks: torch.Tensor, latent_hw: tuple[int, int],
                     subjects_only: bool = False) -> float:
    """Fraction of counted tokens (all layers) whose argmax is the mask target (a diagnostic); ``subjects_only``:
    only tokens whose target is a subject (which reference, not whether any)."""
    right = total = 0
    for log_probs in captured:
        h, w = token_grid(log_probs.shape[2], *latent_hw)
        target = routing_targets(subject_masks.to(log_probs.device), h, w)
        keep = (target >= 0) & (target < log_probs.shape[-1] - 1) if subjects_only else target != IGNORE
        right += int((log_probs.argmax(-1) == target)[keep].sum())
        total += int(keep.sum())
    return right / total if total else float("nan")
