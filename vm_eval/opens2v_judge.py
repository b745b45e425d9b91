"""NaturalScore (OpenS2V-Eval): a vision-language judge rates how real a video looks, 1..5. Never required.

OpenS2V's ``get_naturalscore.py`` sends 16 frames (``cv2.VideoCapture`` positions ``i * max(F // 16, 1)``, those
that exist), each resized so its long side is 512 (area) and JPEG-encoded (OpenCV's default quality 95), as
``data:image/jpeg;base64`` image parts followed by one text part (its rating prompt) to an OpenAI-compatible chat
completion (``gpt-4o-2024-11-20``), three times; the per-video score is the mean of the three answers.

The judge is pluggable (:class:`Judge`): :class:`HttpJudge` posts that request to an endpoint the user configures
(any OpenAI-compatible ``/chat/completions`` server, local or remote; the API key is read from an environment
variable the user names and is never written anywhere), :class:`LocalVLMJudge` runs a vision-language model through
transformers. The default prompt is ours (the same criteria and 1..5 scale); ``--natural-prompt-file`` takes
OpenS2V's own prompt text for exact reproduction. An answer without a score 1..5 is an ``error`` result, never a
number.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from vm_common.errors import UserError

from .results import MetricResult

logger = logging.getLogger(__name__)

JUDGE_FRAMES = 16
LONG_SIDE = 512
DEFAULT_MODEL = "gpt-4o-2024-11-20"
DEFAULT_PROMPT = """\
You are shown frames extracted from one short video clip. Judge how real the clip looks.

Consider: whether objects, people and their interactions make sense together; whether lighting, shadows, reflections
and motion obey physics; whether textures, details and proportions look as they would in real life; and whether
there are signs of AI generation such as blur, morphing, glitches, distortions or inconsistencies between frames.
If people are present, look closely at faces (eyes, mouth, nose) and at body proportions, limbs and hands.

Score on this scale:
1 - definitely AI-generated: frequent clear artifacts, distorted shapes, impossible physics or anatomy.
2 - likely AI-generated: noticeable cues such as inconsistent anatomy, changing textures, mildly implausible motion.
3 - uncertain: mostly natural with subtle flaws or small anomalies.
4 - likely real: natural and plausible, only minor explainable irregularities.
5 - definitely real: fully consistent with real-world appearance and physics, no visible artifacts.

Reply with the score (1-5) only."""

# the whole answer must be the score: "4", "4.0", "Score: 4", "4/5", "**4**" (OpenS2V's merge takes float(answer))
_SCORE = re.compile(r"(?:score\s*[:=]?\s*)?([1-5])(?:\.0+)?(?:\s*/\s*5)?[.!]?", re.IGNORECASE)


class JudgeError(RuntimeError):
    """The judge could not give an answer (endpoint unreachable, bad reply)."""


class Judge(Protocol):
    model_id: str

    def rate(self, frames_jpeg: Sequence[bytes], prompt: str) -> str:
        """The judge's raw answer for these JPEG frames and this prompt."""


def judge_frame_indices(total: int, num: int = JUDGE_FRAMES) -> list[int]:
    step = max(total // num, 1)
    return [i * step for i in range(num) if i * step < total]


def resize_long_side(bgr: np.ndarray, target: int = LONG_SIDE) -> np.ndarray:
    import cv2

    h, w = bgr.shape[:2]
    size = (int(w * target / h), target) if h >= w else (target, int(h * target / w))
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)


def judge_frames(frames: np.ndarray) -> list[bytes]:
    """The JPEG bytes OpenS2V sends for uint8 RGB frames (F, H, W, 3)."""
    import cv2

    out = []
    for i in judge_frame_indices(len(frames)):
        ok, buf = cv2.imencode(".jpg", resize_long_side(np.ascontiguousarray(frames[i][..., ::-1])))
        if not ok:
            raise JudgeError(f"could not JPEG-encode frame {i}")
        out.append(buf.tobytes())
    return out


def parse_score(answer: str) -> int | None:
    """The score 1..5 a judge's answer consists of ("4", "4.0", "Score: 4", "4/5", "**4**"), else None."""
    m = _SCORE.fullmatch(answer.strip().strip("*`'\"").strip())
    return int(m.group(1)) if m else None


