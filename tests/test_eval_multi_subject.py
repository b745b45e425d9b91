"""Multi-subject similarity and identity-swap rate (vm_eval.multi_subject): constructed cases with known answers,
the score manifest's several references, and `vm bench score` end to end on synthetic two-subject videos."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from vm_common.media import write_gif
from vm_data.reference import make_reference
from vm_data.synthetic import PALETTE, SyntheticSubject, render_frames
from vm_eval.multi_subject import (FaceSubjects, FrameDetections, MultiSubjectScorer, match_subjects,
                                   multi_subject_metrics, track_detections)
from vm_eval.score_manifest import ScoreManifestError, read_score_manifest

A, B = np.eye(4)[0], np.eye(4)[1]
REFS = np.stack([A, B])
LEFT, RIGHT = [0, 0, 10, 10], [50, 0, 60, 10]


def _video(appearances: list[tuple[np.ndarray, np.ndarray]], move: float = 0.0) -> list[FrameDetections]:
    """Two subjects, left and right (drifting right by ``move`` px per frame), with the given embeddings."""
    out = []
    for t, (left, right) in enumerate(appearances):
        dx = move * t
        boxes = np.array([LEFT, RIGHT], float) + [dx, 0, dx, 0]
        out.append(FrameDetections(boxes, np.stack([left, right])))
    return out


def test_subjects_trading_places_after_8_of_12_frames_swap_a_third_of_the_time():
    frames = _video([(A, B)] * 8 + [(B, A)] * 4, move=2.0)
    res = match_subjects(frames, REFS)
    assert res.n_tracks == 2 and res.dominant == {0: 0, 1: 1}
    assert res.swap_frames == [8, 9, 10, 11] and res.evaluated_frames == 12
    assert res.swap_rate == pytest.approx(4 / 12)
    assert res.per_subject == [pytest.approx(1.0), pytest.approx(1.0)] and res.frames_matched == [12, 12]
    metrics = multi_subject_metrics(res)
    assert metrics["id_swap"].value == pytest.approx(1 / 3) and metrics["multi_sim"].value == pytest.approx(1.0)


def test_no_swap_and_known_per_subject_similarity():
    rng = np.random.default_rng(0)
    apps, expected = [], [[], []]
    for _ in range(10):
        noisy = []
        for k, ref in enumerate((A, B)):
            e = ref + rng.normal(0, 0.3, 4)
            e /= np.linalg.norm(e)
            noisy.append(e)
            expected[k].append(float(e @ ref))
        apps.append(tuple(noisy))
    res = match_subjects(_video(apps, move=1.0), REFS)
    assert res.swap_rate == 0.0 and res.swap_frames == []
    assert res.per_subject == [pytest.approx(np.mean(expected[0])), pytest.approx(np.mean(expected[1]))]


def test_matching_is_hungarian_not_greedy():
    # greedy would give det0 -> A (0.9) and det1 -> B (0.1); the best one-to-one matching is det0 -> B, det1 -> A
    d0, d1 = np.array([0.9, 0.8, 0.0, 0.0]), np.array([0.85, 0.1, 0.5, 0.0])
    frame = FrameDetections(np.array([LEFT, RIGHT], float), np.stack([d0, d1]))
    res = match_subjects([frame], REFS)
    assert sorted(res.matches[0]) == [(0, 0, 1), (1, 1, 0)]
    assert res.per_subject == [pytest.approx(0.85), pytest.approx(0.8)]


def test_frames_without_subjects_and_a_missing_subject():
    empty = FrameDetections(np.zeros((0, 4)), np.zeros((0, 4)))
    one = FrameDetections(np.array([LEFT], float), A[None])
    res = match_subjects([one, empty, one, one], REFS)
    assert res.evaluated_frames == 3 and res.swap_rate == 0.0
    assert res.frames_matched == [3, 0] and res.detail()["never_matched"] == [1]
    assert multi_subject_metrics(res)["multi_sim"].value == pytest.approx(1.0)
    nothing = multi_subject_metrics(match_subjects([empty, empty], REFS))
    assert nothing["multi_sim"].status == "skipped" and nothing["id_swap"].status == "skipped"
    assert "no subject detected" in nothing["id_swap"].reason


def test_tracks_follow_position_and_break_on_jumps():
    frames = [FrameDetections(np.array([[0 + 2 * t, 0, 10 + 2 * t, 10]], float), A[None]) for t in range(5)]
    frames.append(FrameDetections(np.array([[80, 80, 90, 90]], float), A[None]))  # far away: a new track
    ids = track_detections(frames)
    assert [int(i[0]) for i in ids] == [0, 0, 0, 0, 0, 1]


class _FakeFaces:
    """A face encoder with known faces: each frame holds faces embedded as given; a reference image's red value
    names its embedding."""

    def __init__(self, per_frame, refs):
        self.per_frame, self.refs = per_frame, refs

    def reference_embedding(self, image):
        emb = self.refs[image.getpixel((0, 0))[0]]
        return (emb, "") if emb is not None else (None, "no face detected in the reference image")

    def frame_faces(self, frames):
        return [(np.array([LEFT, RIGHT], np.float32)[:len(e)], np.stack(e)) for e in self.per_frame]


def test_human_videos_go_through_the_faces_and_the_scorer_caches():
    from PIL import Image

    from vm_eval.scorer import Reference, VideoScorer

    class _Encoders:  # the parts of vm_eval.encoders.Encoders the human path uses
        def __init__(self, faces):
            from vm_eval.encoders import EncoderConfig

            self.config = EncoderConfig(preset="tiny", protocol="corrected")
            self.face = faces
            self.multi = MultiSubjectScorer(lambda kind: FaceSubjects(faces))

    refs = [Reference(f"r{i}", Image.new("RGB", (8, 8), (i, 0, 0))) for i in range(2)]
    scorer = VideoScorer(_Encoders(_FakeFaces([[A, B]] * 3 + [[B, A]], {0: A, 1: B})))
    frames = np.zeros((4, 8, 8, 3), np.uint8)
    out = scorer.score(frames, prompt="p", reference=refs[0], kind="human", metrics=["multi_sim", "id_swap"],
                       references=refs)
    assert out["id_swap"].value == pytest.approx(0.25) and out["multi_sim"].value == pytest.approx(1.0)
    assert out["id_swap"].detail["backend"] == "FaceSubjects"
    assert scorer.metrics_for("human", 2)[-2:] == ("multi_sim", "id_swap")
    assert "id_swap" not in scorer.metrics_for("human", 1)
    no_face = VideoScorer(_Encoders(_FakeFaces([], {0: A, 1: None})))
    res = no_face.score(frames[:1], prompt="p", reference=refs[0], kind="human", metrics=["multi_sim"],
                        references=refs)
    assert res["multi_sim"].status == "error" and "reference 2 (r1): no face" in res["multi_sim"].reason
    single = MultiSubjectScorer(lambda kind: None).score(frames, A[None], "human")
    assert single["id_swap"].status == "skipped" and "needs several" in single["id_swap"].reason


# ---------------------------------------------------------------------------------------------- manifests, CLI
def test_score_manifest_rows_with_several_references(tmp_path):
    for name in ("v.gif", "a.png", "b.png"):
        (tmp_path / name).write_bytes(b"x")
    rows = [{"video": "v.gif", "prompt": "p", "reference": "a.png", "subject": "s", "method": "m"},
            {"video": "v.gif", "prompt": "p", "references": ["a.png", "b.png"], "reference_names": ["dog", "cat"],
             "subject": "s2", "method": "m", "kind": "object"}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    old, new = read_score_manifest(manifest)
    assert old.references == () and old.n_references == 1
    assert new.reference == str(tmp_path / "a.png") and new.references == (str(tmp_path / "a.png"),
                                                                            str(tmp_path / "b.png"))
    assert new.reference_names == ("dog", "cat") and new.n_references == 2
    rows[1]["reference_names"] = ["dog"]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ScoreManifestError, match="1 names for 2 references"):
        read_score_manifest(manifest)


RED = SyntheticSubject(color=PALETTE[0][1], color2=PALETTE[0][2], radius=0.16, start=(0.25, 0.3),
                       velocity=(0.005, 0.0))
BLUE = SyntheticSubject(color=PALETTE[1][1], color2=PALETTE[1][2], radius=0.16, start=(0.75, 0.7),
                        velocity=(-0.005, 0.0), shape="box")


def test_bench_score_computes_the_metrics_for_rows_with_several_references(tmp_path):
    from vm_eval.bench import main

    size = 96
    normal, _ = render_frames(12, size, [RED, BLUE], seed=0)
    traded, _ = render_frames(12, size, [dataclasses.replace(RED, color=BLUE.color, color2=BLUE.color2),
                                         dataclasses.replace(BLUE, color=RED.color, color2=RED.color2)], seed=0)
    write_gif(tmp_path / "faithful.gif", normal, fps=8)
    write_gif(tmp_path / "swapped.gif", np.concatenate([normal[:8], traded[8:]]), fps=8)
    make_reference(normal[0], RED.mask(0, size, size), size=size).save(tmp_path / "red.png")
    make_reference(normal[0], BLUE.mask(0, size, size), size=size).save(tmp_path / "blue.png")
    rows = [{"video": v, "prompt": "a red ball and a blue box", "references": ["red.png", "blue.png"],
             "reference_names": ["red", "blue"], "subject": "pair", "method": "m", "kind": "object",
             "sample_id": v} for v in ("faithful.gif", "swapped.gif")]
    rows.append({"video": "faithful.gif", "prompt": "a red ball", "reference": "red.png", "subject": "red",
                 "method": "m", "kind": "object", "sample_id": "single"})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    code = main(["score", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(out), "--preset", "tiny",
                 "--flow", "dis", "--subject-detector", "synthetic-color", "--no-progress", "--device", "cpu"])
    assert code == 0
    got = {(r["sample_id"], r["metric"]): r for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
    assert got[("faithful.gif", "id_swap")]["value"] == 0.0
    assert got[("swapped.gif", "id_swap")]["value"] == pytest.approx(4 / 12)
    assert got[("swapped.gif", "id_swap")]["detail"]["swap_frames"] == [8, 9, 10, 11]
    assert got[("faithful.gif", "multi_sim")]["detail"]["frames_matched"] == [12, 12]
    assert got[("faithful.gif", "multi_sim")]["references"] == [str(tmp_path / "red.png"), str(tmp_path / "blue.png")]
    assert ("single", "id_swap") not in got and ("single", "clip_i") in got  # one reference: no multi metrics
    assert "ID swap rate" in (out / "table.md").read_text()
    # resume: nothing to do, and the same rows
    assert main(["score", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(out), "--preset", "tiny",
                 "--flow", "dis", "--subject-detector", "synthetic-color", "--no-progress", "--device", "cpu"]) == 0
    assert len((out / "samples.jsonl").read_text().splitlines()) == len(got)


def test_face_encoder_gives_every_face_of_every_frame():
    from vm_eval.face import ArcFaceEmbedder, FaceBox, FaceEncoder, GivenFaceDetector
    from vm_eval.tiny import tiny_face_pack

    kps = np.array([[38.3, 51.7], [73.5, 51.5], [56.0, 71.7], [41.5, 92.4], [70.7, 92.2]], np.float32)
    left, right = FaceBox(np.array([20, 30, 90, 110], np.float32), kps, 0.9), \
        FaceBox(np.array([220, 30, 290, 110], np.float32), kps + [200, 0], 0.8)
    faces = {0: [left, right], 1: [], 2: [right]}
    enc = FaceEncoder(GivenFaceDetector(lambda img: faces[int(img[0, 0, 0])]),
                      ArcFaceEmbedder(tiny_face_pack() / "w600k_r50.onnx"))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (3, 160, 320, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = [0, 1, 2]
    out = enc.frame_faces(frames)
    assert [len(b) for b, _ in out] == [2, 0, 2 - 1]
    np.testing.assert_allclose(out[0][0], [left.bbox, right.bbox])
    alone = enc.embedder.embed([frames[2]], [right])
    np.testing.assert_allclose(out[2][1], alone, atol=1e-5)
    assert len(FaceSubjects(enc).detect(frames, [])[1]) == 0


@pytest.mark.slow  # builds and runs the tiny face pack and Grounding DINO (random faces: hundreds per frame)
def test_tiny_preset_runs_the_real_face_and_object_detectors(tmp_path):
    """The default backends (tiny random Grounding DINO + DINO crops for objects, tiny SCRFD + ArcFace for faces)
    load and run through `vm bench score`; their numbers are meaningless, so only the shape of the rows is checked."""
    from vm_eval.bench import main

    size = 96
    frames, _ = render_frames(4, size, [RED, BLUE], seed=0)
    write_gif(tmp_path / "v.gif", frames, fps=8)
    make_reference(frames[0], RED.mask(0, size, size), size=size).save(tmp_path / "r.png")
    make_reference(frames[0], BLUE.mask(0, size, size), size=size).save(tmp_path / "b.png")
    rows = [{"video": "v.gif", "prompt": "x", "references": ["r.png", "b.png"], "subject": kind, "method": "m",
             "kind": kind, **({"reference_names": ["dog", "cat"]} if kind == "object" else {})}
            for kind in ("object", "human")]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    assert main(["score", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(out), "--preset", "tiny",
                 "--flow", "dis", "--suites", "copy", "--no-progress", "--device", "cpu", "--no-report"]) == 0
    got = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    multi = [r for r in got if r["metric"] in ("multi_sim", "id_swap")]
    assert sorted((r["subject"], r["metric"]) for r in multi) == [("human", "id_swap"), ("human", "multi_sim"),
                                                                  ("object", "id_swap"), ("object", "multi_sim")]
    for r in multi:
        assert r["status"] in ("ok", "skipped") and len(r["detail"]["frames_matched"]) == 2
    backends = {r["subject"]: r["detail"].get("backend") for r in multi if r["status"] == "ok"}
    assert set(backends.values()) <= {"FaceSubjects", "ObjectSubjects"}
    assert "multi" in json.loads((out / "run.json").read_text())["scoring_models"]
