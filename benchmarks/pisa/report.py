"""The markdown of a ``model_pisa_cost`` result: device, forward table, training-step table, targets, probe,
notes. Built only from the result JSON, so that ``--render`` can rewrite it later."""

from __future__ import annotations

from benchmarks.harness.results import gib, gib_or_na, notes_section, table
from benchmarks.pisa.sdpa_probe import attention_calls_text, render_section


def _code_line(code: dict) -> str:
    if not code.get("commit"):
        return ""
    line = f" Code: commit {code['commit'][:10]}"
    if code.get("modified_measured_files"):
        line += f" with local changes to {', '.join(code['modified_measured_files'])}"
    if code.get("note"):
        line += f" ({code['note']})"
    return line + "."


def _header(res: dict) -> list[str]:
    dev, threads = res["device"], res["settings"]["threads"]
    return [
        f"# PISA cost benchmark: {res['device_tag']}",
        "",
        f"Device: {dev['device']}, {dev.get('gpu') or dev['cpu_model']} ({dev['cpu_count']} logical CPUs), "
        f"torch {dev['torch']}, diffusers {dev.get('diffusers', '?')}, {threads} torch thread"
        f"{'' if threads == 1 else 's'}, {res['settings']['dtype']}. Model: {res['preset']} preset "
        f"({res['model']['parameters'] / 1e6:.0f}M parameters, random weights). Load average (1/5/15 min): "
        + "; ".join(f"{k.replace('_', ' ')} {'/'.join(f'{x:.2f}' for x in v)}" for k, v in res["load_average"].items())
        + f". Whole run {res['wall_s'] / 60:.1f} min." + _code_line(res.get("code") or {}),
    ]


def _forward_section(fw: dict) -> list[str]:
    shape = fw["shape"]
    rows = []
    for v, r in fw["variants"].items():
        rows.append([f"{v} ({r['description']})", r["frames"] + r["references"], f"{r['median_s']:.2f}",
                     ", ".join(f"{t:.2f}" for t in fw["raw_s"][v]),
                     f"{r['time_ratio']:.2f}x ({', '.join(f'{x:.2f}' for x in r['time_ratio_per_repeat'])})",
                     f"{r['flops'] / 1e12:.3f}", f"{r['flop_ratio']:.2f}x", f"{r['time_ratio_over_flop_ratio']:.2f}",
                     f"{r['median_cpu_s']:.1f}", f"{r['cpu_time_ratio']:.2f}x", gib(r["peak_memory_bytes"]),
                     gib_or_na(r.get("rss_peak_bytes"))])
    lines = [
        f"## UNet forward, {shape['resolution']}x{shape['resolution']} ({shape['latent']}x{shape['latent']} latents), "
        f"batch 1, {shape['frames']} frames (+1 reference), inference mode",
        "",
        f"Medians over {fw['repeats']} interleaved repeats (order rotated per repeat). FLOPs counted on the meta "
        f"device. Peak memory, one fresh process per variant, above the loaded model: {fw['memory_method']}"
        + (f"; RSS: {fw['rss_method']}" if fw.get("rss_method") else "") + ".",
        "",
    ] + table(["variant", "frames", "median s", "runs s", "time ratio (per repeat)", "TFLOP", "FLOP ratio",
               "time/FLOP ratio", "median process CPU s", "CPU-time ratio", "peak tensor mem GiB", "peak RSS GiB"],
              rows)
    if fw.get("flops_meta_512"):
        f512 = fw["flops_meta_512"]
        lines += ["", "FLOPs at 512x512, 16 (+1) frames (meta device, for comparison with the model notes): " +
                  ", ".join(f"{v} {f / 1e12:.2f} TFLOP ({f / f512['stock']:.2f}x)" for v, f in f512.items()) + "."]
    if fw["warmup"]:
        mismatch = [v for v, r in fw["variants"].items() if r["executed_flops"] != r["flops"]]
        lines += ["", f"{fw['warmup']} untimed warm-up call(s) per variant. FLOPs counted on the executed ops of the "
                  "first warm-up call " + ("match the meta-device counts." if not mismatch else
                                           "differ from the meta-device counts for " + ", ".join(
                      f"{v} ({fw['variants'][v]['executed_flops'] / 1e12:.3f} TFLOP)" for v in mismatch) + ".")]
    else:
        lines += ["", "No untimed warm-up call (--warmup 0): each variant's first call is timed in repeat 1, and the "
                  "FLOPs of the executed ops were not counted in this run (meta-device counts only)."]
    return lines + ["", "Attention calls per UNet call, recorded in the memory runs (SDPA backend as chosen by "
                    "torch._fused_sdp_choice; sdpa_math is the unfused fallback): " + "; ".join(
                        f"{v}: {attention_calls_text(r['attention_calls'])}" for v, r in fw["variants"].items()) + "."]