def chat_request(frames_jpeg: Sequence[bytes], prompt: str, model: str) -> dict:
    """The OpenAI-compatible chat-completion body: the frames as image parts, then the prompt."""
    parts = [{"type": "image_url",
              "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(b).decode("ascii")}}
             for b in frames_jpeg]
    parts.append({"type": "text", "text": prompt})
    return {"model": model, "stream": False, "messages": [{"role": "user", "content": parts}]}


def natural_score(judge: Judge, frames: np.ndarray, *, repeats: int = 3, prompt: str = DEFAULT_PROMPT
                  ) -> MetricResult:
    """Mean of ``repeats`` ratings of the video's frames (an answer that is not a score 1..5: error)."""
    jpeg = judge_frames(frames)
    answers, scores = [], []
    for _ in range(repeats):
        try:
            answer = judge.rate(jpeg, prompt)
        except JudgeError as exc:
            return MetricResult.error(f"NaturalScore judge failed: {exc}", answers=answers)
        answers.append(answer[:200])
        s = parse_score(answer)
        if s is None:
            return MetricResult.error(f"NaturalScore judge answered without a score 1-5: {answer[:80]!r}",
                                      answers=answers)
        scores.append(s)
    return MetricResult.ok(float(np.mean(scores)), ratings=scores, n_frames=len(jpeg), judge=judge.model_id)


@dataclass
class HttpJudge:
    """An OpenAI-compatible chat-completions endpoint (``url`` is the full ``.../chat/completions`` address)."""

    url: str
    model: str = DEFAULT_MODEL
    api_key_env: str | None = None  # name of the environment variable holding the key (never stored)
    timeout_s: float = 120.0
    retries: int = 5  # OpenS2V retries up to 5 times with exponential waits of 2..10 s
    backoff_s: tuple[float, float] = (2.0, 10.0)
    model_id: str = field(init=False)

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise UserError(f"--natural-judge-url must be an http(s) URL, got {self.url!r}")
        self.model_id = f"http:{self.model}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise UserError(f"--natural-judge-key-env names {self.api_key_env}, which is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def rate(self, frames_jpeg: Sequence[bytes], prompt: str) -> str:
        import time

        import requests

        body = json.dumps(chat_request(frames_jpeg, prompt, self.model))
        last: Exception | None = None
        for attempt in range(max(1, self.retries)):
            try:
                r = requests.post(self.url, data=body, headers=self._headers(), timeout=self.timeout_s)
                r.raise_for_status()
                return str(r.json()["choices"][0]["message"]["content"]).strip()
            except (requests.RequestException, KeyError, IndexError, ValueError) as exc:
                last = exc
                if attempt + 1 < self.retries:
                    time.sleep(min(self.backoff_s[1], self.backoff_s[0] * 2 ** attempt))
        raise JudgeError(f"{self.url}: {type(last).__name__}: {last}")


class LocalVLMJudge:
    """A vision-language model loaded with transformers (``AutoModelForImageTextToText`` + ``AutoProcessor``,
    chat template with the frames as images then the prompt; greedy decoding of a few tokens)."""

    def __init__(self, source: str | Path, device: str = "cpu", max_new_tokens: int = 8):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from vm_common.weights import resolve_source

        path = resolve_source(str(source), what="NaturalScore local judge (a transformers vision-language model)")
        self.processor = AutoProcessor.from_pretrained(str(path))
        self.model = AutoModelForImageTextToText.from_pretrained(str(path)).to(device).eval()
        self.device, self.max_new_tokens = device, max_new_tokens
        self.model_id = f"transformers:{source}"

    def rate(self, frames_jpeg: Sequence[bytes], prompt: str) -> str:
        import io

        import torch
        from PIL import Image

        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in frames_jpeg]
        messages = [{"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text",
                                                                                          "text": prompt}]}]
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = self.processor(text=[text], images=images, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]


def read_prompt(path: Path | None) -> str:
    if path is None:
        return DEFAULT_PROMPT
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--natural-prompt-file: not a file: {p}")
    text = p.read_text(encoding="utf-8")
    if not text.strip():
        raise UserError(f"--natural-prompt-file is empty: {p}")
    return text
