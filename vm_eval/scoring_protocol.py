"""The scoring protocols (``--protocol``): what each does where the authors' scripts and a corrected computation
differ. ``videomaker`` reproduces the authors' evaluation, quirks included; ``corrected`` does what the models and
files call for. Each choice is recorded in ``run.json`` (``protocol_choices``); docs/eval.md has the table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

DD_FPS = 8.0  # the authors' DD reader keeps every round(fps / 8)-th frame of a video


@dataclass(frozen=True)
class ScoringProtocol:
    """One scoring protocol's choices.

    - ``face_channels``: ``rgb`` feeds insightface RGB arrays (the authors' quirk), ``bgr`` what it expects.
    - ``reference_reading``: ``raw`` reads reference files as the authors' scripts did (no EXIF transpose,
      transparency dropped by PIL's ``convert("RGB")``, CLIP's resize and crop in the file's own mode);
      ``corrected`` applies the EXIF orientation and composites transparency on white.
    - ``frozen_video_dd``: a video of one frame (a GIF whose identical frames were merged): ``static`` counts it
      not dynamic (DD 0), as the authors' code did; ``error`` leaves it out of the DD fraction.
    - ``dd_fps_subsample``: on a non-GIF video (mp4, ...) keep every ``round(fps / 8)``-th frame for DD, as the
      authors' reader did; otherwise all frames.
    - ``dino_layernorm_eps``: the LayerNorm eps the DINO model is run with (None: the timm build's, 1e-6).
    """

    name: str
    face_channels: str
    reference_reading: str
    frozen_video_dd: str
    dd_fps_subsample: bool
    dino_layernorm_eps: float | None

    def describe(self) -> dict:
        """The choices as a JSON-able dict (for run.json)."""
        out = dataclasses.asdict(self)
        out.pop("name")
        return out

    def dd_frame_interval(self, fps: float | None) -> int:
        """Every how many frames DD keeps of a video read at ``fps`` (1: all; None or 0 fps: all)."""
        if not self.dd_fps_subsample or not fps or fps <= 0:
            return 1
        return max(1, int(round(fps / DD_FPS)))  # Python's round, as the authors' reader


SCORING_PROTOCOLS: dict[str, ScoringProtocol] = {
    "videomaker": ScoringProtocol("videomaker", face_channels="rgb", reference_reading="raw",
                                  frozen_video_dd="static", dd_fps_subsample=True, dino_layernorm_eps=1e-12),
    "corrected": ScoringProtocol("corrected", face_channels="bgr", reference_reading="corrected",
                                 frozen_video_dd="error", dd_fps_subsample=False, dino_layernorm_eps=None),
}


def scoring_protocol(name: str) -> ScoringProtocol:
    """The protocol called ``name``; ValueError naming the known ones otherwise."""
    try:
        return SCORING_PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown scoring protocol {name!r}; expected one of {tuple(SCORING_PROTOCOLS)}") from None
