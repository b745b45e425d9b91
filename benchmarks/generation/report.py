"""Summary figures and the markdown of a ``model_generation_cost`` result, built only from its JSON (so that
``--render`` can rewrite them later)."""

from __future__ import annotations

import statistics

from benchmarks.harness.results import gib, table


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarize(res: dict) -> dict:
    """Per setting: median wall seconds, seconds and videos per hour, UNet seconds per call and per step, the part
    outside the UNet, the projection to ``project_steps`` steps and to a benchmark run, peak memory; plus time
    ratios against the suite's reference setting (``batch1`` / ``official``), per paired repeat."""
    shape = res["shape"]
    videos, steps, project = shape["videos"], shape["steps"], shape["project_steps"]
    rows: dict[str, dict] = {}
    for group in res["groups"]:
        for name, runs in group["runs"].items():
            if not runs:  # a partial run stopped before this setting ran
                continue
            wall = [r["wall_s"] for r in runs]
            unet = [r["component_s"]["unet"] for r in runs]
            med_wall, med_unet = _median(wall), _median(unet)
            outside = med_wall - med_unet
            per_video_proj = (outside + med_unet * project / steps) / videos
            row = dict(setting=group["settings"][name], pisa_mode=group["load"]["pisa_mode_resolved"],
                       dtype=group["load"]["dtype_resolved"], runs=len(runs), wall_s=wall,
                       median_wall_s=med_wall, s_per_video=med_wall / videos,
                       videos_per_hour=3600 * videos / med_wall,
                       median_cpu_s=_median([r["process_cpu_s"] for r in runs]),
                       median_unet_s=med_unet, unet_calls=runs[0]["component_calls"]["unet"],
                       unet_s_per_step=med_unet / steps, unet_share=med_unet / med_wall,
                       median_vae_decoder_s=_median([r["component_s"]["vae_decoder"] for r in runs]),
                       median_text_encoder_s=_median([r["component_s"]["text_encoder"] for r in runs]),
                       outside_unet_s=outside, projected_steps=project, projected_s_per_video=per_video_proj,
                       projected_videos_per_hour=3600 / per_video_proj,
                       projected_benchmark_hours={k: n * per_video_proj / 3600
                                                  for k, n in res["benchmark_videos"].items()},
                       max_abs_diff_vs_group_first=group.get("max_abs_diff_vs_first", {}).get(name),
                       load_average_1min=[r["load_average_start"][0] for r in runs])
            for key in ("gpu_peak_allocated_bytes", "gpu_peak_reserved_bytes", "rss_peak_bytes",
                        "rss_peak_above_start_bytes"):
                if key in runs[0]:
                    row[key] = max(r[key] for r in runs)
            rows[name] = row
    reference = next((n for n in ("batch1", "official") if n in rows), next(iter(rows), None))
    for name, row in rows.items():
        ref = rows[reference]
        row["speedup_vs_" + reference] = ref["median_wall_s"] / row["median_wall_s"]
        row["cpu_time_speedup_vs_" + reference] = ref["median_cpu_s"] / row["median_cpu_s"]
        if len(row["wall_s"]) == len(ref["wall_s"]):
            row["speedup_per_repeat"] = [a / b for a, b in zip(ref["wall_s"], row["wall_s"])]
    return dict(reference=reference, settings=rows)


def _memory(row: dict) -> str:
    if "gpu_peak_allocated_bytes" in row:
        return f"{gib(row['gpu_peak_allocated_bytes'])} alloc / {gib(row['gpu_peak_reserved_bytes'])} reserved"
    if "rss_peak_bytes" in row:
        return f"{gib(row['rss_peak_bytes'])} RSS ({gib(row['rss_peak_above_start_bytes'])} above loaded model)"
    return "n/a"


