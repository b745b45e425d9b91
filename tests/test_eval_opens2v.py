"""OpenS2V-Eval's metrics (vm_eval.opens2v*): known answers, the CurricularFace layout, the judge, the suite."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
import torch
from PIL import Image

from vm_eval.curricularface import IR_101, IRBackbone, load_curricularface, save_arch, tiny_arch
from vm_eval.metrics import metrics_for
from vm_eval.opens2v import (AESTHETIC, FACESIM_ARC, FACESIM_CUR, GME, MOTION, NATURAL, NEXUS, SMOOTHNESS,
                             AestheticMLP, facesim_values, hf_clip_preprocess, motion_amplitude, motion_smoothness,
                             nexus_value, opens2v_total, sample_indices, sliding_windows)
from vm_eval.opens2v_judge import (HttpJudge, chat_request, judge_frame_indices, judge_frames, natural_score,
                                   parse_score)
from vm_eval.testing import shifting_video, smooth_texture


# ----------------------------------------------------------------------------------------------- sampling, motion
def test_frame_sampling_is_linspace_cast_to_int_and_repeats_short_videos():
    assert sample_indices(100, 4).tolist() == [0, 33, 66, 99]
    idx = sample_indices(16, 32)
    assert len(idx) == 32 and idx[0] == 0 and idx[-1] == 15 and len(set(idx.tolist())) == 16
    assert sample_indices(5, None).tolist() == [0, 1, 2, 3, 4]


def test_sliding_windows_follow_opens2v():
    # frame 0 (before the window's left reach): frame 0 three times; the last frame: its first index repeated
    assert sliding_windows(5, 3) == [[0, 0, 0], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 3, 4]]
    assert sliding_windows(1, 3) == [[0, 0, 0]]


def test_motion_smoothness_counts_frames_beside_a_jump():
    r = motion_smoothness([0.50, 0.50, 0.60, 0.60, 0.61])  # one jump (1 -> 2); 0.01 is under the 0.025 threshold
    assert r.value == pytest.approx(1 - 2 / 5) and r.detail["artifact_frames"] == 2
    assert motion_smoothness([0.3] * 4).value == 1.0
    assert motion_smoothness([]).status == "error"


def test_motion_amplitude_is_zero_when_still_and_half_the_shift_when_sliding():
    tex = smooth_texture(128, seed=2)
    assert motion_amplitude(np.repeat(tex[None], 4, axis=0)).value == pytest.approx(0.0, abs=1e-3)
    # a horizontal slide of 2 px: flow ~(2, 0) inside, so the mean over both components is ~1 (borders pull it down)
    v = motion_amplitude(shifting_video(tex, 2, 5)).value
    assert 0.5 < v < 1.2
    assert motion_amplitude(tex[None]).status == "error"


# ------------------------------------------------------------------------------------------------ CurricularFace
def test_ir101_layout_matches_tfaces_state_dict_names_and_shapes():
    with torch.device("meta"):
        model = IRBackbone(IR_101)
    sd = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(model.body) == 3 + 13 + 30 + 3 == 49
    assert sd["input_layer.0.weight"] == (64, 3, 3, 3) and sd["input_layer.2.weight"] == (64,)
    assert "body.0.shortcut_layer.0.weight" not in sd  # same width: a parameter-free 1x1 max-pool
    assert sd["body.3.shortcut_layer.0.weight"] == (128, 64, 1, 1)  # first unit of stage 2: a strided 1x1 conv
    assert sd["body.3.res_layer.4.weight"] == (128, 128, 3, 3) and sd["body.3.res_layer.3.weight"] == (128,)
    assert sd["body.48.res_layer.5.running_var"] == (512,)
    assert sd["output_layer.3.weight"] == (512, 512 * 7 * 7)
    assert "output_layer.4.weight" not in sd and sd["output_layer.4.running_mean"] == (512,)  # BN1d, affine=False


def test_tiny_curricularface_loads_strictly_and_embeds_112_crops(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = IRBackbone(tiny_arch()).eval()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    save_arch(tiny_arch(), tmp_path)
    loaded = load_curricularface(tmp_path / "w.safetensors")
    x = torch.randn(2, 3, 112, 112)
    assert torch.allclose(loaded(x), model(x)) and loaded(x).shape == (2, 16)
    torch.save({k: v for k, v in model.state_dict().items() if k != "output_layer.3.bias"}, tmp_path / "bad.bin")
    with pytest.raises(RuntimeError, match="output_layer.3.bias"):
        load_curricularface(tmp_path / "bad.bin", arch=tiny_arch())


# ------------------------------------------------------------------------------------------------------ FaceSim
def test_facesim_drops_zero_cur_frames_but_keeps_zero_arc_frames():
    ref = np.array([1.0, 0.0])
    frames = [np.array([1.0, 0.0]), np.array([-1.0, 0.0]), None, np.array([0.6, 0.8])]
    r = facesim_values(ref, ref, frames, frames)
    assert r[FACESIM_CUR].value == pytest.approx((1.0 + 0.6) / 2)  # the -1 frame clips to 0 and is dropped
    assert r[FACESIM_ARC].value == pytest.approx((1.0 + 0.0 + 0.6) / 3)  # ... and kept here, as the script does
    none = facesim_values(ref, ref, [None, None], [None, None])
    assert none[FACESIM_CUR].value == 0.0 and none[FACESIM_ARC].detail["frames_with_face"] == 0


def test_face_crop_pads_when_no_face_and_shifts_the_landmarks_back(tmp_path):
    from insightface.utils import face_align

    from vm_eval.face import ArcFaceEmbedder, FaceBox, GivenFaceDetector
    from vm_eval.opens2v import face_crop
    from vm_eval.tiny import export_arcface_onnx

    img = smooth_texture(160, seed=4)
    kps = np.array([[60, 60], [100, 60], [80, 80], [65, 100], [95, 100]], np.float32)
    pad_y, pad_x = 40, 40  # int(160 * 0.25)

    def lookup(image):  # no face in the original, a face in the padded image
        if image.shape[0] == 160:
            return []
        return [FaceBox(np.array([45, 45, 155, 125], np.float32), (kps + [pad_x, pad_y]).astype(np.float32), 0.9)]

    emb = ArcFaceEmbedder(export_arcface_onnx(tmp_path / "arc.onnx"))
    crop = face_crop(GivenFaceDetector(lookup), emb, img)
    bgr = np.ascontiguousarray(img[..., ::-1])
    import cv2

    want = cv2.resize(cv2.cvtColor(face_align.norm_crop(bgr, landmark=kps, image_size=224), cv2.COLOR_BGR2RGB),
                      (112, 112))
    assert np.array_equal(crop.cur_input, want) and crop.arc.shape == (64,)
    assert face_crop(GivenFaceDetector(lambda im: []), emb, img) is None


# --------------------------------------------------------------------------------------------------- Aesthetics
def test_aesthetic_head_has_the_released_layout_and_clip_crop_floors_the_offset():
    assert sorted(AestheticMLP().state_dict()) == sorted(
        f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias"))
    img = Image.fromarray(smooth_texture(300, seed=1)[:200, :299])  # -> 224 x int(334.9): offset (334-224)/2 = 55
    x = hf_clip_preprocess([img])
    big = img.resize((334, 224), Image.BICUBIC)
    from vm_eval.clip import CLIP_MEAN, CLIP_STD

    want = (np.asarray(big.crop((55, 0, 279, 224)), np.float32) / 255 - CLIP_MEAN) / CLIP_STD
    assert x.shape == (1, 3, 224, 224) and np.allclose(x[0].permute(1, 2, 0).numpy(), want, atol=1e-6)


# --------------------------------------------------------------------------------------------- Nexus and total
def test_nexus_gates_boxes_and_divides_by_frames_with_a_detection():
    r = nexus_value(box_conf=[0.9, 0.55, 0.9, 0.9], text_scores=[0.5, 0.9, 0.2, 0.4],
                    image_scores=[0.8, 0.9, 0.9, 0.6], frames_with_detection=2)
    assert r.value == pytest.approx((0.8 + 0.6) / 2 / 2) and r.detail["boxes_kept"] == 2
    assert nexus_value([], [], [], 0).value == 0.0


def test_total_follows_merge_result():
    per_video = {AESTHETIC: [5.5, 8.0], SMOOTHNESS: [0.9], MOTION: [-0.2], FACESIM_CUR: [0.5], GME: [0.7],
                 NEXUS: [0.0, 0.02], NATURAL: [3.0]}
    t = opens2v_total(per_video, "open")
    assert t[AESTHETIC] == pytest.approx(((5.5 + 7.0) / 2 - 4) / 3)  # 8 clipped to 7
    assert t[MOTION] == pytest.approx(0.2) and t[NEXUS] == pytest.approx(0.4)  # |motion|; Nexus zero left out
    assert t[NATURAL] == pytest.approx(0.5)
    want = 0.16 * t[AESTHETIC] + 0.06 * 0.9 + 0.02 * 0.2 + 0.20 * 0.5 + 0.12 * 0.7 + 0.20 * 0.4 + 0.24 * 0.5
    assert t["total_score"] == pytest.approx(want)
    assert NEXUS not in opens2v_total(per_video, "human")
    with pytest.raises(ValueError):
        opens2v_total(per_video, "mars")


# ------------------------------------------------------------------------------------------------ NaturalScore
def test_judge_frames_follow_the_capture_positions_and_long_side():
    assert judge_frame_indices(40) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30]
    assert judge_frame_indices(5) == [0, 1, 2, 3, 4]
    import cv2

    jpeg = judge_frames(np.zeros((5, 100, 200, 3), np.uint8))
    assert len(jpeg) == 5 and cv2.imdecode(np.frombuffer(jpeg[0], np.uint8), cv2.IMREAD_COLOR).shape == (256, 512, 3)


def test_parse_score_accepts_one_score_only():
    assert parse_score("4") == 4 and parse_score(" 3.0\n") == 3 and parse_score("Score: 5") == 5
    assert parse_score("between 3 and 4") is None and parse_score("7") is None and parse_score("none") is None
    assert parse_score("**4**") == 4 and parse_score("4/5") == 4 and parse_score("x3\x15y") is None


class _FakeJudge:
    model_id = "fake"

    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def rate(self, frames_jpeg, prompt):
        self.calls.append((len(frames_jpeg), prompt))
        return self.answers.pop(0)


def test_natural_score_averages_the_ratings_and_refuses_a_non_answer():
    frames = shifting_video(smooth_texture(64), 1, 32)
    judge = _FakeJudge(["4", "5", "3"])
    r = natural_score(judge, frames, repeats=3, prompt="rate it")
    assert r.value == pytest.approx(4.0) and r.detail["ratings"] == [4, 5, 3]
    assert judge.calls == [(16, "rate it")] * 3
    bad = natural_score(_FakeJudge(["I cannot tell"]), frames, repeats=1)
    assert bad.status == "error" and bad.value is None


def test_http_judge_talks_to_a_local_openai_compatible_server(monkeypatch):
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen.append((self.path, self.headers.get("Authorization"),
                         json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            body = json.dumps({"choices": [{"message": {"content": " 2 "}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("VM_TEST_JUDGE_KEY", "sekret")
        judge = HttpJudge(f"http://127.0.0.1:{server.server_port}/v1/chat/completions", "m1", "VM_TEST_JUDGE_KEY")
        r = natural_score(judge, shifting_video(smooth_texture(64), 1, 20), repeats=2, prompt="P")
    finally:
        server.shutdown()
    assert r.value == 2.0 and len(seen) == 2
    path, auth, body = seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sekret"
    parts = body["messages"][0]["content"]
    assert body["model"] == "m1" and len(parts) == 17 and parts[-1] == {"type": "text", "text": "P"}
    assert parts[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert chat_request([b"x"], "P", "m1")["messages"][0]["content"][0]["image_url"]["url"].endswith("eA==")


def test_http_judge_failure_is_an_error_result_not_a_number():
    judge = HttpJudge("http://127.0.0.1:9/v1/chat/completions", retries=1)  # nothing listens on port 9
    r = natural_score(judge, shifting_video(smooth_texture(64), 1, 4), repeats=1)
    assert r.status == "error" and "judge failed" in r.reason


# ------------------------------------------------------------------------------------------------------ the suite
def test_suite_metrics_follow_the_kinds():
    human = metrics_for("human", "raft", ("opens2v",))
    obj = metrics_for("object", "raft", ("opens2v",))
    assert FACESIM_CUR in human and NEXUS not in human and NEXUS in obj and FACESIM_CUR not in obj
    assert metrics_for("human", "raft", ("paper", "opens2v"))[:6] == ("clip_t", "face_sim", "clip_i", "dino_i",
                                                                      "t_cons", "dd")


def _scorer(preset, **options):
    from vm_eval.encoders import EncoderConfig, Encoders
    from vm_eval.opens2v_models import OpenS2VOptions
    from vm_eval.scorer import VideoScorer

    enc = Encoders(EncoderConfig(preset=preset, flow="dis", device="cpu", suites=("opens2v",),
                                 opens2v=OpenS2VOptions(**options)))
    return enc, VideoScorer(enc)


def test_tiny_suite_scores_what_it_can_and_skips_the_rest_with_reasons():
    from skimage import data

    from vm_eval.scorer import Reference

    enc, sc = _scorer("tiny")
    frames = shifting_video(smooth_texture(96, seed=1), 3, 6)
    res = sc.score(frames, prompt="a cat", reference=Reference("cat", Image.fromarray(data.chelsea())), kind="object")
    assert res[MOTION].status == "ok" and res[AESTHETIC].status == "ok" and res[GME].status == "ok"
    assert -1.0 <= res[GME].value <= 1.0 and res[GME].detail["n_frames"] == 32
    assert res[NEXUS].status == "skipped" and "YOLO-World" in res[NEXUS].reason
    assert res[NATURAL].status == "skipped" and "--natural-judge" in res[NATURAL].reason
    assert res[SMOOTHNESS].status == "skipped"
    # a plugged-in judge and window scorer are used
    enc.opens2v.models.__dict__["judge"] = _FakeJudge(["3", "3", "4"])
    enc.opens2v.models.__dict__["qalign"] = type("Q", (), {"model_id": "q", "score_windows": staticmethod(
        lambda w: np.array([float(np.asarray(x[1]).mean()) / 255 for x in w]))})()
    res = sc.score(frames, prompt="a cat", reference=Reference("cat", Image.fromarray(data.chelsea())), kind="object",
                   metrics=[NATURAL, SMOOTHNESS])
    assert res[NATURAL].value == pytest.approx(10 / 3) and res[SMOOTHNESS].status == "ok"


def test_full_preset_skips_a_metric_whose_weights_are_missing(tmp_path, monkeypatch):
    from skimage import data

    from vm_eval.scorer import Reference

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, sc = _scorer("full", curricularface_weights=str(tmp_path / "none.bin"),
                    opens2v_aesthetic_weights=str(tmp_path / "none.pth"))
    frames = shifting_video(smooth_texture(64, seed=1), 2, 4)
    res = sc.score(frames, prompt="p", reference=Reference("a", Image.fromarray(data.astronaut())), kind="human",
                   metrics=[MOTION, FACESIM_CUR, AESTHETIC])
    assert res[MOTION].status == "ok"
    for m in (FACESIM_CUR, AESTHETIC):
        assert res[m].status == "skipped" and "not available" in res[m].reason and "How to get it" in res[m].reason


# ------------------------------------------------------------------------------------------- GME and NexusScore
@pytest.fixture(scope="module")
def gme():
    from vm_eval.opens2v_models import GmeEmbedder
    from vm_eval.tiny import tiny_gme

    return GmeEmbedder.load(tiny_gme())


def test_gme_pools_the_last_real_token_whatever_the_padding(gme):
    texts = ["a cat", "a much longer prompt about a dog on a beach"]
    both = gme.text_embeddings(texts, instruction="Find an image that matches the given text.")
    alone = np.concatenate([gme.text_embeddings([t], instruction="Find an image that matches the given text.")
                            for t in texts])
    assert both.shape == (2, 32) and np.allclose(np.linalg.norm(both, axis=1), 1.0, atol=1e-5)
    assert np.allclose(both, alone, atol=1e-5)  # right padding does not move the pooled token
    other = gme.text_embeddings(texts[:1], instruction="You are a helpful assistant.")
    assert not np.allclose(other[0], both[0], atol=1e-4)  # the instruction is part of the sequence


def test_gme_image_embeddings_see_the_image(gme):
    rng = np.random.default_rng(0)
    a, b = (Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)) for _ in range(2))
    e = gme.image_embeddings([a, a, b])
    assert e.shape == (3, 32) and np.allclose(e[0], e[1], atol=1e-5) and not np.allclose(e[0], e[2], atol=1e-4)


def test_gme_fetch_size_rounds_to_28_within_bounds():
    from vm_eval.opens2v_models import gme_fetch_size

    assert gme_fetch_size(100, 150) == (112, 140)
    h, w = gme_fetch_size(10, 30)  # below 4 x 28^2 pixels: scaled up, multiples of 28, aspect kept roughly
    assert h % 28 == 0 and w % 28 == 0 and h * w >= 4 * 28 * 28 and w > h
    h, w = gme_fetch_size(20000, 30000)  # above 16384 x 28^2 pixels: scaled down
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 16384 * 28 * 28 and w > h


def test_nexus_through_the_scorer_with_a_plugged_detector():
    from skimage import data

    from vm_eval.opens2v import Detection
    from vm_eval.scorer import Reference

    class Boxes:
        model_id = "fake"

        def __init__(self):
            self.calls = 0

        def detect(self, frame, prompt_image):
            self.calls += 1
            return [Detection((10, 10, 60, 50), 0.9)] if self.calls % 2 else []

    enc, sc = _scorer("tiny")
    det = Boxes()
    enc.opens2v.models.nexus_detector = det
    frames = shifting_video(smooth_texture(96, seed=1), 3, 8)
    r = sc.score(frames, prompt="a cat", reference=Reference("cat", Image.fromarray(data.chelsea())), kind="object",
                 metrics=[NEXUS])[NEXUS]
    assert det.calls == 32 and r.status == "ok" and r.detail["boxes"] == 16
    assert r.detail["frames_with_detection"] == 16 and r.value >= 0.0


@pytest.mark.slow
def test_score_command_with_paper_and_opens2v_suites(tmp_path):
    from skimage import data

    from vm_common.io_utils import read_jsonl
    from vm_common.media import write_gif
    from vm_eval.bench import main as bench_main
    from vm_eval.metrics import OPENS2V_COLUMNS

    Image.fromarray(data.astronaut()).save(tmp_path / "astronaut.png")
    write_gif(tmp_path / "v.gif", shifting_video(smooth_texture(96, 1), 4, 5))
    row = {"video": "v.gif", "prompt": "An astronaut.", "reference": "astronaut.png", "subject": "a1", "method": "M",
           "kind": "human"}
    (tmp_path / "m.jsonl").write_text(json.dumps(row) + "\n")
    out = tmp_path / "out"
    assert bench_main(["score", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(out), "--preset", "tiny",
                       "--flow", "dis", "--suites", "paper,opens2v", "--no-progress"]) == 0
    by = {r["metric"]: r for r in read_jsonl(out / "samples.jsonl")}
    assert {m for m in OPENS2V_COLUMNS if m != NEXUS} <= set(by) and NEXUS not in by and "clip_t" in by
    assert by[MOTION]["status"] == "ok" and by[NATURAL]["status"] == "skipped" and by[NATURAL]["reason"]
    assert "OpenS2V-Eval" in (out / "table.md").read_text()
    assert "opens2v" in json.loads((out / "run.json").read_text())["scoring_models"]


def test_judge_options_are_checked_when_the_command_is_parsed(tmp_path, caplog):
    from vm_eval.bench import main as bench_main
    from vm_eval.opens2v_models import OpenS2VOptions

    with pytest.raises(ValueError, match="natural-judge-url"):
        OpenS2VOptions(natural_judge="http")
    with pytest.raises(ValueError, match="http"):
        OpenS2VOptions(natural_judge="http", natural_judge_url="ftp://x")
    with pytest.raises(ValueError, match="natural-judge-model"):
        OpenS2VOptions(natural_judge="local")
    with pytest.raises(ValueError, match="not a file"):
        OpenS2VOptions(natural_prompt_file=tmp_path / "none.txt")
    (tmp_path / "m.jsonl").write_text("")
    assert bench_main(["score", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o"), "--preset",
                       "tiny", "--suites", "opens2v", "--natural-judge", "http", "--no-progress"]) == 2
    assert "needs --natural-judge-url" in caplog.text


def test_local_transformers_judge_runs_end_to_end_and_garbage_is_an_error():
    from vm_eval.opens2v_judge import LocalVLMJudge
    from vm_eval.tiny import tiny_gme

    judge = LocalVLMJudge(str(tiny_gme()))  # a tiny random Qwen2-VL: it answers noise
    frames = shifting_video(smooth_texture(64), 1, 4)
    answer = judge.rate(judge_frames(frames), "Rate 1-5")
    assert isinstance(answer, str) and answer
    r = natural_score(judge, frames, repeats=1, prompt="Rate 1-5")
    assert r.status == "error" and "without a score" in r.reason and r.detail["answers"] == [answer[:200]]
