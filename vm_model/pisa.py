"""PISA: Personalized Injection Self-Attention, as attention processors on diffusers' ``UNetMotionModel``.

The reference latent(s) travel as extra frames appended after the F generated frames of every sample
(frame layout per sample: ``[video_0 .. video_{F-1}, ref_0 .. ref_{R-1}]``; diffusers flattens frames batch-major,
so row ``b*T + t`` of a spatial attention input is frame ``t`` of sample ``b``, with ``T = F + R``).

In every spatial self-attention layer (``attn1`` of the spatial transformer blocks) each generated frame attends
over ``[its own N tokens ; all R*N reference tokens]`` with the layer's own projections (no new parameters). The
reference tokens' queries see the same sequences, one copy per frame, and their output is the mean over the F
copies. Motion modules are untouched: they see all F + R frames.

The frame counts are not stored anywhere: each UNet call passes them in ``cross_attention_kwargs`` (see
:func:`pisa_kwargs`), which diffusers forwards to every spatial processor (attn1 and attn2) and to nothing else.
So one installed model serves training, both guidance branches and any frame count, and gradient checkpointing
(which replays the call with the same arguments) is safe.

An optional third call argument, the reference weight w in [0, 1] (``vm_model.injection``), scales how much the
frames attend across frames: every logit from a token to a token of another frame is shifted by log w (for a
generated frame: the reference keys; for a reference copy: frame i's keys and the other references' keys). w = 1 is
the paper's PISA and runs exactly today's code (the key is not even passed); w = 0 is handled as exclusion, not as
-inf arithmetic: each frame's stock self-attention over its own tokens.

ID routing (:mod:`vm_model.routing`): a layer whose ``attn1`` has a router (``attn1.vm_router``) adds, for each
generated token, the log-probability of reference r to the logits of reference r's keys (a fourth, optional call
argument ``vm_routing`` switches it off / to hard routing and captures the distributions for the routing loss). A
layer without a router, or a call with routing off, runs exactly the code above.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from .routing import ROUTER_ATTR, RoutingControl, routing_bias

logger = logging.getLogger(__name__)

PISAMode = Literal["concat", "lse"]
_KW_FRAMES = "vm_num_frames"
_KW_REFS = "vm_num_references"
_KW_WEIGHT = "vm_reference_weight"
_KW_ROUTING = "vm_routing"


def pisa_kwargs(num_frames: int, num_references: int, reference_weight: float = 1.0,
                routing: RoutingControl | None = None) -> dict:
    """The per-call ``cross_attention_kwargs``: total frames per sample (F + R), reference frames (R) and, when it
    is not 1, the reference weight w in [0, 1] (module docstring); ``routing`` (when given): the routing switch and
    loss capture of :mod:`vm_model.routing`."""
    if num_references < 0 or num_frames - num_references < 1:
        raise ValueError(f"need at least one generated frame: num_frames={num_frames}, num_references={num_references}")
    kwargs = {_KW_FRAMES: int(num_frames), _KW_REFS: int(num_references)}
    weight = float(reference_weight)
    if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
        raise ValueError(f"reference weight must be in [0, 1], got {reference_weight}")
    if weight != 1.0:
        kwargs[_KW_WEIGHT] = weight
    if routing is not None:
        kwargs[_KW_ROUTING] = routing
    return kwargs


@dataclass(frozen=True)
class PISAConfig:
    """Switches of the method and of the paper's ablation (Table 3)."""

    enabled: bool = True  # PISA on; off = the reference is an extra frame seen only by motion modules / norms
    reference_in_cross_attention: bool = True  # the reference frame also goes through text cross-attention
    mode: PISAMode = "concat"  # "lse": inference-only merge of the reference queries (exact, cheaper)


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(..., L, heads*d) -> (..., heads, L, d)"""
    *lead, length, dim = x.shape
    return x.view(*lead, length, heads, dim // heads).transpose(-3, -2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(..., heads, L, d) -> (..., L, heads*d)"""
    *lead, heads, length, d = x.shape
    return x.transpose(-3, -2).reshape(*lead, length, heads * d)