def render_markdown(res: dict) -> str:
    dev, shape, proto, summ = res["device"], res["shape"], res["protocol"], res["summary"]
    ref = summ["reference"]
    load = "; ".join(f"{k.replace('_', ' ')} {'/'.join(f'{x:.2f}' for x in v)}" for k, v in res["load_average"].items())
    code = res.get("code") or {}
    code_line = f" Code: commit {code['commit'][:10]}" + (
        f" with local changes to {', '.join(code['modified_measured_files'])}" if code.get("modified_measured_files")
        else "") + "." if code.get("commit") else ""
    lines = [
        f"# Generation cost benchmark: {res['device_tag']}",
        "",
        f"Device: {dev['device']}, {dev.get('gpu') or dev['cpu_model']} ({dev['cpu_count']} logical CPUs), torch "
        f"{dev['torch']}, diffusers {dev.get('diffusers', '?')}, {proto['threads']} torch thread"
        f"{'' if proto['threads'] == 1 else 's'}. Model: {res['model']['components']}, random weights. "
        f"Load average (1/5/15 min): {load}."
        + (f" Whole run {res['wall_s'] / 60:.1f} min." if res.get("wall_s") is not None else "") + code_line
        + (" **Partial run**: written from the runs done when it was stopped (no video comparison)."
           if res.get("partial") else ""),
        "",
        f"## {shape['videos']} videos of one subject, {shape['resolution']}x{shape['resolution']}, "
        f"{shape['frames']} frames (+1 reference), {shape['steps']} DDIM steps, guidance {shape['guidance_scale']}",
        "",
        f"Each run makes the same {shape['videos']} (prompt, seed) videos through `vm_model.protocol.render_videos` "
        f"(classifier-free guidance: every UNet call has 2 samples per video). Medians over {proto['repeats']} "
        f"run(s) per setting, interleaved (order alternating per repeat) among settings that share one loaded "
        f"pipeline; "
        f"{'one untimed 1-step call first' if proto['warmup'] else 'no warm-up call (the first run is timed)'}"
        f". UNet / VAE decoder / text encoder: seconds inside their forward (hooks). Peak memory: the largest over "
        f"the runs. On a shared CPU the wall time includes waiting for a core (see the load averages); with one "
        f"torch thread the process CPU time stays close to the compute time whatever the load, so its ratio is the "
        f"steadier figure there.",
        "",
    ]
    header = ["setting", "batch", "dtype", "PISA", "offload / VAE", "median s (runs)", "s / video", "videos / h",
              f"speedup vs {ref} (per repeat)", "process CPU s", f"CPU-time speedup vs {ref}", "UNet s (calls)", "UNet s / step", "outside UNet s",
              "VAE dec. s", "peak memory GiB", "max |diff| vs first"]
    rows = []
    for name, r in summ["settings"].items():
        s = r["setting"]
        per_rep = ", ".join(f"{x:.2f}" for x in r.get("speedup_per_repeat", []))
        extras = [s["offload"]] + [x for x, on in (("slicing", s["vae_slicing"]), ("tiling", s["vae_tiling"])) if on]
        rows.append([name, s["batch_size"], r["dtype"], r["pisa_mode"], " + ".join(extras),
                     f"{r['median_wall_s']:.1f} ({', '.join(f'{x:.1f}' for x in r['wall_s'])})",
                     f"{r['s_per_video']:.1f}", f"{r['videos_per_hour']:.1f}",
                     f"{r['speedup_vs_' + ref]:.2f}x ({per_rep})", f"{r['median_cpu_s']:.1f}",
                     f"{r['cpu_time_speedup_vs_' + ref]:.2f}x", f"{r['median_unet_s']:.1f} ({r['unet_calls']})",
                     f"{r['unet_s_per_step']:.1f}", f"{r['outside_unet_s']:.1f}", f"{r['median_vae_decoder_s']:.1f}",
                     _memory(r), "n/a" if r["max_abs_diff_vs_group_first"] is None
                     else f"{r['max_abs_diff_vs_group_first']:.2e}"])
    lines += table(header, rows)
    proj = shape["project_steps"]
    lines += ["", f"## Projection to {proj} steps"
              + (" (measured)" if proj == shape["steps"] else
                 f" (from the {shape['steps']}-step runs: outside-UNet seconds + UNet seconds per step x {proj})"), ""]
    prow = [[name, f"{r['projected_s_per_video']:.1f}", f"{r['projected_videos_per_hour']:.2f}"]
            + [f"{h:.1f}" for h in r["projected_benchmark_hours"].values()] for name, r in summ["settings"].items()]
    lines += table(["setting", "s / video", "videos / h"]
                   + [f"{k} benchmark ({n} videos) h" for k, n in res["benchmark_videos"].items()], prow)
    lines += ["", "## Notes", ""]
    lines += [f"- {n}" for n in res.get("notes", [])] or ["- (none)"]
    return "\n".join(lines) + "\n"
