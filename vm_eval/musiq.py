"""MUSIQ (Ke et al., ICCV 2021, "Multi-scale Image Quality Transformer"), the model VBench's imaging quality runs
(:mod:`vm_eval.vbench`), as ``pyiqa``'s ``MUSIQ`` computes it.

Written from pyiqa's architecture (``pyiqa/archs/musiq_arch.py``, ``pyiqa/data/multiscale_trans_util.py``,
``pyiqa/matlab_utils/padding.py``) with the same module names, so the released checkpoints
(``musiq_spaq_ckpt-358bb6af.pth``, VBench's) load key for key (:func:`load_musiq`). :class:`MUSIQ` takes its widths as
arguments: :data:`MUSIQ_SPAQ` is the released model's, smaller ones build quick random stand-ins.

Input: RGB in 0..1, (B, 3, H, W) (every image of a batch the same size). The network maps it to -1..1, builds the
multi-scale patch sequence (:func:`multiscale_patches`: the image resized so its longer side is 224 and 384, plus the
original resolution, 32x32 patches with hashed spatial positions and a scale index), embeds each patch with a
weight-standardised ResNet root and one bottleneck, and reads the quality from the class token (SPAQ: one number,
0..100).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MUSIQConfig:
    patch_size: int = 32
    num_class: int = 1  # SPAQ, KonIQ, PaQ-2-PiQ: one score; AVA: 10 bins (softmax, then the mean bin)
    hidden_size: int = 384
    mlp_dim: int = 1152
    num_heads: int = 6
    num_layers: int = 14
    num_scales: int = 3
    grid_size: int = 10  # hashed spatial positions: grid_size x grid_size
    token_dim: int = 64  # the ResNet root's width (a multiple of 32: group norms of 32 groups)
    longer_side_lengths: tuple[int, ...] = (224, 384)
    max_seq_len_from_original_res: int = -1  # all patches of the original resolution


MUSIQ_SPAQ = MUSIQConfig()


# ------------------------------------------------------------------------------------------ patch sequence
def same_padding(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' zero padding (the extra pixel, when odd, on the right / bottom)."""
    h, w = x.shape[-2:]
    pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


def hashed_positions(grid: int, rows: int, cols: int) -> torch.Tensor:
    """(rows * cols,) indices into a grid x grid table: each patch's row and column scaled to the grid by
    nearest-neighbour resampling."""
    table = torch.arange(grid).float().view(1, 1, grid)
    col = F.interpolate(table, cols, mode="nearest").view(1, cols).expand(rows, cols)
    row = F.interpolate(table, rows, mode="nearest").view(rows, 1).expand(rows, cols)
    return (row * grid + col).reshape(-1)


def _scale_tokens(img: torch.Tensor, cfg: MUSIQConfig, scale_id: int, max_len: int) -> torch.Tensor:
    """(B, P*P*3 + 3, L) for one scale: patch pixels, spatial position, scale index, mask (1 = real patch);
    zero-padded or cut to ``max_len`` tokens when ``max_len >= 0``."""
    b, _, h, w = img.shape
    p = cfg.patch_size
    pixels = F.unfold(same_padding(img, p, p), p, stride=p)
    n = pixels.shape[-1]
    pos = hashed_positions(cfg.grid_size, math.ceil(h / p), math.ceil(w / p)).to(pixels).view(1, 1, n).expand(b, 1, n)
    tokens = torch.cat([pixels, pos, torch.full_like(pos, float(scale_id)), torch.ones_like(pos)], 1)
    if max_len >= 0:
        tokens = torch.cat([tokens, tokens.new_zeros(b, tokens.shape[1], max_len)], -1)[..., :max_len]
    return tokens


def multiscale_patches(img: torch.Tensor, cfg: MUSIQConfig = MUSIQ_SPAQ) -> torch.Tensor:
    """MUSIQ's input sequence (B, L, P*P*3 + 3) of an image batch in -1..1: for each longer side in
    ``longer_side_lengths`` (ascending) the image resized bicubically (no antialias; size by Python's ``round``)
    and its patches padded to ceil(side / P)^2 tokens, then the original resolution's patches."""
    b, _, h, w = img.shape
    out = []
    for scale_id, side in enumerate(sorted(cfg.longer_side_lengths)):
        ratio = side / max(h, w)
        resized = F.interpolate(img, (round(h * ratio), round(w * ratio)), mode="bicubic", align_corners=False)
        out.append(_scale_tokens(resized, cfg, scale_id, math.ceil(side / cfg.patch_size) ** 2))
    if cfg.max_seq_len_from_original_res is not None:
        out.append(_scale_tokens(img, cfg, len(cfg.longer_side_lengths), cfg.max_seq_len_from_original_res))
    return torch.cat(out, -1).transpose(1, 2)