def _training_section(tr: dict, dtype: str) -> list[str]:
    ts = tr["shape"]
    rows = [["on" if r["checkpointing"] else "off", gib(r["peak_bytes"]), gib_or_na(r.get("rss_peak_bytes")),
             gib(r["grad_bytes"]), f"{r['time_s']:.1f}", f"{r['trainable_tensors_with_grad']}/{r['trainable_tensors']}"]
            for r in tr["runs"].values()]
    return [
        f"## Training step, {ts['resolution']}x{ts['resolution']}, batch 1, {ts['frames']} frames (+1 reference), "
        "PISA concat, " + ("fp32" if dtype == "float32" else f"{dtype} autocast, trainable weights fp32"),
        "",
        "Forward + backward of the loss (videomaker_loss, beta 0.1); trainable = spatial attn1 + motion modules "
        f"(set_trainable), the rest frozen. Peak memory above the loaded model, one fresh process per run, "
        f"including the gradients of the trainable parameters: {tr['memory_method']}"
        + (f"; RSS: {tr['rss_method']}" if tr.get("rss_method") else "") + ".",
        "",
    ] + table(["gradient checkpointing", "peak tensor mem GiB", "peak RSS GiB", "of which gradients GiB", "step s",
               "trainable tensors with grad"], rows) + [
        "", f"Reduction of the peak by checkpointing: {tr['reduction']:.1%} (tensor memory)"
        + (f", {tr['rss_reduction']:.1%} (RSS)" if tr.get("rss_reduction") is not None else "") + "."]


def _targets_section(tg: dict) -> list[str]:
    rows = []
    for key, t in tg.items():
        if key.startswith("time_ratio"):
            measured = (f"time {t['time_ratio']:.2f}x vs FLOP {t['flop_ratio']:.2f}x ({t['deviation']:+.1%}); "
                        f"per repeat: {', '.join('pass' if p else 'fail' for p in t['passed_per_repeat'])}; "
                        f"CPU-time ratio {t['cpu_time_ratio']:.2f}x")
        else:
            measured = (f"tensor memory {gib(t['peak_bytes_without'])} -> {gib(t['peak_bytes_with'])} GiB "
                        f"({t['reduction']:.1%} less)")
            if "rss_reduction" in t:
                measured += (f"; RSS {gib(t['rss_peak_bytes_without'])} -> {gib(t['rss_peak_bytes_with'])} GiB "
                             f"({t['rss_reduction']:.1%} less, {'pass' if t['rss_passed'] else 'fail'})")
        rows.append([t["description"], measured, "PASS" if t["passed"] else "FAIL"])
    return ["## Targets", ""] + table(["target", "measured", "result"], rows)


def render_markdown(res: dict) -> str:
    sections = [_header(res), _forward_section(res["forward"]),
                _training_section(res["training"], res["settings"]["dtype"]), _targets_section(res["targets"])]
    if res.get("sdpa_probe"):
        sections.append(render_section(res["sdpa_probe"]))
    if res.get("notes"):
        sections.append(notes_section(res["notes"]))
    return "\n\n".join("\n".join(s) for s in sections) + "\n"
