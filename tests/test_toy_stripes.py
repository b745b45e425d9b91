"""The toy domain's stripes attribute (caption and reference both show the stripe orientation) and its metric."""

from __future__ import annotations

import numpy as np
import pytest

from vm_model.toy.domain import (
    STRIPES,
    SubjectRanges,
    ToyDomain,
    caption_for,
    direction_in_caption,
    heldout_subjects,
    make_toy_dataset,
    opposite_stripes,
    render,
    stripes_in_caption,
    subject_caption,
)
from vm_model.toy.metrics import stripe_orientation

STRIPED = SubjectRanges(jitter=0.2, attribute="stripes")


def test_default_domain_is_unchanged():
    """The shipped toy model's held-out subjects (and so the toy benchmark) do not move."""
    subject = heldout_subjects(ToyDomain(), 2)[1]
    assert subject.texture == "hstripes" and subject.shape == "square" and subject.direction == "right"
    assert subject.radius == pytest.approx(6.935277150808132) and subject.color1 == (251, 202, 24)
    assert subject_caption(subject, ToyDomain().ranges) == "a shape moving right"


def test_stripes_domain_captions_and_balance():
    subjects = heldout_subjects(ToyDomain(ranges=STRIPED), 16)
    assert [s.texture for s in subjects[:8]] == ["hstripes"] * 4 + ["vstripes"] * 4
    assert {(s.direction, s.texture) for s in subjects} == {(d, t) for d in ("left", "right", "up", "down")
                                                           for t in STRIPES}
    caption = subject_caption(subjects[0], STRIPED)
    assert caption == "a shape with horizontal stripes moving left"
    assert stripes_in_caption(caption) == "hstripes" and direction_in_caption(caption) == "left"
    conflict = subject_caption(subjects[0], STRIPED, opposite_stripes(subjects[0].texture))
    assert stripes_in_caption(conflict) == "vstripes"
    with pytest.raises(ValueError, match="stripes must be one of"):
        caption_for("left", "checker")


def test_stripe_orientation_of_ground_truth_clips():
    subjects = heldout_subjects(ToyDomain(ranges=STRIPED), 16)
    for s in subjects:
        frames, _ = render(s, 4, 32)
        assert stripe_orientation(frames) == s.texture
        turned = np.ascontiguousarray(frames.transpose(0, 2, 1, 3))  # x <-> y: the other orientation
        assert stripe_orientation(turned) == opposite_stripes(s.texture)


def test_plain_or_missing_subject_has_no_orientation():
    plain = heldout_subjects(ToyDomain(ranges=SubjectRanges(colours=1, attribute="stripes")), 1)[0]
    assert stripe_orientation(render(plain, 4, 32)[0]) == "none"
    assert stripe_orientation(np.full((4, 32, 32, 3), 16, np.uint8)) == "none"


def test_unknown_attribute_is_refused():
    with pytest.raises(ValueError, match="toy attribute"):
        heldout_subjects(ToyDomain(ranges=SubjectRanges(attribute="size")), 1)


def test_training_manifest_names_the_orientation(tmp_path):
    from vm_data.clip_manifest import read_manifest

    manifest = make_toy_dataset(tmp_path, 8, num_frames=2, size=32, ranges=STRIPED)
    rows = list(read_manifest(manifest, status="kept"))
    for row in rows:
        texture = row.extra["toy_subject"]["texture"]
        assert stripes_in_caption(row.caption) == texture
    assert [r.extra["toy_subject"]["texture"] for r in rows] == ["hstripes"] * 4 + ["vstripes"] * 4


def test_stage2_manifest_names_the_attribute_in_a_fraction(tmp_path):
    from benchmarks.toy_customization import ToyConfig, stage2_manifest
    from vm_data.clip_manifest import read_manifest

    manifest = make_toy_dataset(tmp_path, 16, num_frames=2, size=32, ranges=STRIPED)
    assert stage2_manifest(ToyConfig(attribute="stripes"), manifest) == manifest  # fraction 1: unchanged
    assert stage2_manifest(ToyConfig(attribute="none", stage2_attribute_captions=0.0), manifest) == manifest
    half = stage2_manifest(ToyConfig(attribute="stripes", stage2_attribute_captions=0.5), manifest)
    rows, original = list(read_manifest(half)), list(read_manifest(manifest))
    named = [stripes_in_caption(r.caption) is not None for r in rows]
    assert 0 < sum(named) < len(rows)
    for row, before in zip(rows, original):
        assert direction_in_caption(row.caption) == direction_in_caption(before.caption)
        assert row.caption in (before.caption, caption_for(row.extra["toy_subject"]["direction"]))
    none = stage2_manifest(ToyConfig(attribute="stripes", stage2_attribute_captions=0.0), manifest)
    assert not any(stripes_in_caption(r.caption) for r in read_manifest(none))
