"""The shipped toy VideoMaker (``builtin:toy``, ``--preset toy``) and the toy benchmark.

The toy model's files ship in the package (vm_model/toy/weights, made by ``benchmarks/toy_customization.py
--export``); these tests load them offline, check that a generated subject wears its reference's colours (against
the same model with the reference zeroed, on held-out subjects), and that the toy benchmark's metrics are registered
and score the way the tables and report expect.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from vm_model.toy.domain import ToyDomain, caption_for, heldout_reference, heldout_subjects, render

MAX_SHIPPED_BYTES = 20 * 1024 * 1024


@pytest.fixture(scope="module")
def toy_pipe():
    from vm_model.components import load_pipeline
    from vm_model.presets import PRESETS
    from vm_model.sources import ModelSources

    torch.set_num_threads(1)
    return load_pipeline(ModelSources(**PRESETS["toy"]["sources"]), device="cpu", dtype=torch.float32)


def test_shipped_files_are_small_and_match_their_record():
    from vm_model.toy.shipped import read_record, shipped_dir

    record = read_record()
    on_disk = {p.relative_to(shipped_dir()).as_posix(): p for p in shipped_dir().rglob("*")
               if p.is_file() and p.name != "toy.json"}
    assert set(on_disk) == set(record["files"])
    assert sum(p.stat().st_size for p in on_disk.values()) <= MAX_SHIPPED_BYTES
    for name, path in on_disk.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == record["files"][name]["sha256"], name
    assert all(name.endswith((".json", ".safetensors")) for name in on_disk)  # no pickles, no vocab files
    measured = record["measured"]
    assert measured["full"]["fidelity_error"] < measured["reference_zeroed"]["fidelity_error"]
    assert record["provenance"]["versions"]["torch"] and record["recipe"]["steps"] == record["steps"]["videomaker"]


def test_toy_preset_loads_offline_from_the_shipped_files(toy_pipe):
    from vm_model.presets import PRESETS, TOY_PROTOCOL
    from vm_model.sources import ModelSources
    from vm_model.toy.shipped import read_record

    record = read_record()
    assert not ModelSources(**PRESETS["toy"]["sources"]).random_weights
    report = toy_pipe.weights_report
    assert report.loaded > 0 and not report.unexpected and not any(report.not_covered.values())
    assert toy_pipe.scheduler.config.prediction_type == record["base"]["prediction_type"] == "v_prediction"
    assert toy_pipe.tokenizer.model_max_length == record["base"]["max_tokens"]
    assert toy_pipe.vae.config.sample_size == record["domain"]["size"]
    # the preset generates what the toy was evaluated with
    assert {k: TOY_PROTOCOL[k] for k in record["generation"]} == record["generation"]


def _render_pair(pipe, domain: ToyDomain, indices: list[int]) -> tuple[list[float], list[float]]:
    """Fidelity errors of the toy model and of the same model with the reference zeroed, one video each."""
    from PIL import Image

    from vm_model.presets import TOY_PROTOCOL
    from vm_model.protocol import GenerationProtocol, render_video
    from vm_model.toy.metrics import fidelity_error

    subjects = heldout_subjects(domain, max(indices) + 1)
    errors: dict[str, list[float]] = {"image": [], "zeroed": []}
    for i in indices:
        reference = heldout_reference(domain, i)
        caption = caption_for(subjects[i].direction)
        for mode in errors:
            protocol = GenerationProtocol(**TOY_PROTOCOL, reference=mode)
            latents = pipe.prepare_reference_latents(Image.fromarray(reference), protocol.height, protocol.width,
                                                     pipe.device, pipe.unet.dtype)
            video = render_video(pipe, protocol, caption, latents, seed=42)
            errors[mode].append(fidelity_error(video, reference))
    return errors["image"], errors["zeroed"]


def test_toy_generation_wears_the_reference_colours(toy_pipe):
    from vm_eval.bench_defs import load_benchmark

    domain = ToyDomain.from_dict(load_benchmark("toy").subjects_spec["toy_domain"])
    full, zeroed = _render_pair(toy_pipe, domain, [0, 1, 2, 3])
    assert np.mean(full) < 0.7 * np.mean(zeroed), (full, zeroed)
    assert sum(f < z for f, z in zip(full, zeroed)) >= 3, (full, zeroed)


def test_zeroed_reference_is_a_protocol_choice(toy_pipe):
    from vm_model.presets import TOY_PROTOCOL
    from vm_model.protocol import GenerationProtocol, render_video

    assert GenerationProtocol().reference == "image"
    with pytest.raises(ValueError, match="reference"):
        GenerationProtocol(reference="blank")
    latents = torch.randn(1, 4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    zeroed = render_video(toy_pipe, GenerationProtocol(**TOY_PROTOCOL, reference="zeroed"), caption_for("up"),
                          latents, seed=1)
    zeros = render_video(toy_pipe, GenerationProtocol(**TOY_PROTOCOL), caption_for("up"), torch.zeros_like(latents),
                         seed=1)
    assert np.array_equal(zeroed, zeros)


def test_toy_benchmark_registers_its_metrics(tmp_path):
    from vm_eval.bench_defs import load_benchmark
    from vm_eval.metrics import get_metric, metrics_for
    from vm_model.toy.shipped import read_record

    bench = load_benchmark("toy")
    assert metrics_for("toy") == ("toy_fidelity", "toy_motion")
    fidelity, motion = get_metric("toy_fidelity"), get_metric("toy_motion")
    assert fidelity.family == motion.family == "toy" and fidelity.kinds == motion.kinds == ("toy",)
    assert not fidelity.higher_is_better and motion.higher_is_better and motion.boolean
    # the benchmark draws its subjects from the shipped toy's domain, held out from its training data
    assert ToyDomain.from_dict(bench.subjects_spec["toy_domain"]) == ToyDomain.from_dict(read_record()["domain"])
    subjects = bench.resolve_subjects(None, tmp_path)
    assert {s.kind for s in subjects} == {"toy"} and len(subjects) == 8
    from PIL import Image

    domain = ToyDomain.from_dict(bench.subjects_spec["toy_domain"])
    assert np.array_equal(np.asarray(Image.open(subjects[1].image)), heldout_reference(domain, 1))
    assert {p.text for p in bench.prompts_for(subjects[0])} == {caption_for(d) for d in ("left", "right", "up",
                                                                                          "down")}
    assert [(b.name, b.protocol) for b in bench.baselines] == [("reference zeroed", {"reference": "zeroed"})]


def test_toy_metrics_score_through_the_scorer_and_land_in_the_tables():
    from PIL import Image

    from vm_eval.aggregate import aggregate
    from vm_eval.encoders import EncoderConfig, Encoders
    from vm_eval.scorer import Reference, VideoScorer
    from vm_eval.tables import to_markdown

    domain = ToyDomain()
    subject = heldout_subjects(domain, 1)[0]
    frames, _ = render(subject, domain.num_frames, domain.size)
    reference = Reference("toy-00", Image.fromarray(heldout_reference(domain, 0)))
    scorer = VideoScorer(Encoders(EncoderConfig(preset="full", device="cpu")))  # toy metrics load no weights
    right = scorer.score(frames, prompt=caption_for(subject.direction), reference=reference, kind="toy")
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}[subject.direction]
    wrong = scorer.score(frames, prompt=caption_for(opposite), reference=reference, kind="toy")
    assert set(right) == {"toy_fidelity", "toy_motion"}
    assert right["toy_motion"].value == 1.0 and wrong["toy_motion"].value == 0.0
    assert right["toy_fidelity"].value < 30.0  # the ground-truth clip against its own reference
    rows = [dict(method=m, sample_id="toy-00/p00/s42", subject="toy-00", kind="toy", category=subject.direction,
                 metric=name, value=r.value, status=r.status) for m, res in (("model", right), ("other", wrong))
            for name, r in res.items()]
    table = to_markdown(aggregate(rows))
    assert "## Toy" in table and "Fidelity err.↓" in table and "Motion dir.↑" in table


def test_min_cost_assignment_is_exact():
    scipy_optimize = pytest.importorskip("scipy.optimize")
    from vm_model.toy.assignment import min_cost_assignment, pairwise_distances

    rng = np.random.default_rng(0)
    for n in (1, 7, 64):
        cost = pairwise_distances(rng.uniform(0, 255, (n, 3)), np.round(rng.uniform(0, 255, (n, 3)) / 64) * 64)
        cols = min_cost_assignment(cost)
        assert sorted(cols) == list(range(n))
        rows, ref_cols = scipy_optimize.linear_sum_assignment(cost)
        assert cost[np.arange(n), cols].sum() == pytest.approx(cost[rows, ref_cols].sum(), rel=1e-12)


def test_export_splits_the_stage1_unet_exactly(tmp_path):
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    from vm_model.tiny import build_motion_adapter, build_unet, UNetSpec
    from vm_model.toy.export import split_motion_unet

    build_unet(tmp_path / "unet", UNetSpec(attention_head_dim=1))
    build_motion_adapter(tmp_path / "adapter")
    unet = UNetMotionModel.from_unet2d(UNet2DConditionModel.from_pretrained(tmp_path / "unet"),
                                       MotionAdapter.from_pretrained(tmp_path / "adapter"))
    with torch.no_grad():  # "trained": every parameter moved
        for p in unet.parameters():
            p.add_(0.01)
    split_motion_unet(unet, tmp_path / "unet", tmp_path / "adapter", tmp_path / "out" / "unet",
                      tmp_path / "out" / "adapter")
    rebuilt = UNetMotionModel.from_unet2d(UNet2DConditionModel.from_pretrained(tmp_path / "out" / "unet"),
                                          MotionAdapter.from_pretrained(tmp_path / "out" / "adapter"))
    assert all(torch.equal(a, b) for a, b in zip(unet.state_dict().values(), rebuilt.state_dict().values()))
