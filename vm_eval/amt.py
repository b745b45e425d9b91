"""AMT-S frame interpolation (Li et al., CVPR 2023, "AMT: All-Pairs Multi-Field Transforms"), the model VBench's
motion smoothness runs (:mod:`vm_eval.vbench`).

Written from the architecture VBench ships (``vbench/third_party/amt/networks/AMT-S.py`` and its ``blocks/``), with
the same module names, so the released ``amt-s.pth`` (``{"state_dict": ...}``) loads key for key
(:func:`load_amt_s`). :class:`AMTS` takes its widths as arguments: :data:`AMT_S` is the released model's, smaller ones
build quick random stand-ins through the same code.

Inputs are float RGB in 0..1, (B, 3, H, W) with H and W multiples of 16 (the caller pads); ``embt`` is the time of
the frame to predict (VBench: 0.5). The output is the predicted frame, clamped to 0..1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AMTConfig:
    """Widths of AMT-S (the released model's by default)."""

    channels: tuple[int, int, int, int] = (20, 32, 44, 56)  # the image pyramid encoder, 1/2 .. 1/16
    skip_channels: int = 20  # the side branch of every decoder's residual block
    feat_channels: tuple[int, int, int] = (32, 64, 96)  # the correlation feature encoder's three stages
    feat_dim: int = 84  # correlation features
    hidden_dim: int = 76  # update blocks
    flow_dim: int = 20
    corr_dim: int = 64
    fc_dim: int = 68
    corr_radius: int = 3
    corr_levels: int = 4
    num_flows: int = 3


AMT_S = AMTConfig()


# ---------------------------------------------------------------------------------------------------- helpers
def _resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def _conv_prelu(cin: int, cout: int, k: int = 3, stride: int = 1, pad: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad), nn.PReLU(cout))


def backward_warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``img`` at (x + flow_x, y + flow_y): bilinear, border padding, pixel-centre corners aligned."""
    b, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(b, -1, h, -1)
    ys = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(b, -1, -1, w)
    base = torch.cat([xs, ys], 1).to(img)
    norm = torch.cat([flow[:, :1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)], 1)
    grid = (base + norm).permute(0, 2, 3, 1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def pixel_grid(b: int, h: int, w: int, device) -> torch.Tensor:
    """(B, 2, H, W): channel 0 the column (x), channel 1 the row (y)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack((xs, ys)).float()[None].repeat(b, 1, 1, 1)


# ------------------------------------------------------------------------------------ correlation features
class _Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 with instance norms (no parameters), projected shortcut when strided."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        mid = cout // 4
        self.conv1 = nn.Conv2d(cin, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1)
        self.conv3 = nn.Conv2d(mid, cout, 1)
        self.norm1, self.norm2, self.norm3 = nn.InstanceNorm2d(mid), nn.InstanceNorm2d(mid), nn.InstanceNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride), nn.InstanceNorm2d(cout))
                           if stride != 1 else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        y = F.relu(self.norm2(self.conv2(y)))
        y = F.relu(self.norm3(self.conv3(y)))
        return F.relu((x if self.downsample is None else self.downsample(x)) + y)