def _sdpa_frames(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                 bias: torch.Tensor | None = None) -> torch.Tensor:
    """SDPA over (B, F, heads, L, d) tensors with (B, F) flattened into the batch dimension: the fused
    flash / memory-efficient kernels accept 4-D input only, and 5-D input silently takes the unfused math path
    (7.4x slower for SD1.5's largest PISA layer on CPU, benchmarks/results/model_pisa_cost_*). ``bias``: an
    additive (Lq or 1, Lk) logit bias shared by every row (the reference weight's log w)."""
    b, f = q.shape[:2]
    if bias is None:
        out = F.scaled_dot_product_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1), scale=scale)
    else:
        out = F.scaled_dot_product_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1),
                                             attn_mask=bias.to(q.dtype), scale=scale)
    return out.unflatten(0, (b, f))


def _sdpa_routed(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                 bias: torch.Tensor) -> torch.Tensor:
    """SDPA over (B, F, heads, L, d) tensors with a per-sample, per-frame additive bias (B, F, Lq, Lk) shared by
    the heads (the routing bias of the generated rows)."""
    b, f = q.shape[:2]
    out = F.scaled_dot_product_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1),
                                         attn_mask=bias.flatten(0, 1).unsqueeze(1).to(q.dtype), scale=scale)
    return out.unflatten(0, (b, f))


