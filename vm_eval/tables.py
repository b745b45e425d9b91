"""Tables in the paper's layouts from a summary (:func:`vm_eval.aggregate.aggregate`): Markdown, CSV, LaTeX.

Table 1 layout for human subjects (CLIP-T, Face Sim, CLIP-I, DINO-I, T.Cons, DD), Table 2 for objects (no Face
Sim), Table 3 (ablation) = Table 1's columns with rows in the order given; toy subjects get the toy benchmark's
columns (fidelity error, motion direction). In each column the best value is bold and the second underlined
(direction from the metric registry). Below: per-category breakdown and the counts (n_valid/n_total per metric,
face-detection rate).
"""

from __future__ import annotations

import csv
import io

from .metrics import KIND_COLUMNS, KINDS, OBJECT_COLUMNS, SUITE_COLUMNS, SUITE_LABELS, get_metric

LAYOUTS = ("paper", "ablation")
DIS_NOTE = "DD (DIS): OpenCV DIS flow instead of RAFT; NOT comparable with the paper's DD."
RANDOM_NOTE = "RANDOM WEIGHTS (tiny preset): these numbers are meaningless; they only show the pipeline works."
VBENCH_NOTE = ("VBench: subject / background consistency, motion smoothness, aesthetic and imaging quality computed "
               "as VBench's own code does (DINO ViT-B/16, CLIP ViT-B/32, AMT-S, LAION aesthetic head on CLIP "
               "ViT-L/14, MUSIQ/100; per-video values in [0, 1]); "
               "not the paper's protocol (docs/eval.md).")
TOY_NOTE = ("Toy: Fidelity err. = colour earth mover's distance (RGB 0..255) between the generated subject and the "
            "reference subject (lower is better); Motion dir. = fraction of videos moving in the captioned direction.")


def _columns(kind: str, present: set[str]) -> list[str]:
    base = KIND_COLUMNS.get(kind, OBJECT_COLUMNS)
    cols = []
    for m in base:
        if m == "dd" and "dd" not in present and "dd_dis" in present:
            cols.append("dd_dis")
        elif m in present:
            cols.append(m)
    return cols


def _title(kind: str, layout: str) -> str:
    if kind == "toy":
        return "Toy (fidelity error vs the reference, motion direction vs the caption)"
    if layout == "ablation":
        return "Ablation (Table 3 layout, human)" if kind == "human" else "Ablation (object)"
    return "Human (Table 1 layout)" if kind == "human" else "Object (Table 2 layout)"


def _ranks(values: list[float | None], higher: bool) -> list[int | None]:
    """1 for the best distinct value, 2 for the second, else None (ranks only when 2+ values exist)."""
    distinct = sorted({round(v, 4) for v in values if v is not None}, reverse=higher)
    if len([v for v in values if v is not None]) < 2:
        return [None] * len(values)
    rank = {v: i + 1 for i, v in enumerate(distinct[:2])}
    return [rank.get(round(v, 4)) if v is not None else None for v in values]


def format_value(v: float | None) -> str:
    """A metric value as the tables and the report show it: four decimals, ``n/a`` for none."""
    return "n/a" if v is None else f"{v:.4f}"


def _mark(text: str, rank: int | None, style: str) -> str:
    if rank == 1:
        return {"md": f"**{text}**", "tex": f"\\textbf{{{text}}}"}[style]
    if rank == 2:
        return {"md": f"<u>{text}</u>", "tex": f"\\underline{{{text}}}"}[style]
    return text


