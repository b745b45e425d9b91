"""report.html: one self-contained page (no CDN, no external files needed for small runs).

Summary tables (best bold, second underlined), one bar chart per method for each subject kind (the
``chart_<kind>.png`` written beside the page, embedded as data URIs; :mod:`vm_eval.charts`), then per subject its reference image and its generated videos with
their metric values, in tables sortable by clicking a column header (or by opening ``report.html#sort=clip_t:desc``).
Reference images are embedded as downscaled data URIs; GIF/MP4 videos up to ``embed_max_bytes`` each are embedded
as data URIs, bigger ones are linked by relative path.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
from collections import OrderedDict
from pathlib import Path
from string import Template

from PIL import Image

from vm_common.status import OK

from .metrics import METRICS, get_metric
from .tables import DIS_NOTE, RANDOM_NOTE, TOY_NOTE, VBENCH_NOTE, format_value, table_blocks

logger = logging.getLogger(__name__)

EMBED_MAX_BYTES = 4 * 1024 * 1024


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _thumb_data_uri(path: Path, size: int = 256) -> str | None:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _video_cell(path: Path, out_dir: Path, embed_max: int) -> str:
    if not path.is_file() or path.stat().st_size == 0:
        return '<span class="error">missing</span>'
    ext = path.suffix.lower()
    if path.stat().st_size <= embed_max and ext in (".gif", ".mp4", ".webm"):
        mime = {".gif": "image/gif", ".mp4": "video/mp4", ".webm": "video/webm"}[ext]
        src = f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    else:
        src = Path(os.path.relpath(path, out_dir)).as_posix()
    if ext == ".gif":
        return f'<img class="vid" alt="{_e(path.name)}" src="{src}">'
    return f'<video class="vid" src="{src}" autoplay loop muted playsinline controls></video>'


def _summary_html(summary: dict, layout: str) -> str:
    parts = []
    for b in table_blocks(summary, layout):
        cols = b["columns"]
        head = "".join(f'<th data-key="{m}">{_e(get_metric(m).label)}</th>' for m in cols)
        body = []
        for r in b["rows"]:
            cells = []
            for v, k, m in zip(r["values"], r["ranks"], cols):
                s = r["group"]["metrics"].get(m, {})
                text = format_value(v)
                text = f"<b>{text}</b>" if k == 1 else (f"<u>{text}</u>" if k == 2 else text)
                title = f"{s.get('n_valid', 0)}/{s.get('n_total', 0)} videos valid, {s.get('n_subjects', 0)} subjects"
                cells.append(f'<td data-sort="{"" if v is None else v}" title="{_e(title)}">{text}</td>')
            body.append(f'<tr><td data-sort="{_e(r["method"])}">{_e(r["method"])}</td>{"".join(cells)}</tr>')
        parts.append(f'<h2>{_e(b["title"])}</h2><table class="sortable summary" data-kind="{b["kind"]}">'
                     f'<thead><tr><th data-key="method">Method</th>{head}</tr></thead>'
                     f'<tbody>{"".join(body)}</tbody></table>')
        if "face_sim" in cols:
            rates = []
            for r in b["rows"]:
                fd = r["group"]["metrics"].get("face_sim", {}).get("face_detection") or {}
                if fd.get("frames"):
                    rates.append(f"{_e(r['method'])}: faces detected in {fd['frames_with_face']}/{fd['frames']} "
                                 f"frames, {fd['videos_with_face']}/{fd['videos']} videos")
            if rates:
                parts.append('<p class="meta">' + "<br>".join(rates) + "</p>")
        if "dd_dis" in cols:
            parts.append(f'<p class="meta">{_e(DIS_NOTE)}</p>')
        if b["kind"] == "toy":
            parts.append(f'<p class="meta">{_e(TOY_NOTE)}</p>')
        if b.get("suite") == "vbench":
            parts.append(f'<p class="meta">{_e(VBENCH_NOTE)}</p>')
    return "\n".join(parts)


def _value_cell(row: dict | None) -> str:
    if row is None:
        return '<td data-sort="">-</td>'
    if row.get("status") == OK:
        v = float(row["value"])
        return f'<td data-sort="{v}">{v:.4f}</td>'
    st = _e(row.get("status"))
    return f'<td class="{st}" data-sort="" title="{_e(row.get("reason", ""))}">{st}</td>'


def render_html(runs: list[tuple[Path, list[dict]]], summary: dict, out_dir: Path, *, title: str = "VideoMaker "
                "benchmark report", layout: str = "paper", run_meta: list[dict] | None = None,
                embed_max_bytes: int = EMBED_MAX_BYTES, charts: list[Path] | None = None) -> str:
    """``runs``: (run folder, its rows) pairs; video/reference paths in rows are relative to their run folder.
    ``charts``: PNG files (in ``out_dir``) shown after the summary tables."""
    out_dir = Path(out_dir)
    parts = []
    if summary.get("random_weights"):
        parts.append(f'<p class="banner">{_e(RANDOM_NOTE)}</p>')
    for meta in run_meta or []:
        bits = [f"{k}: {_e(meta[k])}" for k in ("benchmark", "preset", "protocol", "flow", "method") if k in meta]
        generation = meta.get("generation") or {}  # the guidance and reference-injection controls of the run
        bits += [f"{k}: {_e(generation[k])}" for k in ("guidance_scale", "reference_guidance_scale",
                                                        "injection_schedule") if k in generation]
        parts.append(f'<p class="meta">run {_e(meta.get("_dir", ""))}: {"; ".join(bits)}</p>')
    parts.append(_summary_html(summary, layout))
    for chart in charts or []:
        data = base64.b64encode(Path(chart).read_bytes()).decode("ascii")
        parts.append(f'<h2>Chart: {_e(Path(chart).stem)}</h2><p class="meta">Every metric per method, grouped by suite '
                     f'(file: <a href="{_e(Path(chart).name)}">{_e(Path(chart).name)}</a>)</p>'
                     f'<img class="chart" alt="{_e(Path(chart).stem)}" src="data:image/png;base64,{data}">')
    # per subject: reference + videos
    subjects: "OrderedDict[str, list[tuple[Path, list[dict]]]]" = OrderedDict()
    for run_dir, rows in runs:
        by_video: "OrderedDict[tuple, list[dict]]" = OrderedDict()
        for r in rows:
            by_video.setdefault((r.get("method"), r.get("sample_id")), []).append(r)
        for vrows in by_video.values():
            subjects.setdefault(str(vrows[0].get("subject")), []).append((run_dir, vrows))
    parts.append("<h2>Per subject</h2>")
    metrics = [m for m in METRICS if any(r.get("metric") == m for _, rs in runs for r in rs)]
    for subject, videos in subjects.items():
        run_dir, first = videos[0]
        ref_path = _resolve(run_dir, first[0].get("reference"))
        figs = []
        uri = _thumb_data_uri(ref_path) if ref_path else None
        figs.append(f'<figure><img class="ref" alt="reference {_e(subject)}" src="{uri}"><figcaption>reference'
                    f'</figcaption></figure>' if uri else f'<p class="error">reference not found: {_e(ref_path)}</p>')
        model_ref = first[0].get("reference_for_model")
        if model_ref:
            uri2 = _thumb_data_uri(_resolve(run_dir, model_ref))
            prep = first[0].get("reference_preprocessing") or {}
            cap = f"model input ({_e(prep.get('method', ''))}{', ' + _e(prep['reason']) if prep.get('reason') else ''})"
            if uri2:
                figs.append(f'<figure><img class="ref" alt="model input {_e(subject)}" src="{uri2}">'
                            f'<figcaption>{cap}</figcaption></figure>')
        head = ('<th data-key="video">Video</th><th data-key="method">Method</th><th data-key="category">Category</th>'
                '<th data-key="prompt">Prompt</th><th data-key="seed">Seed</th>'
                + "".join(f'<th data-key="{m}">{_e(get_metric(m).label)}</th>' for m in metrics))
        body = []
        for run_dir, vrows in videos:
            r0 = vrows[0]
            by_metric = {r.get("metric"): r for r in vrows}
            video = _resolve(run_dir, r0.get("video"))
            body.append(
                f'<tr data-sample="{_e(r0.get("sample_id"))}"><td data-sort="{_e(r0.get("sample_id"))}">'
                f'{_video_cell(video, out_dir, embed_max_bytes) if video else "-"}</td>'
                f'<td>{_e(r0.get("method"))}</td><td>{_e(r0.get("category") or "")}</td>'
                f'<td class="prompt">{_e(r0.get("prompt") or "")}</td><td>{_e(r0.get("seed", ""))}</td>'
                + "".join(_value_cell(by_metric.get(m)) for m in metrics) + "</tr>")
        parts.append(f'<section class="subject-section" id="subject-{_e(subject)}"><h3>{_e(subject)}</h3>'
                     f'<div class="subject">{"".join(figs)}<table class="sortable videos" data-subject="{_e(subject)}">'
                     f'<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div></section>')
    template = Template((Path(__file__).resolve().parent / "templates" / "report.html").read_text(encoding="utf-8"))
    return template.safe_substitute(title=_e(title), body="\n".join(parts))


def _resolve(run_dir: Path, path: str | None) -> Path | None:
    if not path:
        return None
    p = Path(path)
    return p if p.is_absolute() else Path(run_dir) / p
