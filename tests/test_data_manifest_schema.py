"""The training manifest's schema versions: version-1 rows still read; version-2 subjects round-trip; a malformed
subject is a ManifestError naming the line."""

import json

import pytest

from vm_data.clip_manifest import (SCHEMA_VERSION, ManifestError, ManifestRow, SubjectEntry, append_manifest,
                                   read_manifest)


def test_version_1_row_reads_without_subjects(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps({"clip_id": "c0", "video": "c0.mp4", "caption": "a dog", "references": ["r.png"],
                                "schema_version": 1}) + "\n")
    (row,) = read_manifest(path)
    assert row.subjects == [] and row.references == ["r.png"] and row.schema_version == 1


def test_version_2_subjects_round_trip(tmp_path):
    path = tmp_path / "manifest.jsonl"
    row = ManifestRow(clip_id="c1", video="c1.mp4", caption="a dog and a cat", references=["dog.png"],
                      subjects=[SubjectEntry(name="dog", references=["dog.png"], masks="dog.npz"),
                                {"name": "cat", "references": ["cat.png"], "masks": "cat.npz", "scores": [0.5]}])
    append_manifest(path, [row])
    (back,) = read_manifest(path)
    assert back.schema_version == SCHEMA_VERSION == 2
    assert [s.name for s in back.subjects] == ["dog", "cat"]
    assert back.subjects[1] == SubjectEntry(name="cat", references=["cat.png"], masks="cat.npz", scores=[0.5])


@pytest.mark.parametrize("subjects, message", [
    ("dog", "subjects must be a list"),
    ([{"name": ""}], "non-empty name"),
    ([{"name": "dog", "colour": "red"}], "unknown field"),
    ([{"name": "dog"}, {"name": "dog"}], "repeat"),
    ([7], "must be an object"),
])
def test_malformed_subject_names_the_line(tmp_path, subjects, message):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps({"clip_id": "c0", "video": "c0.mp4", "subjects": subjects}) + "\n")
    with pytest.raises(ManifestError, match=message) as info:
        list(read_manifest(path))
    assert "manifest.jsonl" in str(info.value) and "line 1" in str(info.value)
