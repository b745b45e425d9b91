"""Write every output of a run folder (or of several runs side by side) from samples.jsonl rows only."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from vm_common.errors import InputFileError
from vm_common.io_utils import atomic_write_json, atomic_write_text, dumps_row

from .aggregate import aggregate
from .charts import write_charts
from .html_report import render_html
from .store import read_samples
from .tables import to_csv, to_latex, to_markdown

logger = logging.getLogger(__name__)

OUTPUTS = ("samples.jsonl", "summary.json", "table.md", "table.csv", "table.tex", "report.html", "run.json")
# and chart_<kind>.png: one bar chart per method of each subject kind (vm_eval.charts), embedded in report.html


def _load_runs(run_dirs: list[Path]) -> list[tuple[Path, list[dict], dict]]:
    runs = []
    for d in run_dirs:
        d = Path(d)
        if not d.is_dir():
            raise InputFileError(f"run folder not found: {d}")
        rows = read_samples(d)
        if not rows:
            raise InputFileError(f"no rows in {d / 'samples.jsonl'} (nothing scored yet?)")
        meta = json.loads((d / "run.json").read_text()) if (d / "run.json").exists() else {}
        runs.append((d, rows, meta))
    # the same method name in two runs would merge: name them apart by folder
    seen: dict[str, list[Path]] = {}
    for d, rows, _ in runs:
        for m in {r.get("method") for r in rows}:
            seen.setdefault(m, []).append(d)
    for d, rows, _ in runs:
        for r in rows:
            if len(seen[r.get("method")]) > 1:
                r["method"] = f"{r.get('method')} ({d.name})"
    return runs


def write_report(run_dirs: list[Path], out_dir: Path, *, layout: str = "paper", title: str | None = None) -> dict:
    """summary.json, table.md/csv/tex and report.html in ``out_dir`` (plus merged samples.jsonl and run.json when
    ``out_dir`` is not the single run folder itself). Returns the summary."""
    out_dir = Path(out_dir)
    runs = _load_runs([Path(d) for d in run_dirs])
    all_rows = [r for _, rows, _ in runs for r in rows]
    summary = aggregate(all_rows)
    summary["runs"] = [{"dir": str(d), "rows": len(rows), **{k: meta.get(k) for k in
                        ("benchmark", "preset", "protocol", "flow", "random_weights") if k in meta}}
                       for d, rows, meta in runs]
    summary["layout"] = layout
    out_dir.mkdir(parents=True, exist_ok=True)
    same_dir = len(runs) == 1 and runs[0][0].resolve() == out_dir.resolve()
    if not same_dir:  # a combined folder: rows with paths that resolve from here, and what it was built from
        combined = []
        for d, rows, _ in runs:
            for r in rows:
                r2 = dict(r)
                for key in ("video", "reference", "reference_for_model"):
                    if r2.get(key) and not Path(r2[key]).is_absolute():
                        r2[key] = str((d / r2[key]).resolve())
                combined.append(r2)
        atomic_write_text(out_dir / "samples.jsonl", "".join(dumps_row(r) + "\n" for r in combined))
        atomic_write_json(out_dir / "run.json", {"command": "report", "layout": layout,
                                                 "runs": [{"dir": str(d), **meta} for d, _, meta in runs]})
    atomic_write_json(out_dir / "summary.json", summary)
    atomic_write_text(out_dir / "table.md", to_markdown(summary, layout))
    atomic_write_text(out_dir / "table.csv", to_csv(summary, layout))
    atomic_write_text(out_dir / "table.tex", to_latex(summary, layout))
    metas = [dict(meta, _dir=str(d)) for d, _, meta in runs]
    charts = write_charts(summary, out_dir, layout)
    page = render_html([(d, rows) for d, rows, _ in runs], summary, out_dir, layout=layout, run_meta=metas,
                       title=title or "VideoMaker benchmark report", charts=charts)
    atomic_write_text(out_dir / "report.html", page)
    logger.info("wrote %s", ", ".join(str(out_dir / f) for f in OUTPUTS[1:6]))
    return summary
