"""The scoring protocols where the authors' scripts and a corrected computation differ (vm_eval.scoring_protocol):
reference reading, frozen videos and frame rate in DD, DINO's LayerNorm eps; and local weight paths.

Tiny random encoders (offline); every input is synthetic and written here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vm_common.media import load_image, video_info, write_gif, write_mp4
from vm_eval.bench import main as bench_main
from vm_eval.clip import clip_resize_crop
from vm_eval.encoders import EncoderConfig, Encoders
from vm_eval.runner import ScoreTask, load_references, score_tasks
from vm_eval.scorer import VideoScorer
from vm_eval.store import read_samples
from vm_eval.testing import shifting_video, smooth_texture

PROTOCOLS = ("videomaker", "corrected")


@pytest.fixture(scope="module")
def scorers():
    return {p: VideoScorer(Encoders(EncoderConfig(preset="tiny", flow="dis", device="cpu", protocol=p)))
            for p in PROTOCOLS}


def _rgba_reference(path: Path) -> Path:
    """A non-square RGBA PNG whose right part is fully transparent, in a saturated non-white colour."""
    rgba = np.dstack([smooth_texture(128)[:, :96], np.full((128, 96), 255, np.uint8)])
    rgba[:, 48:, :3] = (20, 40, 220)
    rgba[:, 48:, 3] = 0
    rgba[:40, :48, 3] = 128  # half transparent too
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def _exif_reference(path: Path) -> Path:
    """A non-square JPEG with EXIF orientation 6 (display rotated by 90 degrees)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(smooth_texture(128, 3)[:, :80]).save(path, exif=exif, quality=95)
    return path


class _FaceSpy:
    """Stands in for the face encoder: records the reference image it gets."""

    def __init__(self):
        self.seen: list[np.ndarray] = []

    def reference_embedding(self, image):
        self.seen.append(np.asarray(image))
        return None, "spy"

    def frame_embeddings(self, frames):
        return [None] * len(frames)


def _expected(encoders: Encoders, clip_ref: Image.Image, dino_ref: Image.Image, frames: np.ndarray):
    pil = [Image.fromarray(f) for f in frames]
    clip_f, dino_f = encoders.clip.encode_images(pil), encoders.dino.encode_images(pil)
    return (float(np.mean(clip_f @ encoders.clip.encode_images([clip_ref])[0])),
            float(np.mean(dino_f @ encoders.dino.encode_images([dino_ref])[0])))


@pytest.mark.parametrize("make", [_rgba_reference, _exif_reference], ids=["rgba", "exif"])
def test_reference_reading_follows_the_protocol(tmp_path, scorers, monkeypatch, make):
    path = make(tmp_path / ("ref.png" if make is _rgba_reference else "ref.jpg"))
    stored = Image.open(path)
    stored.load()
    authors_clip = clip_resize_crop(stored).convert("RGB")  # resized in the file's own mode, then RGB
    authors_rgb = stored.convert("RGB")  # transparency dropped, no EXIF transpose
    corrected = load_image(path)  # EXIF applied, composited on white
    assert np.asarray(corrected).shape != np.asarray(authors_rgb).shape or \
        np.abs(np.asarray(corrected, np.int16) - np.asarray(authors_rgb, np.int16)).max() > 100
    frames = shifting_video(smooth_texture(96, 7), 3, 3)
    for protocol, scorer in scorers.items():
        spy = _FaceSpy()
        monkeypatch.setitem(scorer.encoders.__dict__, "face", spy)
        ref = load_references({str(path): str(path)})[str(path)]  # keyed by the file: scorers are shared
        res = scorer.score(frames, prompt="p", reference=ref, kind="human", metrics=["clip_i", "dino_i", "face_sim"])
        authors = _expected(scorer.encoders, authors_clip, authors_rgb, frames)
        ours = _expected(scorer.encoders, corrected, corrected, frames)
        assert max(abs(a - b) for a, b in zip(authors, ours)) > 1e-4  # the readings do differ here
        want = authors if protocol == "videomaker" else ours
        assert (res["clip_i"].value, res["dino_i"].value) == pytest.approx(want, abs=1e-6), protocol
        want_face = authors_rgb if protocol == "videomaker" else corrected
        assert len(spy.seen) == 1 and np.array_equal(spy.seen[0], np.asarray(want_face)), protocol


def _frozen_gif(path: Path) -> Path:
    write_gif(path, np.stack([smooth_texture(128)] * 8))
    assert video_info(path).num_frames == 1  # the GIF writer merges identical frames: one frame left
    return path