class _FeatureEncoder(nn.Module):
    """RAFT's small encoder (instance norm): 1/8-resolution features for the correlation volume."""

    def __init__(self, widths: tuple[int, int, int], out_dim: int):
        super().__init__()
        w1, w2, w3 = widths
        self.conv1 = nn.Conv2d(3, w1, 7, stride=2, padding=3)
        self.norm1 = nn.InstanceNorm2d(w1)
        self.layer1 = nn.Sequential(_Bottleneck(w1, w1), _Bottleneck(w1, w1))
        self.layer2 = nn.Sequential(_Bottleneck(w1, w2, 2), _Bottleneck(w2, w2))
        self.layer3 = nn.Sequential(_Bottleneck(w2, w3, 2), _Bottleneck(w3, w3))
        self.conv2 = nn.Conv2d(w3, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm1(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class BidirectionalCorrelation:
    """All-pairs correlation of two 1/8 feature maps and its transpose, average-pooled into ``levels`` levels, read
    in a (2r+1)^2 window around given positions (RAFT's lookup, including its window order)."""

    def __init__(self, f0: torch.Tensor, f1: torch.Tensor, levels: int, radius: int):
        b, d, h, w = f0.shape
        corr = torch.matmul(f0.view(b, d, h * w).transpose(1, 2), f1.view(b, d, h * w))
        corr = corr.view(b, h, w, 1, h, w) / torch.sqrt(torch.tensor(d).float())
        corr_t = corr.permute(0, 4, 5, 3, 1, 2).reshape(b * h * w, 1, h, w)
        corr = corr.reshape(b * h * w, 1, h, w)
        self.levels, self.radius = levels, radius
        self.pyramid, self.pyramid_t = [corr], [corr_t]
        for _ in range(levels - 1):
            self.pyramid.append(F.avg_pool2d(self.pyramid[-1], 2, stride=2))
            self.pyramid_t.append(F.avg_pool2d(self.pyramid_t[-1], 2, stride=2))

    @staticmethod
    def _sample(volume: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
        h, w = volume.shape[-2:]
        x, y = at.split(1, dim=-1)
        grid = torch.cat([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], dim=-1)
        return F.grid_sample(volume, grid, align_corners=True)

    def __call__(self, at0: torch.Tensor, at1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.radius
        at0, at1 = at0.permute(0, 2, 3, 1), at1.permute(0, 2, 3, 1)
        b, h, w, _ = at0.shape
        steps = torch.linspace(-r, r, 2 * r + 1, device=at0.device)
        # window offset (i, j) -> (x, y) = (steps[i], steps[j]): x runs along the window's rows, as RAFT's lookup
        window = torch.stack(torch.meshgrid(steps, steps, indexing="ij"), dim=-1).view(1, 2 * r + 1, 2 * r + 1, 2)
        outs, outs_t = [], []
        for lvl in range(self.levels):
            c0 = at0.reshape(b * h * w, 1, 1, 2) / 2 ** lvl + window
            c1 = at1.reshape(b * h * w, 1, 1, 2) / 2 ** lvl + window
            outs.append(self._sample(self.pyramid[lvl], c0).view(b, h, w, -1))
            outs_t.append(self._sample(self.pyramid_t[lvl], c1).view(b, h, w, -1))
        return (torch.cat(outs, -1).permute(0, 3, 1, 2).contiguous().float(),
                torch.cat(outs_t, -1).permute(0, 3, 1, 2).contiguous().float())


class _UpdateBlock(nn.Module):
    """Residual update of the intermediate feature and both flows from correlation lookups (at 1/8; ``scale`` > 1
    when the level it serves is finer)."""

    def __init__(self, cdim: int, cfg: AMTConfig, scale: int | None):
        super().__init__()
        planes = cfg.corr_levels * (2 * cfg.corr_radius + 1) ** 2
        hid = cfg.hidden_dim
        self.scale_factor = scale
        self.convc1 = nn.Conv2d(2 * planes, cfg.corr_dim, 1)
        self.convf1 = nn.Conv2d(4, 2 * cfg.flow_dim, 7, padding=3)
        self.convf2 = nn.Conv2d(2 * cfg.flow_dim, cfg.flow_dim, 3, padding=1)
        self.conv = nn.Conv2d(cfg.corr_dim + cfg.flow_dim, cfg.fc_dim, 3, padding=1)
        self.gru = nn.Sequential(nn.Conv2d(cfg.fc_dim + 4 + cdim, hid, 3, padding=1), nn.LeakyReLU(0.1),
                                 nn.Conv2d(hid, hid, 3, padding=1))
        self.feat_head = nn.Sequential(nn.Conv2d(hid, hid, 3, padding=1), nn.LeakyReLU(0.1),
                                       nn.Conv2d(hid, cdim, 3, padding=1))
        self.flow_head = nn.Sequential(nn.Conv2d(hid, hid, 3, padding=1), nn.LeakyReLU(0.1),
                                       nn.Conv2d(hid, 4, 3, padding=1))

    def forward(self, feat, flow, corr):
        s = self.scale_factor
        if s is not None:
            feat = _resize(feat, 1 / s)
        c = F.leaky_relu(self.convc1(corr), 0.1)
        f = F.leaky_relu(self.convf2(F.leaky_relu(self.convf1(flow), 0.1)), 0.1)
        x = F.leaky_relu(self.conv(torch.cat([c, f], 1)), 0.1)
        out = self.gru(torch.cat([x, flow, feat], 1))
        d_feat, d_flow = self.feat_head(out), self.flow_head(out)
        if s is not None:
            d_feat, d_flow = _resize(d_feat, s), s * _resize(d_flow, s)
        return d_feat, d_flow


# ------------------------------------------------------------------------------------- IFRNet-style decoder
class _ResBlock(nn.Module):
    """Five 3x3 convolutions; the last ``side`` channels get their own convolution twice on the way."""

    def __init__(self, ch: int, side: int):
        super().__init__()
        self.side_channels = side
        self.conv1, self.conv3 = _conv_prelu(ch, ch), _conv_prelu(ch, ch)
        self.conv2, self.conv4 = _conv_prelu(side, side), _conv_prelu(side, side)
        self.conv5 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.prelu = nn.PReLU(ch)

    def forward(self, x):
        s = self.side_channels
        out = self.conv1(x)
        out = self.conv3(torch.cat([out[:, :-s], self.conv2(out[:, -s:])], 1))
        out = self.conv5(torch.cat([out[:, :-s], self.conv4(out[:, -s:])], 1))
        return self.prelu(x + out)


class _Pyramid(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.depth = len(channels)
        prev = 3
        for i, ch in enumerate(channels, 1):
            self.add_module(f"pyramid{i}", nn.Sequential(_conv_prelu(prev, ch, 3, 2, 1), _conv_prelu(ch, ch)))
            prev = ch

    def forward(self, x):
        feats = []
        for i in range(1, self.depth + 1):
            x = getattr(self, f"pyramid{i}")(x)
            feats.append(x)
        return feats


class _InitDecoder(nn.Module):
    def __init__(self, cin: int, cout: int, side: int):
        super().__init__()
        self.convblock = nn.Sequential(_conv_prelu(2 * cin + 1, 2 * cin), _ResBlock(2 * cin, side),
                                       nn.ConvTranspose2d(2 * cin, cout + 4, 4, 2, 1))

    def forward(self, f0, f1, embt):
        b, _, h, w = f0.shape
        out = self.convblock(torch.cat([f0, f1, embt.expand(b, 1, h, w)], 1))
        return out[:, 0:2], out[:, 2:4], out[:, 4:]


class _MidDecoder(nn.Module):
    def __init__(self, cin: int, cout: int, side: int):
        super().__init__()
        self.convblock = nn.Sequential(_conv_prelu(3 * cin + 4, 3 * cin), _ResBlock(3 * cin, side),
                                       nn.ConvTranspose2d(3 * cin, cout + 4, 4, 2, 1))

    def forward(self, ft, f0, f1, flow0, flow1):
        out = self.convblock(torch.cat([ft, backward_warp(f0, flow0), backward_warp(f1, flow1), flow0, flow1], 1))
        return (out[:, 0:2] + 2.0 * _resize(flow0, 2.0), out[:, 2:4] + 2.0 * _resize(flow1, 2.0), out[:, 4:])


class _MultiFlowDecoder(nn.Module):
    """Full-resolution decoder: ``num_flows`` flow pairs, blending masks and residual images."""

    def __init__(self, cin: int, side: int, num_flows: int):
        super().__init__()
        self.num_flows = num_flows
        self.convblock = nn.Sequential(_conv_prelu(3 * cin + 4, 3 * cin), _ResBlock(3 * cin, side),
                                       nn.ConvTranspose2d(3 * cin, 8 * num_flows, 4, 2, 1))

    def forward(self, ft, f0, f1, flow0, flow1):
        n = self.num_flows
        out = self.convblock(torch.cat([ft, backward_warp(f0, flow0), backward_warp(f1, flow1), flow0, flow1], 1))
        d0, d1, mask, res = torch.split(out, [2 * n, 2 * n, n, 3 * n], 1)
        flow0 = d0 + 2.0 * _resize(flow0, 2.0).repeat(1, n, 1, 1)
        flow1 = d1 + 2.0 * _resize(flow1, 2.0).repeat(1, n, 1, 1)
        return flow0, flow1, torch.sigmoid(mask), res


# ----------------------------------------------------------------------------------------------------- model
class AMTS(nn.Module):
    """AMT-S. ``forward(img0, img1, embt, scale_factor=1.0)`` -> the frame at time ``embt`` (B, 3, H, W), 0..1."""

    def __init__(self, cfg: AMTConfig = AMT_S):
        super().__init__()
        self.cfg = cfg
        c, side = cfg.channels, cfg.skip_channels
        self.feat_encoder = _FeatureEncoder(cfg.feat_channels, cfg.feat_dim)
        self.encoder = _Pyramid(c)
        self.decoder4 = _InitDecoder(c[3], c[2], side)
        self.decoder3 = _MidDecoder(c[2], c[1], side)
        self.decoder2 = _MidDecoder(c[1], c[0], side)
        self.decoder1 = _MultiFlowDecoder(c[0], side, cfg.num_flows)
        self.update4 = _UpdateBlock(c[2], cfg, None)
        self.update3 = _UpdateBlock(c[1], cfg, 2)
        self.update2 = _UpdateBlock(c[0], cfg, 4)
        n = cfg.num_flows
        self.comb_block = nn.Sequential(nn.Conv2d(3 * n, 6 * n, 3, 1, 1), nn.PReLU(6 * n), nn.Conv2d(6 * n, 3, 3, 1, 1))

    @staticmethod
    def _lookup(corr, grid, flow0, flow1, embt, down: int):
        if down != 1:
            flow0, flow1 = _resize(flow0, 1 / down) / down, _resize(flow1, 1 / down) / down
        c0, c1 = corr(grid + flow1 / embt, grid + flow0 / (1.0 - embt))
        return torch.cat([c0, c1], 1), torch.cat([flow0, flow1], 1)

    def _refine(self, update, corr, grid, flow0, flow1, ft, embt, down):
        c, f = self._lookup(corr, grid, flow0, flow1, embt, down)
        d_ft, d_flow = update(ft, f, c)
        d0, d1 = torch.chunk(d_flow, 2, 1)
        return flow0 + d0, flow1 + d1, ft + d_ft

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, embt: torch.Tensor,
                scale_factor: float = 1.0) -> torch.Tensor:
        mean = torch.cat([img0, img1], 2).mean(1, keepdim=True).mean(2, keepdim=True).mean(3, keepdim=True)
        img0, img1 = img0 - mean, img1 - mean
        x0 = _resize(img0, scale_factor) if scale_factor != 1.0 else img0
        x1 = _resize(img1, scale_factor) if scale_factor != 1.0 else img1
        b, _, h, w = x0.shape
        grid = pixel_grid(b, h // 8, w // 8, img0.device)
        fmaps = self.feat_encoder(torch.cat([x0, x1], 0))
        corr = BidirectionalCorrelation(fmaps[:b], fmaps[b:], self.cfg.corr_levels, self.cfg.corr_radius)
        f0, f1 = self.encoder(x0), self.encoder(x1)

        flow0, flow1, ft = self.decoder4(f0[3], f1[3], embt)
        flow0, flow1, ft = self._refine(self.update4, corr, grid, flow0, flow1, ft, embt, 1)
        flow0, flow1, ft = self.decoder3(ft, f0[2], f1[2], flow0, flow1)
        flow0, flow1, ft = self._refine(self.update3, corr, grid, flow0, flow1, ft, embt, 2)
        flow0, flow1, ft = self.decoder2(ft, f0[1], f1[1], flow0, flow1)
        flow0, flow1, ft = self._refine(self.update2, corr, grid, flow0, flow1, ft, embt, 4)
        flow0, flow1, mask, res = self.decoder1(ft, f0[0], f1[0], flow0, flow1)
        if scale_factor != 1.0:
            inv = 1.0 / scale_factor
            flow0, flow1 = _resize(flow0, inv) * inv, _resize(flow1, inv) * inv
            mask, res = _resize(mask, inv), _resize(res, inv)
        return torch.clamp(self._combine(img0, img1, flow0, flow1, mask, res, mean), 0, 1)

    def _combine(self, img0, img1, flow0, flow1, mask, res, mean):
        """Warp both frames by each of the ``num_flows`` flow pairs, blend by the masks, add the residuals and the
        mean back; the average of the candidates plus a learned correction."""
        b, c, h, w = flow0.shape
        n = c // 2
        flow0, flow1 = flow0.reshape(b * n, 2, h, w), flow1.reshape(b * n, 2, h, w)
        mask, res = mask.reshape(b * n, 1, h, w), res.reshape(b * n, 3, h, w)
        rep = lambda t: t.unsqueeze(1).expand(b, n, *t.shape[1:]).reshape(b * n, *t.shape[1:])  # noqa: E731
        warped = mask * backward_warp(rep(img0), flow0) + (1 - mask) * backward_warp(rep(img1), flow1)
        cands = (warped + rep(mean) + res).reshape(b, n, 3, h, w)
        return cands.mean(1) + self.comb_block(cands.view(b, n * 3, h, w))


# ---------------------------------------------------------------------------------------------------- loading
def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors, or from a torch checkpoint (data only) with or without a ``state_dict`` key
    (the released ``amt-s.pth`` has one); a ``module.`` prefix is dropped."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        import pickle

        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ValueError(f"{path}: holds objects other than tensors and plain containers, which are not loaded "
                             f"(data-only loading); save its state dict as safetensors and pass that file "
                             f"({str(exc).splitlines()[0]})") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}


def load_amt_s(path: Path, *, device: torch.device, cfg: AMTConfig = AMT_S) -> AMTS:
    """AMT-S with the weights in ``path`` (strict: every key and shape must match). A ``amt_config.json`` beside the
    file (tiny stand-ins) gives other widths."""
    import json

    cfg_file = Path(path).parent / "amt_config.json"
    if cfg_file.exists():
        widths = json.loads(cfg_file.read_text())
        cfg = AMTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in widths.items()})
    model = AMTS(cfg)
    model.load_state_dict(read_state_dict(path), strict=True)
    logger.info("loaded AMT-S from %s (%s)", path, device)
    return model.to(device).eval()