def _cross_frame_bias(tokens: int, refs: int, log_w: float, device,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The additive logit bias of a reference weight w = exp(log_w) for one frame's PISA sequence
    ``[frame i (N tokens) ; ref_0 .. ref_{R-1} (N each)]``, (N + RN) x (N + RN): 0 where query and key are in the
    same frame, log w elsewhere. Shared by every sample, frame and head (broadcast, never expanded)."""
    length = tokens * (1 + refs)
    bias = torch.full((length, length), log_w, dtype=dtype, device=device)
    for j in range(1 + refs):
        bias[j * tokens:(j + 1) * tokens, j * tokens:(j + 1) * tokens] = 0.0
    return bias


def _attention_with_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                        max_score_bytes: int = 256 * 2**20,
                        bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention that also returns the log-sum-exp of each query's scores (float32).

    q: (G, Lq, d), k/v: (G, Lk, d). On CPU this uses PyTorch's fused flash-attention kernel, which returns the
    log-sum-exp (a private aten op, so it is guarded); elsewhere, or if that op is unavailable, an unfused
    computation in chunks over G that keeps the score matrix under ``max_score_bytes``. ``bias`` (Lq, Lk), added
    to the scores, always takes the unfused computation.
    """
    if bias is not None:
        return _attention_with_lse_unfused(q, k, v, scale, max_score_bytes, bias=bias)
    if q.device.type == "cpu" and q.dtype in (torch.float32, torch.bfloat16):
        fused = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
        if fused is not None:
            try:
                out, lse = fused(q[:, None], k[:, None], v[:, None], scale=scale)[:2]
                return out[:, 0], lse[:, 0].float()
            except (RuntimeError, TypeError) as exc:  # pragma: no cover - depends on the torch build
                logger.debug("fused CPU attention with log-sum-exp unavailable (%s); using the unfused path", exc)
    return _attention_with_lse_unfused(q, k, v, scale, max_score_bytes)


def _attention_with_lse_unfused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                                max_score_bytes: int = 256 * 2**20,
                                bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    g, lq, _ = q.shape
    lk = k.shape[1]
    step = max(1, max_score_bytes // max(lq * lk * 4, 1))
    outs, lses = [], []
    for start in range(0, g, step):
        sl = slice(start, start + step)
        scores = torch.bmm(q[sl].float() * scale, k[sl].float().transpose(1, 2))
        if bias is not None:
            scores = scores + bias.float()
        lse = torch.logsumexp(scores, dim=-1)
        probs = scores.sub_(lse[..., None]).exp_()
        outs.append(torch.bmm(probs, v[sl].float()).to(q.dtype))
        lses.append(lse)
    return torch.cat(outs), torch.cat(lses)


class _StockAttention:
    """Base of the PISA processors: their config, and the stock computation (diffusers' ``AttnProcessor2_0``)
    used where PISA does not apply."""

    def __init__(self, config: PISAConfig = PISAConfig()) -> None:
        from diffusers.models.attention_processor import AttnProcessor2_0

        self.config = config
        self._stock = AttnProcessor2_0()

    def stock(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None):
        return self._stock(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                           attention_mask=attention_mask, temb=temb)


def _frame_layout(hidden_states: torch.Tensor, num_frames: int | None, num_references: int) -> tuple[int, int, int]:
    if num_frames is None:
        raise ValueError(f"{_KW_REFS}={num_references} needs {_KW_FRAMES}; build the kwargs with pisa_kwargs()")
    rows = hidden_states.shape[0]
    if rows % num_frames:
        raise ValueError(f"attention input has {rows} rows, not a multiple of {_KW_FRAMES}={num_frames}")
    return rows // num_frames, num_frames - num_references, num_references


class PISAAttnProcessor(_StockAttention):
    """Spatial self-attention (``attn1``) with reference injection."""

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 vm_num_frames: int | None = None, vm_num_references: int = 0,
                 vm_reference_weight: float = 1.0, vm_routing: RoutingControl | None = None) -> torch.Tensor:
        if not vm_num_references or not self.config.enabled:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if encoder_hidden_states is not None:
            raise ValueError("PISAAttnProcessor is for self-attention (attn1); it got encoder_hidden_states")
        if attention_mask is not None:
            raise NotImplementedError("PISA does not support an attention mask on spatial self-attention")
        if hidden_states.ndim != 3:
            raise ValueError(f"expected (batch*frames, tokens, channels), got shape {tuple(hidden_states.shape)}")
        if attn.spatial_norm is not None or attn.group_norm is not None:
            raise NotImplementedError("PISA supports the SD1.5 spatial self-attention (no spatial/group norm)")
        batch, frames, refs = _frame_layout(hidden_states, vm_num_frames, vm_num_references)
        if vm_reference_weight == 0.0:  # exclusion: every frame (generated or reference) attends over its own tokens
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        if self.config.mode == "lse" and torch.is_grad_enabled():
            raise RuntimeError("PISA mode 'lse' is inference-only; use mode 'concat' for training")

        residual = hidden_states
        _, tokens, channels = hidden_states.shape
        x = hidden_states.view(batch, frames + refs, tokens, channels)
        video, ref = x[:, :frames], x[:, frames:].reshape(batch, refs * tokens, channels)
        heads = attn.heads

        def project(t: torch.Tensor):
            q, k, v = attn.to_q(t), attn.to_k(t), attn.to_v(t)
            q, k, v = _split_heads(q, heads), _split_heads(k, heads), _split_heads(v, heads)
            if attn.norm_q is not None:
                q = attn.norm_q(q)
            if attn.norm_k is not None:
                k = attn.norm_k(k)
            return q, k, v

        router = getattr(attn, ROUTER_ATTR, None)
        mode = "soft" if vm_routing is None else vm_routing.mode
        route = None  # routed: (B, F, N, N + RN) logit bias of the generated rows (vm_model.routing)
        if router is not None and mode != "off":
            log_probs = router(video, x[:, frames:], None if vm_routing is None else vm_routing.latent_hw)
            if vm_routing is not None and vm_routing.capture is not None:
                vm_routing.capture.append(log_probs)
            route = routing_bias(log_probs, tokens, mode)

        q_v, k_v, v_v = project(video)  # (B, F, h, N, d)
        q_r, k_r, v_r = project(ref)  # (B, h, R*N, d): computed once, shared by every frame
        rn = refs * tokens
        expand = (batch, frames, heads, rn, q_r.shape[-1])
        keys = torch.cat([k_v, k_r.unsqueeze(1).expand(expand)], dim=3)  # (B, F, h, N + RN, d)
        values = torch.cat([v_v, v_r.unsqueeze(1).expand(expand)], dim=3)

        # w = 1 (the paper): no bias at all, today's computation; otherwise log w on cross-frame logits
        log_w = None if vm_reference_weight == 1.0 else math.log(vm_reference_weight)
        if route is not None:
            if log_w is not None:
                route = route + torch.cat([torch.zeros(tokens, device=route.device),
                                           torch.full((rn,), log_w, device=route.device)])
            video_out = _sdpa_routed(q_v, keys, values, attn.scale, route)
            if self.config.mode == "concat":
                bias = None if log_w is None else \
                    _cross_frame_bias(tokens, refs, log_w, q_v.device, q_v.dtype)[tokens:]
                ref_out = _sdpa_frames(q_r.unsqueeze(1).expand(expand), keys, values, attn.scale, bias).mean(dim=1)
            elif self.config.mode == "lse":
                ref_out = self._reference_queries_lse(q_r, k_v, v_v, k_r, v_r, attn.scale, log_w)
            else:
                raise ValueError(f"unknown PISA mode {self.config.mode!r}")
        elif self.config.mode == "concat":
            queries = torch.cat([q_v, q_r.unsqueeze(1).expand(expand)], dim=3)
            bias = None if log_w is None else _cross_frame_bias(tokens, refs, log_w, queries.device, queries.dtype)
            out = _sdpa_frames(queries, keys, values, attn.scale, bias)  # (B, F, h, N+RN, d)
            video_out = out[:, :, :, :tokens]
            ref_out = out[:, :, :, tokens:].mean(dim=1)  # mean over the F copies -> (B, h, RN, d)
        elif self.config.mode == "lse":
            bias = None if log_w is None else torch.cat([  # a video row's bias: 0 on its own keys, log w on the refs'
                torch.zeros(tokens, device=q_v.device), torch.full((rn,), log_w, device=q_v.device)])[None]
            video_out = _sdpa_frames(q_v, keys, values, attn.scale, bias)
            ref_out = self._reference_queries_lse(q_r, k_v, v_v, k_r, v_r, attn.scale, log_w)
        else:
            raise ValueError(f"unknown PISA mode {self.config.mode!r}")

        video_out = _merge_heads(video_out)  # (B, F, N, C')
        ref_out = _merge_heads(ref_out).view(batch, refs, tokens, -1)  # (B, R, N, C')
        out = torch.cat([video_out, ref_out], dim=1).reshape(batch * (frames + refs), tokens, -1)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    @staticmethod
    def _reference_queries_lse(q_r, k_v, v_v, k_r, v_r, scale, log_w: float | None = None) -> torch.Tensor:
        """Reference-query outputs, merged exactly from one shared ref->ref block and F ref->frame blocks.

        For copy i the reference queries attend over [frame i ; references]; softmax over a union of key sets is the
        log-sum-exp-weighted mix of the softmaxes over each set: o_i = w_i * o_(r->i) + (1 - w_i) * o_(r->r) with
        w_i = sigmoid(lse_(r->i) - lse_(r->r)). A reference weight shifts lse_(r->i) by ``log_w`` and, with several
        references, the logits between different references by ``log_w`` (inside the ref->ref block).
        """
        b, fr, h, n, d = k_v.shape
        rn = q_r.shape[-2]
        bias = None
        if log_w is not None and rn > n:  # several references: log w between different references
            bias = _cross_frame_bias(n, rn // n - 1, log_w, q_r.device)  # the same block structure, refs only
        o_rr, lse_rr = _attention_with_lse(q_r.reshape(b * h, rn, d), k_r.reshape(b * h, rn, d),
                                           v_r.reshape(b * h, rn, d), scale, bias=bias)
        q_rep = q_r.unsqueeze(1).expand(b, fr, h, rn, d).reshape(b * fr * h, rn, d)
        o_ri, lse_ri = _attention_with_lse(q_rep, k_v.reshape(b * fr * h, n, d), v_v.reshape(b * fr * h, n, d), scale)
        o_rr = o_rr.view(b, 1, h, rn, d).float()
        lse_rr = lse_rr.view(b, 1, h, rn, 1)
        o_ri = o_ri.view(b, fr, h, rn, d).float()
        lse_ri = lse_ri.view(b, fr, h, rn, 1)
        if log_w is not None:
            lse_ri = lse_ri + log_w
        w = torch.sigmoid(lse_ri - lse_rr)
        merged = w * o_ri + (1.0 - w) * o_rr
        return merged.mean(dim=1).to(q_r.dtype)


class ReferenceCrossAttnProcessor(_StockAttention):
    """Text cross-attention (``attn2``) of the spatial blocks; optionally keeps the reference frames out of it.

    With ``reference_in_cross_attention=False`` the reference frames get no text contribution (their attention
    output is zero, so the block's residual passes them through unchanged); the generated frames are computed as
    stock. It declares the PISA call arguments because diffusers hands the same kwargs to attn1 and attn2 (and
    drops, with a warning, any a processor does not declare); the reference weight does not act here.
    """

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 vm_num_frames: int | None = None, vm_num_references: int = 0,
                 vm_reference_weight: float = 1.0, vm_routing: RoutingControl | None = None) -> torch.Tensor:
        if not vm_num_references or self.config.reference_in_cross_attention:
            return self.stock(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        batch, frames, refs = _frame_layout(hidden_states, vm_num_frames, vm_num_references)
        total = frames + refs
        shape = hidden_states.shape
        x = hidden_states.view(batch, total, *shape[1:])
        enc = None if encoder_hidden_states is None else \
            encoder_hidden_states.view(batch, total, *encoder_hidden_states.shape[1:])[:, :frames].flatten(0, 1)
        mask = None if attention_mask is None else \
            attention_mask.view(batch, total, *attention_mask.shape[1:])[:, :frames].flatten(0, 1)
        video_out = self.stock(attn, x[:, :frames].flatten(0, 1), enc, mask, temb)
        out = torch.zeros(batch, total, *video_out.shape[1:], dtype=video_out.dtype, device=video_out.device)
        out[:, :frames] = video_out.view(batch, frames, *video_out.shape[1:])
        if attn.residual_connection:  # keep the stock residual semantics for the reference rows
            out[:, frames:] = x[:, frames:] / attn.rescale_output_factor
        return out.view(batch * total, *video_out.shape[1:])


# ------------------------------------------------------------------------------------------ install / uninstall
def _is_spatial(name: str) -> bool:
    return ".attentions." in name and "motion_modules" not in name


def spatial_self_attention_names(unet) -> list[str]:
    """Processor keys of the spatial self-attention layers (16 in SD1.5)."""
    return [n for n in unet.attn_processors if _is_spatial(n) and n.endswith("attn1.processor")]


def spatial_cross_attention_names(unet) -> list[str]:
    return [n for n in unet.attn_processors if _is_spatial(n) and n.endswith("attn2.processor")]


def install_pisa(unet, config: PISAConfig = PISAConfig()) -> list[str]:
    """Install PISA on spatial ``attn1`` (and the reference-aware processor on spatial ``attn2``).

    Motion-module processors are kept as they are. Returns the names of the PISA layers.
    Note: ``set_default_attn_processor()``, ``enable_xformers_memory_efficient_attention()`` and
    ``fuse_qkv_projections()`` replace every processor and so remove PISA; call this again afterwards.
    """
    processors = dict(unet.attn_processors)
    self_names = spatial_self_attention_names(unet)
    if not self_names:
        raise ValueError(f"{type(unet).__name__} has no spatial self-attention layers to install PISA on")
    for name in self_names:
        processors[name] = PISAAttnProcessor(config)
    for name in spatial_cross_attention_names(unet):
        processors[name] = ReferenceCrossAttnProcessor(config)
    unet.set_attn_processor(processors)
    logger.debug("installed PISA (%s) on %d spatial self-attention layers", config, len(self_names))
    return self_names


def uninstall_pisa(unet) -> None:
    """Put the stock processors (``AttnProcessor2_0``) back on the spatial attention layers."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    processors = dict(unet.attn_processors)
    for name in spatial_self_attention_names(unet) + spatial_cross_attention_names(unet):
        processors[name] = AttnProcessor2_0()
    unet.set_attn_processor(processors)


class PISARemovedError(RuntimeError):
    """A call with reference frames found spatial attention layers without their PISA processors."""


def reference_aware(processor, weighted: bool = False, routed: bool = False) -> bool:
    """True for a processor that takes the per-call reference layout (declares PISA's frame-count kwargs by name,
    as diffusers requires): ours, or a user's own implementation of the same contract. ``weighted``: it must also
    declare the reference weight; ``routed``: the routing control."""
    params = _declared_kwargs(type(processor))
    return _KW_FRAMES in params and _KW_REFS in params and (not weighted or _KW_WEIGHT in params) \
        and (not routed or _KW_ROUTING in params)


@functools.lru_cache(maxsize=None)
def _declared_kwargs(processor_class: type) -> frozenset[str]:
    """The parameter names of a processor class's ``__call__`` (per class: checked on every reference call)."""
    import inspect

    try:
        return frozenset(inspect.signature(processor_class.__call__).parameters)
    except (TypeError, ValueError):
        return frozenset()


def check_pisa_installed(unet, weighted: bool = False, routed: bool = False) -> None:
    """Raise :class:`PISARemovedError` unless every spatial attention processor is reference-aware
    (:func:`reference_aware`; with ``weighted``, also taking the reference weight). Without this, a call with a
    reference after ``fuse_qkv_projections()``, ``load_ip_adapter()``, ``set_attn_processor()`` or
    ``enable_xformers_memory_efficient_attention()`` would silently generate without the subject (diffusers drops
    the kwargs the replacement does not declare)."""
    model = getattr(unet, "module", unet)
    processors = model.attn_processors  # one walk of the module tree (this runs on every call with a reference)
    expected = [n for n in processors if _is_spatial(n) and n.endswith(("attn1.processor", "attn2.processor"))]
    wrong = [(n, type(processors.get(n)).__name__) for n in expected
             if not reference_aware(processors.get(n), weighted, routed)]
    if wrong:
        name, found = wrong[0]
        raise PISARemovedError(
            f"PISA is not installed on {len(wrong)} of {len(expected)} spatial attention layers (e.g. {name} runs "
            f"{found}): something replaced the attention processors (fuse_qkv_projections, load_ip_adapter, "
            f"set_attn_processor, enable_xformers_memory_efficient_attention); call install_pisa(unet) or "
            f"pipe.set_pisa_config(config) again before generating with a reference"
            + (f"; a reference weight other than 1 also needs processors declaring {_KW_WEIGHT}" if weighted else "")
            + (f"; routing also needs processors declaring {_KW_ROUTING}" if routed else ""))


def installed_pisa_config(unet) -> PISAConfig | None:
    """The config of the installed PISA processors, or None when PISA is not installed."""
    for name, proc in unet.attn_processors.items():
        if isinstance(proc, PISAAttnProcessor):
            return proc.config
    return None


def pisa_flop_ratio(num_frames: int, num_references: int = 1) -> float:
    """Spatial self-attention score FLOPs of PISA relative to plain attention over the same F + R frames."""
    f, r = num_frames, num_references
    return f * (1 + r) ** 2 / (f + r)

