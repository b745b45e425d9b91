"""Issue 11 §8: tabular inputs. A UTF-8 BOM (what spreadsheets write), extra fields, an unterminated quote and JSONL
fields of the wrong type each give a row-level error naming file and line, and never swallow or corrupt a
neighbouring row - in the dataset readers of `vm preprocess-dataset` and the scoring manifest of `vm bench score`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vm_data.sources import discover


def _by_video(specs) -> dict[str, object]:
    return {Path(s.video).name: s for s in specs if s.video}


def _errors(specs) -> list[str]:
    return [s.input_error for s in specs if getattr(s, "input_error", None)]


def test_csv_with_a_byte_order_mark_is_read(tmp_path):
    (tmp_path / "clips.csv").write_bytes("\ufeffvideo,caption\na.mp4,a dog\nb.mp4,a cat\n".encode("utf-8"))
    specs = discover(tmp_path / "clips.csv")
    assert [(Path(s.video).name, s.caption) for s in specs] == [("a.mp4", "a dog"), ("b.mp4", "a cat")]


def test_csv_bad_lines_are_errors_of_their_own_and_spare_their_neighbours(tmp_path):
    path = tmp_path / "clips.csv"
    path.write_text("video,caption\n"
                    "a.mp4,a dog\n"
                    'b.mp4,"an unterminated quote\n'
                    "c.mp4,a cat\n"
                    "d.mp4,a bird,unexpected extra field\n"
                    "e.mp4,a fish\n", encoding="utf-8")
    specs = discover(path)
    good = _by_video(specs)
    assert {name: s.caption for name, s in good.items()} == {"a.mp4": "a dog", "c.mp4": "a cat",
                                                            "e.mp4": "a fish"}
    errors = _errors(specs)
    assert len(specs) == 5 and len(errors) == 2
    assert f"{path}, line 3" in errors[0] and "quote" in errors[0]
    assert f"{path}, line 5" in errors[1] and "3 fields but the header has 2" in errors[1]


def test_jsonl_fields_of_the_wrong_type_are_row_errors(tmp_path):
    path = tmp_path / "clips.jsonl"
    rows = [{"video": "a.mp4", "caption": "a dog", "references": ["r1.png"]},
            {"video": "b.mp4", "caption": "a cat", "references": 5},
            {"video": "c.mp4", "caption": ["a", "list"]},
            {"video": 7, "caption": "x"},
            {"video": "d.mp4", "caption": "a bird", "class_word": "bird"}]
    path.write_text("\ufeff" + "".join(json.dumps(r) + "\n" for r in rows) + '{"video": "e.mp4", "capt',
                    encoding="utf-8")
    specs = discover(path)
    good = _by_video(specs)
    assert sorted(good) == ["a.mp4", "d.mp4"] and good["a.mp4"].reference_images == [str(tmp_path / "r1.png")]
    errors = _errors(specs)
    assert len(errors) == 4
    for line, word in zip((2, 3, 4, 6), ("references", "caption", "video", "not valid JSON")):
        assert any(f"line {line}:" in e and word in e for e in errors), (line, errors)


def test_bad_input_rows_become_error_rows_of_the_manifest(tmp_path):
    from vm_data.clip_processing import ClipRules, prepare_clip

    (tmp_path / "clips.csv").write_text('video,caption\n"x.mp4,oops\n', encoding="utf-8")
    (spec,) = discover(tmp_path / "clips.csv")
    row = prepare_clip(spec, ClipRules()).row
    assert row.status == "error" and row.extra["error_kind"] == "bad_input_row" and "line 2" in row.reason


def test_score_manifest_names_every_bad_line(tmp_path):
    from vm_eval.score_manifest import ScoreManifestError, read_score_manifest

    good = {"video": "v.gif", "prompt": "p", "reference": "r.png", "subject": "s", "method": "M"}
    lines = ["\ufeff" + json.dumps(good),
             json.dumps({**good, "sample_id": "2", "prompt": ["a", "list"]}),
             json.dumps({**good, "sample_id": "3", "video": 12}),
             json.dumps({**good, "sample_id": "4", "seed": "forty-two"}),
             "not json at all",
             json.dumps({**good, "sample_id": "6"})]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ScoreManifestError) as exc:
        read_score_manifest(path)
    message = str(exc.value)
    for line, word in ((2, "prompt"), (3, "video"), (4, "seed"), (5, "JSON")):
        assert f"{path}, line {line}: " in message and word in message, (line, message)
    assert "line 1:" not in message and "line 6:" not in message and "4 bad row(s)" in message
    path.write_text("\n".join([lines[0], lines[-1]]) + "\n", encoding="utf-8")
    tasks = read_score_manifest(path)
    assert [t.sample_id for t in tasks] == ["s:v.gif", "6"]