# ----------------------------------------------------------------------------------------------- patch stem
class StdConv(nn.Conv2d):
    """Weight-standardised convolution (per output channel: minus the mean, over the unbiased std + 1e-5) with
    'SAME' padding."""

    def forward(self, x):
        x = same_padding(x, self.kernel_size[0], self.stride[0])
        wt = self.weight
        wt = (wt - wt.mean((1, 2, 3), keepdim=True)) / (wt.std((1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(x, wt, self.bias, self.stride)


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = StdConv(cin, cin, 1, 1, bias=False)
        self.gn1 = nn.GroupNorm(32, cin, eps=1e-4)
        self.conv2 = StdConv(cin, cin, 3, 1, bias=False)
        self.gn2 = nn.GroupNorm(32, cin, eps=1e-4)
        self.conv3 = StdConv(cin, cout, 1, 1, bias=False)
        self.gn3 = nn.GroupNorm(32, cout, eps=1e-4)
        self.conv_proj = StdConv(cin, cout, 1, 1, bias=False)
        self.gn_proj = nn.GroupNorm(32, cout, eps=1e-4)

    def forward(self, x):
        short = self.gn_proj(self.conv_proj(x))
        x = F.relu(self.gn1(self.conv1(x)))
        x = F.relu(self.gn2(self.conv2(x)))
        return F.relu(self.gn3(self.conv3(x)) + short)


# ---------------------------------------------------------------------------------------------- transformer
class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.num_heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x, mask):
        b, n, c = x.shape
        h = self.num_heads
        q, k, v = (f(x).reshape(b, n, h, c // h).permute(0, 2, 1, 3) for f in (self.query, self.key, self.value))
        scores = (q @ k.transpose(-2, -1)) * (c // h) ** -0.5
        pair = mask.view(b, 1, n, 1) & mask.view(b, 1, 1, n)  # padding as query or key: -1000, not -inf
        scores = scores.masked_fill(~pair, -1e3)
        return self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, mlp: int, heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attention = _Attention(dim, heads)
        self.mlp = _Mlp(dim, mlp)

    def forward(self, x, mask):
        x = x + self.attention(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class _PositionTable(nn.Module):
    def __init__(self, grid: int, dim: int):
        super().__init__()
        self.position_emb = nn.Parameter(torch.zeros(1, grid * grid, dim))


class _ScaleTable(nn.Module):
    def __init__(self, scales: int, dim: int):
        super().__init__()
        self.scale_emb = nn.Parameter(torch.zeros(scales, dim))


class _Encoder(nn.Module):
    def __init__(self, cfg: MUSIQConfig):
        super().__init__()
        d = cfg.hidden_size
        self.posembed_input = _PositionTable(cfg.grid_size, d)
        self.scaleembed_input = _ScaleTable(cfg.num_scales, d)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder_norm = nn.LayerNorm(d, eps=1e-6)
        self.transformer = nn.ModuleDict({f"encoderblock_{i}": _Block(d, cfg.mlp_dim, cfg.num_heads)
                                          for i in range(cfg.num_layers)})

    def forward(self, x, spatial, scale, mask):
        x = x + self.posembed_input.position_emb[0][spatial.long()]
        x = x + self.scaleembed_input.scale_emb[scale.long()]
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1)
        mask = torch.cat([mask.new_ones(mask.shape[0], 1), mask], 1)
        for block in self.transformer.values():
            x = block(x, mask)
        return self.encoder_norm(x)


class MUSIQ(nn.Module):
    """``forward(images in 0..1)`` -> (B, 1) quality (the mean opinion score; SPAQ: 0..100)."""

    def __init__(self, cfg: MUSIQConfig = MUSIQ_SPAQ):
        super().__init__()
        self.cfg = cfg
        t = cfg.token_dim
        self.conv_root = StdConv(3, t, 7, 2, bias=False)
        self.gn_root = nn.GroupNorm(32, t, eps=1e-6)
        self.block1 = _Bottleneck(t, 4 * t)
        self.embedding = nn.Linear(4 * t * (cfg.patch_size // 4) ** 2, cfg.hidden_size)
        self.transformer_encoder = _Encoder(cfg)
        self.head = (nn.Sequential(nn.Linear(cfg.hidden_size, cfg.num_class), nn.Softmax(dim=-1))
                     if cfg.num_class > 1 else nn.Linear(cfg.hidden_size, 1))

    def embed_patches(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, P, P) -> (N, 4*token_dim * (P/4)^2), channels last as TensorFlow flattens them."""
        x = self.gn_root(self.conv_root(pixels))
        x = F.max_pool2d(same_padding(F.relu(x), 3, 2), 3, 2)
        return self.block1(x).permute(0, 2, 3, 1).reshape(pixels.shape[0], -1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        seq = multiscale_patches((images - 0.5) * 2, self.cfg)
        b, n, _ = seq.shape
        p = self.cfg.patch_size
        spatial, scale, mask = seq[:, :, -3], seq[:, :, -2], seq[:, :, -1].bool()
        tokens = self.embedding(self.embed_patches(seq[:, :, :-3].reshape(-1, 3, p, p)).reshape(b, n, -1))
        q = self.head(self.transformer_encoder(tokens, spatial, scale, mask)[:, 0])
        return (q * torch.arange(1, q.shape[-1] + 1).to(q)).sum(-1, keepdim=True)


def load_musiq(path: Path, *, device: torch.device, cfg: MUSIQConfig = MUSIQ_SPAQ) -> MUSIQ:
    """MUSIQ with the weights in ``path`` (a pyiqa checkpoint or safetensors; strict). A ``musiq_config.json``
    beside the file (tiny stand-ins) gives other widths."""
    import json

    from .amt import read_state_dict

    cfg_file = Path(path).parent / "musiq_config.json"
    if cfg_file.exists():
        cfg = MUSIQConfig(**{k: tuple(v) if isinstance(v, list) else v
                             for k, v in json.loads(cfg_file.read_text()).items()})
    model = MUSIQ(cfg)
    model.load_state_dict(read_state_dict(path), strict=True)
    logger.info("loaded MUSIQ from %s (%s)", path, device)
    return model.to(device).eval()
