"""A scatter plot with labelled points and connected series, drawn with Pillow (the toolkit has no plotting
dependency): enough for a trade-off curve in a result folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vm_common.io_utils import atomic_output

PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207),
           (140, 86, 75), (127, 127, 127)]


@dataclass
class Series:
    """Points (x, y) drawn in one colour and joined in order; ``labels`` are written beside the points."""

    name: str
    points: list[tuple[float, float]]
    labels: list[str] = field(default_factory=list)
    connect: bool = True
    marker: str = "circle"  # circle | square | cross


def _ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    import math

    span = max(hi - lo, 1e-9)
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def scatter_png(path: Path, series: list[Series], *, title: str, xlabel: str, ylabel: str,
                xlim: tuple[float, float], ylim: tuple[float, float], size: tuple[int, int] = (1100, 760),
                hlines: list[tuple[float, str]] = (), vlines: list[tuple[float, str]] = ()) -> Path:
    """Write a PNG scatter plot of ``series`` (x right, y up) with axes, ticks, optional reference lines and a
    legend."""
    width, height = size
    left, right, top, bottom = 90, 260, 50, 70
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font, small = ImageFont.load_default(size=16), ImageFont.load_default(size=12)

    def px(x: float, y: float) -> tuple[float, float]:
        fx = (x - xlim[0]) / (xlim[1] - xlim[0])
        fy = (y - ylim[0]) / (ylim[1] - ylim[0])
        return left + fx * (width - left - right), height - bottom - fy * (height - top - bottom)

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for t in _ticks(*xlim):
        x, _ = px(t, ylim[0])
        draw.line([x, height - bottom, x, height - bottom + 5], fill="black")
        draw.line([x, top, x, height - bottom], fill=(235, 235, 235))
        draw.text((x, height - bottom + 8), f"{t:g}", fill="black", font=small, anchor="mt")
    for t in _ticks(*ylim):
        _, y = px(xlim[0], t)
        draw.line([left - 5, y, left, y], fill="black")
        draw.line([left, y, width - right, y], fill=(235, 235, 235))
        draw.text((left - 8, y), f"{t:g}", fill="black", font=small, anchor="rm")
    for value, name in hlines:
        _, y = px(xlim[0], value)
        draw.line([left, y, width - right, y], fill=(120, 120, 120), width=1)
        draw.text((width - right - 4, y - 3), name, fill=(90, 90, 90), font=small, anchor="rb")
    for value, name in vlines:
        x, _ = px(value, ylim[0])
        draw.line([x, top, x, height - bottom], fill=(120, 120, 120), width=1)
        draw.text((x + 4, top + 4), name, fill=(90, 90, 90), font=small, anchor="lt")
    draw.text(((left + width - right) / 2, height - 25), xlabel, fill="black", font=font, anchor="mm")
    draw.text((width / 2, 22), title, fill="black", font=font, anchor="mm")
    label_img = Image.new("RGB", (height - top - bottom, 24), "white")
    ImageDraw.Draw(label_img).text((label_img.width / 2, 12), ylabel, fill="black", font=font, anchor="mm")
    img.paste(label_img.rotate(90, expand=True), (18, top))

    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        pts = [px(x, y) for x, y in s.points]
        if s.connect and len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        for j, (x, y) in enumerate(pts):
            if s.marker == "square":
                draw.rectangle([x - 5, y - 5, x + 5, y + 5], fill=colour)
            elif s.marker == "cross":
                draw.line([x - 6, y - 6, x + 6, y + 6], fill=colour, width=3)
                draw.line([x - 6, y + 6, x + 6, y - 6], fill=colour, width=3)
            else:
                draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour)
            if j < len(s.labels) and s.labels[j]:
                draw.text((x + 7, y - 7), s.labels[j], fill=colour, font=small, anchor="lb")
        ly = top + 10 + i * 22
        draw.line([width - right + 15, ly, width - right + 40, ly], fill=colour, width=3)
        draw.text((width - right + 46, ly), s.name, fill="black", font=small, anchor="lm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        img.save(tmp, format="PNG")
    return path