def table_blocks(summary: dict, layout: str = "paper") -> list[dict]:
    """One block per benchmark kind: columns, rows (method, values, ranks), categories, counts."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown table layout {layout!r}; expected one of {LAYOUTS}")
    blocks = []
    for kind in KINDS:
        groups = [g for g in summary["groups"] if g["kind"] == kind]
        if not groups:
            continue
        present = {m for g in groups for m in g["metrics"]}
        suites = [("paper", _columns(kind, present))]
        suites += [(s, [m for m in cols if m in present]) for s, cols in SUITE_COLUMNS.items()]
        for suite, cols in suites:
            if not cols:
                continue
            values = [[g["metrics"].get(m, {}).get("value") for m in cols] for g in groups]
            ranks_by_col = [_ranks([row[j] for row in values], get_metric(m).higher_is_better)
                            for j, m in enumerate(cols)]
            rows = [{"method": g["method"], "values": values[i], "ranks": [rc[i] for rc in ranks_by_col],
                     "group": g} for i, g in enumerate(groups)]
            label = "" if kind == "toy" else SUITE_LABELS.get(suite, suite)  # the toy's metrics are its own
            title = _title(kind, layout) + (f" - {label}" if label else "")
            blocks.append({"kind": kind, "suite": suite, "title": title, "columns": cols, "rows": rows})
    return blocks


def _md_table(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines)


def to_markdown(summary: dict, layout: str = "paper") -> str:
    out: list[str] = []
    notes: set[str] = set()
    if summary.get("random_weights"):
        out.append(f"> {RANDOM_NOTE}\n")
    for b in table_blocks(summary, layout):
        cols = b["columns"]
        if "dd_dis" in cols:
            notes.add(DIS_NOTE)
        if b["kind"] == "toy":
            notes.add(TOY_NOTE)
        if b.get("suite") == "vbench":
            notes.add(VBENCH_NOTE)
        labels = [get_metric(m).label + ("↑" if get_metric(m).higher_is_better else "↓") for m in cols]
        out.append(f"## {b['title']}\n")
        out.append(_md_table(["Method"] + labels,
                             [[r["method"]] + [_mark(format_value(v), k, "md")
                                               for v, k in zip(r["values"], r["ranks"])]
                              for r in b["rows"]]))
        # counts
        out.append(f"\n### {b['title']}: counts\n")
        head = ["Method", "videos", "subjects"] + [get_metric(m).label + " n_valid/n_total" for m in cols]
        if "face_sim" in cols:
            head += ["face frames detected", "videos with a face"]
        body = []
        for r in b["rows"]:
            g = r["group"]
            cells = [r["method"], str(g["n_videos"]), str(g["n_subjects"])]
            cells += [f"{g['metrics'][m]['n_valid']}/{g['metrics'][m]['n_total']}" if m in g["metrics"] else "-"
                      for m in cols]
            if "face_sim" in cols:
                fd = g["metrics"].get("face_sim", {}).get("face_detection") or {}
                fr, vr = fd.get("frame_rate"), fd.get("video_rate")
                cells.append("-" if fr is None else f"{fd['frames_with_face']}/{fd['frames']} ({fr:.1%})")
                cells.append("-" if vr is None else f"{fd['videos_with_face']}/{fd['videos']} ({vr:.1%})")
            body.append(cells)
        out.append(_md_table(head, body))
        # per-category breakdown
        cats = sorted({c for r in b["rows"] for c in r["group"]["categories"]})
        if cats:
            out.append(f"\n### {b['title']}: per category\n")
            body = []
            for c in cats:
                crow_vals = [[r["group"]["categories"].get(c, {}).get(m, {}).get("value") for m in cols]
                             for r in b["rows"]]
                cranks = [_ranks([row[j] for row in crow_vals], get_metric(m).higher_is_better)
                          for j, m in enumerate(cols)]
                for i, r in enumerate(b["rows"]):
                    body.append([c, r["method"]] + [_mark(format_value(v), cranks[j][i], "md")
                                                    for j, v in enumerate(crow_vals[i])])
            out.append(_md_table(["Category", "Method"] + labels, body))
        out.append("")
    out.append("Best value in **bold**, second <u>underlined</u>. Aggregation: per video -> per subject -> mean over "
               "subjects (Face Sim: subjects without any face left out); DD = fraction of dynamic videos.")
    out.extend(sorted(notes))
    return "\n".join(out).rstrip() + "\n"


def to_csv(summary: dict, layout: str = "paper") -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["table", "method", "category", "metric", "label", "value", "n_valid", "n_total", "n_subjects",
                "rank", "paper_comparable", "random_weights"])
    for b in table_blocks(summary, layout):
        for r in b["rows"]:
            g = r["group"]
            for j, m in enumerate(b["columns"]):
                s = g["metrics"].get(m, {})
                w.writerow([b["title"], r["method"], "all", m, get_metric(m).label, _csv_num(s.get("value")),
                            s.get("n_valid", 0), s.get("n_total", 0), s.get("n_subjects", 0), r["ranks"][j] or "",
                            get_metric(m).paper_comparable, summary.get("random_weights", False)])
            for c, cm in g["categories"].items():
                for m in b["columns"]:
                    s = cm.get(m, {})
                    w.writerow([b["title"], r["method"], c, m, get_metric(m).label, _csv_num(s.get("value")),
                                s.get("n_valid", 0), s.get("n_total", 0), s.get("n_subjects", 0), "",
                                get_metric(m).paper_comparable, summary.get("random_weights", False)])
    return buf.getvalue()


def _csv_num(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def _tex_escape(text: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("$", "\\$"), ("#", "\\#"),
                 ("_", "\\_"), ("{", "\\{"), ("}", "\\}"), ("~", "\\textasciitilde{}"), ("^", "\\^{}")):
        text = text.replace(a, b)
    return text


def to_latex(summary: dict, layout: str = "paper") -> str:
    out = ["% generated by `vm bench report`; needs \\usepackage{booktabs}"]
    if summary.get("random_weights"):
        out.append(f"% {RANDOM_NOTE}")
    for b in table_blocks(summary, layout):
        cols = b["columns"]
        labels = [_tex_escape(get_metric(m).label) + ("$\\uparrow$" if get_metric(m).higher_is_better
                                                       else "$\\downarrow$") for m in cols]
        out += ["\\begin{table}[t]", "\\centering", f"\\caption{{{_tex_escape(b['title'])}}}",
                "\\begin{tabular}{l" + "c" * len(cols) + "}", "\\toprule",
                "Method & " + " & ".join(labels) + " \\\\", "\\midrule"]
        for r in b["rows"]:
            cells = [_mark(format_value(v), k, "tex") for v, k in zip(r["values"], r["ranks"])]
            out.append(_tex_escape(r["method"]) + " & " + " & ".join(cells) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(out)