def _mp4_24fps(path: Path) -> Path:
    # 2 px per frame: below the 3 px threshold at 128 px; every 3rd frame (8 fps) moves 6 px
    write_mp4(path, shifting_video(smooth_texture(128, 5), 2, 24), fps=24)
    assert video_info(path).fps == pytest.approx(24.0)
    return path


def _dd_rows(tmp_path: Path, scorers: dict, protocol: str, videos: list[Path]) -> dict[str, dict]:
    ref = tmp_path / "ref.png"
    Image.fromarray(smooth_texture(64)).save(ref)
    tasks = [ScoreTask(f"s/{v.name}", "M", "s", "object", "p", str(v), str(ref)) for v in videos]
    out = tmp_path / protocol
    score_tasks(tasks, out, scorer=scorers[protocol], progress=False)
    return {Path(r["video"]).name: r for r in read_samples(out) if r["metric"] == "dd_dis"}


def test_frozen_video_counts_static_under_videomaker_and_is_an_error_under_corrected(tmp_path, scorers):
    gif = _frozen_gif(tmp_path / "frozen.gif")
    authors = _dd_rows(tmp_path, scorers, "videomaker", [gif])["frozen.gif"]
    assert authors["status"] == "ok" and authors["value"] == 0.0 and authors["detail"]["frozen"] is True
    corrected = _dd_rows(tmp_path, scorers, "corrected", [gif])["frozen.gif"]
    assert corrected["status"] == "error" and corrected["value"] is None and "2 frames" in corrected["reason"]


def test_dd_of_a_24fps_mp4_keeps_every_third_frame_under_videomaker_only(tmp_path, scorers):
    mp4 = _mp4_24fps(tmp_path / "fast.mp4")
    authors = _dd_rows(tmp_path, scorers, "videomaker", [mp4])["fast.mp4"]
    assert len(authors["detail"]["pair_scores"]) == 7 and authors["detail"]["min_pairs"] == round(4 * 8 / 16)
    assert authors["detail"]["frame_interval"] == 3 and authors["detail"]["source_fps"] == pytest.approx(24.0)
    corrected = _dd_rows(tmp_path, scorers, "corrected", [mp4])["fast.mp4"]
    assert len(corrected["detail"]["pair_scores"]) == 23 and corrected["detail"]["min_pairs"] == round(4 * 24 / 16)
    assert corrected["detail"]["frame_interval"] == 1
    assert (authors["value"], corrected["value"]) == (1.0, 0.0)  # 6 px per kept pair vs 2 px per frame


def test_score_command_records_the_protocol_choices(tmp_path):
    _frozen_gif(tmp_path / "frozen.gif")
    Image.fromarray(smooth_texture(64)).save(tmp_path / "ref.png")
    (tmp_path / "m.jsonl").write_text(json.dumps({"video": "frozen.gif", "prompt": "p", "reference": "ref.png",
                                                  "subject": "s", "method": "M", "kind": "object"}) + "\n")
    for protocol in PROTOCOLS:
        out = tmp_path / protocol
        assert bench_main(["score", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(out), "--preset", "tiny",
                           "--flow", "dis", "--protocol", protocol, "--no-progress", "--no-report"]) == 0
        run = json.loads((out / "run.json").read_text())
        assert run["protocol"] == protocol
        choices = run["protocol_choices"]
        assert choices["frozen_video_dd"] == ("static" if protocol == "videomaker" else "error")
        assert choices["reference_reading"] == ("raw" if protocol == "videomaker" else "corrected")
        assert choices["dd_fps_subsample"] is (protocol == "videomaker")
        assert choices["dino_layernorm_eps"] == (1e-12 if protocol == "videomaker" else None)


def test_dino_layernorm_eps_follows_the_protocol():
    for protocol, eps in (("videomaker", 1e-12), ("corrected", 1e-6)):
        model = Encoders(EncoderConfig(preset="tiny", device="cpu", protocol=protocol)).dino.model
        norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
        assert norms and all(m.eps == eps for m in norms), protocol


def test_an_existing_relative_path_is_a_path_for_every_resolver(tmp_path, monkeypatch):
    from vm_common.weights import resolve_source
    from vm_eval.registry import CLIP, DINO

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights = tmp_path / "dir" / "file.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"x")
    assert resolve_source("dir/file.safetensors", what="w").resolve() == weights
    assert CLIP.resolve("dir/file.safetensors").resolve() == weights
    (tmp_path / "dir" / "model.safetensors").write_bytes(b"y")
    assert DINO.resolve("dir/model.safetensors").resolve() == tmp_path / "dir" / "model.safetensors"
    assert DINO.resolve("dir").resolve() == tmp_path / "dir" / "model.safetensors"  # a folder: the file inside
    from vm_model.components import component_path

    assert component_path("dir/file.safetensors", "vae", "a component").resolve() == weights
