"""One bar chart per method of a report: ``chart_<kind>.png`` beside report.html (and embedded in it).

For each subject kind of the summary (human, object, toy) one PNG with a panel per method; in a panel one bar per
metric, grouped and coloured by suite (the paper's metrics, VBench, OpenS2V-Eval, ...; the same blocks as the
tables, :func:`vm_eval.tables.table_blocks`), the value written beside it. Metrics have their own ranges, so each
bar is drawn on its metric's axis: [0, 1] when every method's value lies in it (similarities, consistencies,
fractions), else [0, the largest value of any method] (say OpenS2V's raw aesthetic score, about 4..7), written as
``/max`` beside the value; "(lower=better)" marks a metric where lower is better. Drawn with Pillow: the toolkit
has no plotting dependency.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vm_common.io_utils import atomic_output

from .metrics import get_metric
from .tables import format_value, table_blocks

logger = logging.getLogger(__name__)

SUITE_COLOURS = {"paper": (31, 119, 180), "vbench": (44, 160, 44), "opens2v": (214, 39, 40),
                 "copy": (148, 103, 189), "multi": (255, 127, 14)}
OTHER_COLOUR = (127, 127, 127)
PANEL_W, ROW_H, HEAD_H, LABEL_W, BAR_W, PER_ROW = 470, 22, 34, 190, 200, 3


def chart_data(summary: dict, layout: str = "paper") -> dict[str, dict]:
    """kind -> {"methods": [...], "sections": [(suite, title, [(metric, axis_max, [value per method])])]}."""
    out: dict[str, dict] = {}
    for b in table_blocks(summary, layout):
        kind = out.setdefault(b["kind"], {"methods": [], "sections": []})
        for r in b["rows"]:
            if r["method"] not in kind["methods"]:
                kind["methods"].append(r["method"])
        metrics = []
        for j, m in enumerate(b["columns"]):
            by_method = {r["method"]: r["values"][j] for r in b["rows"]}
            values = [v for v in by_method.values() if v is not None]
            top = 1.0 if all(0.0 <= v <= 1.0 for v in values) else max([abs(v) for v in values] + [1e-9])
            metrics.append((m, top, by_method))
        kind["sections"].append((b.get("suite", "paper"), b["title"], metrics))
    for kind in out.values():  # values in the order of the kind's methods
        kind["sections"] = [(s, t, [(m, top, [vals.get(meth) for meth in kind["methods"]]) for m, top, vals in ms])
                            for s, t, ms in kind["sections"]]
    return out


def _suite_name(title: str) -> str:
    """The part of a block title after the kind: 'Human (Table 1 layout) - VBench (...)' -> 'VBench (...)'."""
    return title.split(" - ", 1)[1] if " - " in title else title


def draw_chart(data: dict, title: str) -> Image.Image:
    methods, sections = data["methods"], data["sections"]
    rows = sum(1 + len(ms) for _, _, ms in sections)
    panel_h = HEAD_H + rows * ROW_H + 10
    cols = min(PER_ROW, len(methods))
    grid_rows = (len(methods) + cols - 1) // cols
    img = Image.new("RGB", (cols * PANEL_W + 20, grid_rows * panel_h + 50), "white")
    draw = ImageDraw.Draw(img)
    font, small = ImageFont.load_default(size=16), ImageFont.load_default(size=12)
    draw.text((10, 12), title, fill="black", font=font)
    for i, method in enumerate(methods):
        x0, y0 = 10 + (i % cols) * PANEL_W, 45 + (i // cols) * panel_h
        draw.rectangle([x0, y0, x0 + PANEL_W - 10, y0 + panel_h - 6], outline=(200, 200, 200))
        draw.text((x0 + 8, y0 + 8), _fit(draw, method, font, PANEL_W - 30), fill="black", font=font)
        y = y0 + HEAD_H
        for suite, block_title, metrics in sections:
            colour = SUITE_COLOURS.get(suite, OTHER_COLOUR)
            draw.text((x0 + 8, y + 4), _fit(draw, _suite_name(block_title), small, PANEL_W - 30), fill=colour,
                      font=small)
            y += ROW_H
            for metric, top, values in metrics:
                spec = get_metric(metric)
                label = spec.label + ("" if spec.higher_is_better else " (lower=better)")
                draw.text((x0 + 14, y + ROW_H / 2), _fit(draw, label, small, LABEL_W - 10), fill="black", font=small,
                          anchor="lm")
                bx = x0 + LABEL_W
                draw.rectangle([bx, y + 4, bx + BAR_W, y + ROW_H - 4], outline=(220, 220, 220))
                v = values[i]
                if v is not None:
                    frac = max(0.0, min(1.0, abs(v) / top))
                    draw.rectangle([bx, y + 4, bx + frac * BAR_W, y + ROW_H - 4], fill=colour)
                draw.text((bx + BAR_W + 6, y + ROW_H / 2), format_value(v) + ("" if top == 1.0 else f" /{top:.3g}"),
                          fill="black", font=small, anchor="lm")
                y += ROW_H
    return img


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def write_charts(summary: dict, out_dir: Path, layout: str = "paper") -> list[Path]:
    """``out_dir/chart_<kind>.png`` for each subject kind with scores; returns the paths written."""
    paths = []
    for kind, data in chart_data(summary, layout).items():
        if not data["methods"] or not data["sections"]:
            continue
        path = Path(out_dir) / f"chart_{kind}.png"
        img = draw_chart(data, f"{kind.capitalize()} subjects: every metric per method (bars on each metric's axis)")
        with atomic_output(path) as tmp:
            img.save(tmp, format="PNG")
        paths.append(path)
    if paths:
        logger.info("wrote %s", ", ".join(str(p) for p in paths))
    return paths
