"""The models of OpenS2V-Eval's metrics (:mod:`vm_eval.opens2v`), each loaded on first use, each optional.

A metric whose model is not available is ``skipped`` with the reason (the missing-weights message: what, where we
looked, how to get it), never a failure of the run: the suite's models are large (GME-Qwen2-VL 7B, Q-Align 8B) and
one missing must not stop the others.

Full preset: insightface buffalo_l (shared with Face Sim) at det size 320 + CurricularFace IR-101
(``BestWishYsh/OpenS2V-Weight`` ``glint360k_curricular_face_r101_backbone.bin``); CLIP ViT-L/14 (shared with VBench
aesthetic quality, float32 as OpenS2V runs it) + the MLP head ``aesthetic-model.pth``; GME-Qwen2-VL
(``Alibaba-NLP/gme-Qwen2-VL-7B-Instruct``) through transformers; Q-Align (``q-future/one-align``, an mPLUG-Owl2
model whose modelling code ships in its repository, so the toolkit does not load it: plugged in from Python,
``OpenS2VModels.qalign``); the NaturalScore
judge when one is configured. NexusScore's detector (YOLO-World v2-L with the image-prompt adapter, an mmyolo model)
cannot be built here: mmcv/mmyolo are not installable under ``constraints.txt`` and ultralytics' YOLO-World is a
different, text-prompted model; a :class:`~vm_eval.opens2v.SubjectDetector` can be plugged in from Python
(``OpenS2VModels.nexus_detector``). Tiny preset: random stand-ins (tiny face pack, tiny-width IR backbone, tiny CLIP +
random MLP head, a tiny random Qwen2-VL for GME) that load through the same code; Q-Align and the judge have
none and are skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from vm_common.weights import MissingWeightsError

logger = logging.getLogger(__name__)


class Unavailable(RuntimeError):
    """A metric's model cannot be had in this run; the message is the recorded skip reason."""


@dataclass
class OpenS2VOptions:
    curricularface_weights: str | None = field(default=None, metadata={
        "help": "OpenS2V FaceSim-Cur: CurricularFace IR-101 state dict (path, or a folder / hub id holding "
                "glint360k_curricular_face_r101_backbone.bin)"})
    opens2v_aesthetic_weights: str | None = field(default=None, metadata={
        "help": "OpenS2V Aesthetics: the MLP head aesthetic-model.pth (path, or a folder / hub id holding it)"})
    gme_weights: str | None = field(default=None, metadata={
        "help": "OpenS2V GmeScore / NexusScore: GME-Qwen2-VL folder or hub id"})
    natural_judge: str = field(default="off", metadata={
        "help": "OpenS2V NaturalScore judge: off (skipped), http (an OpenAI-compatible endpoint) or local (a "
                "transformers vision-language model)", "choices": ["off", "http", "local"]})
    natural_judge_url: str | None = field(default=None, metadata={
        "help": "http judge: the full chat-completions URL, e.g. http://127.0.0.1:8000/v1/chat/completions"})
    natural_judge_model: str | None = field(default=None, metadata={
        "help": "http judge: the model name sent (default gpt-4o-2024-11-20, OpenS2V's); local judge: the model "
                "folder or hub id"})
    natural_judge_key_env: str | None = field(default=None, metadata={
        "help": "http judge: name of the environment variable holding the API key (the key is never recorded)"})
    natural_prompt_file: Path | None = field(default=None, metadata={
        "help": "NaturalScore rating prompt (default: ours; give OpenS2V's prompt text to reproduce it exactly)"})
    natural_repeats: int = field(default=3, metadata={"help": "NaturalScore ratings averaged per video (OpenS2V: 3)",
                                                      "min": 1, "max": 10})

    def __post_init__(self) -> None:
        if self.natural_judge not in ("off", "http", "local"):
            raise ValueError(f"unknown NaturalScore judge {self.natural_judge!r}; expected off, http or local")
        if self.natural_judge == "http" and not self.natural_judge_url:
            raise ValueError("--natural-judge http needs --natural-judge-url (an OpenAI-compatible "
                             "chat-completions URL)")
        if self.natural_judge_url and not self.natural_judge_url.startswith(("http://", "https://")):
            raise ValueError(f"--natural-judge-url must be an http(s) URL, got {self.natural_judge_url!r}")
        if self.natural_judge == "local" and not self.natural_judge_model:
            raise ValueError("--natural-judge local needs --natural-judge-model (a model folder or hub id)")
        if self.natural_prompt_file is not None and not Path(self.natural_prompt_file).is_file():
            raise ValueError(f"--natural-prompt-file: not a file: {self.natural_prompt_file}")


def _unavailable(exc: Exception) -> Unavailable:
    return Unavailable(str(exc).replace("\n", " "))


class OpenS2VModels:
    """``encoders``: the session's :class:`~vm_eval.encoders.Encoders` (device, dtype, preset, weight sources).

    Each property returns the model or raises :class:`Unavailable` (remembered, so a missing model is looked for
    once per run)."""

    def __init__(self, encoders, options: OpenS2VOptions | None = None):
        self.encoders = encoders
        self.options = options or OpenS2VOptions()
        self.tiny = encoders.config.preset == "tiny"
        self._failed: dict[str, Unavailable] = {}
        self._plugged_detector = None

    def _load(self, name: str, loader):
        if name in self.__dict__:  # loaded, or plugged in from Python
            return self.__dict__[name]
        if name in self._failed:
            raise self._failed[name]
        try:
            value = loader()
        except (MissingWeightsError, Unavailable) as exc:
            self._failed[name] = exc if isinstance(exc, Unavailable) else _unavailable(exc)
            logger.warning("OpenS2V %s unavailable: %s", name, self._failed[name])
            raise self._failed[name] from None
        self.__dict__[name] = value
        return value

    # ----------------------------------------------------------------------------------------------- FaceSim
    @property
    def face(self):
        """(detector at det size 320, ArcFace embedder, CurricularFace backbone, device)."""
        return self._load("face", self._load_face)

    def _load_face(self):
        from .curricularface import load_curricularface
        from .face import ArcFaceEmbedder, ScrfdDetector
        from .opens2v import FACE_DET_SIZE

        enc = self.encoders
        if self.tiny:
            from .tiny import tiny_curricularface, tiny_face_pack

            pack, cur_path = tiny_face_pack(), tiny_curricularface()
        else:
            from .registry import CURRICULARFACE, FACE

            pack = FACE.resolve(enc.config.face_weights)
            cur_path = CURRICULARFACE.resolve(self.options.curricularface_weights)
        providers = enc._onnx_providers()
        det = ScrfdDetector(pack / "det_10g.onnx", det_size=FACE_DET_SIZE, providers=providers)
        emb = ArcFaceEmbedder(pack / "w600k_r50.onnx", providers=providers)
        return det, emb, load_curricularface(cur_path, device=enc.device), enc.device

    # ---------------------------------------------------------------------------------------------- Aesthetics
    @property
    def aesthetic_clip(self):
        return self._load("aesthetic_clip", self._load_aesthetic_clip)

    def _load_aesthetic_clip(self):
        """VBench's CLIP ViT-L/14 when it runs in float32 (shared); a float32 copy otherwise (OpenS2V: fp32)."""
        enc = self.encoders
        if enc.dtype == torch.float32:
            return enc.vbench.models.clip_l14
        from .clip import ClipEncoder
        from .registry import CLIP_L14
        from .vbench_models import CLIP_L14_NAME

        src = enc.config.clip_l14_weights
        return ClipEncoder.load(CLIP_L14.resolve(src), CLIP_L14_NAME, device=enc.device, dtype=torch.float32,
                                model_id=f"open_clip:{CLIP_L14_NAME}:{src or CLIP_L14.default}")

    @property
    def aesthetic_head(self):
        return self._load("aesthetic_head", self._load_aesthetic_head)

    def _load_aesthetic_head(self):
        from .opens2v import load_aesthetic_mlp

        if self.tiny:
            from .tiny import tiny_opens2v_aesthetic

            return load_aesthetic_mlp(tiny_opens2v_aesthetic(), self.encoders.device)
        from .registry import OPENS2V_AESTHETIC

        return load_aesthetic_mlp(OPENS2V_AESTHETIC.resolve(self.options.opens2v_aesthetic_weights),
                                  self.encoders.device)

    # ------------------------------------------------------------------------------------------ GME / Q-Align
    @property
    def gme(self):
        return self._load("gme", self._load_gme)

    def _load_gme(self):
        if self.tiny:
            from .tiny import tiny_gme

            return GmeEmbedder.load(tiny_gme(), device=self.encoders.device)
        from .registry import GME as GME_SPEC

        return GmeEmbedder.load(GME_SPEC.resolve(self.options.gme_weights), device=self.encoders.device)

    @property
    def qalign(self):
        return self._load("qalign", self._load_qalign)

    def _load_qalign(self):
        raise Unavailable("MotionSmoothness needs Q-Align (q-future/one-align, mPLUG-Owl2), whose modelling code "
                          "ships inside its model repository, and the toolkit never runs code from files it reads; "
                          "load it in your own code and plug it in: OpenS2VModels.qalign = QAlignScorer(model, "
                          "tokenizer, image_processor, device, model_id)")

    @qalign.setter
    def qalign(self, scorer) -> None:
        """Plug in a Q-Align scorer built by the caller's own code (:class:`QAlignScorer` or any object with
        ``score_windows`` and ``model_id``)."""
        self.__dict__["qalign"] = scorer

    # ------------------------------------------------------------------------------------------------ Nexus
    @property
    def nexus_detector(self):
        if self._plugged_detector is not None:
            return self._plugged_detector
        raise Unavailable("NexusScore needs YOLO-World v2-L with the image-prompt adapter (an mmyolo model; mmcv / "
                          "mmyolo are not installable under constraints.txt and ultralytics' YOLO-World is a "
                          "different, text-prompted model); plug a detector in with OpenS2VModels.nexus_detector")

    @nexus_detector.setter
    def nexus_detector(self, detector) -> None:
        self._plugged_detector = detector

    # ---------------------------------------------------------------------------------------------- the judge
    @property
    def judge(self):
        return self._load("judge", self._load_judge)

    def _load_judge(self):
        from .opens2v_judge import DEFAULT_MODEL, HttpJudge, LocalVLMJudge

        o = self.options
        if o.natural_judge == "off":
            raise Unavailable("NaturalScore needs a judge: --natural-judge http --natural-judge-url URL, or "
                              "--natural-judge local --natural-judge-model MODEL (off by default)")
        if o.natural_judge == "http":  # OpenS2VOptions checked the URL / model are given
            return HttpJudge(o.natural_judge_url, o.natural_judge_model or DEFAULT_MODEL, o.natural_judge_key_env)
        return LocalVLMJudge(o.natural_judge_model, device=str(self.encoders.device))

    @cached_property
    def judge_prompt(self) -> str:
        from .opens2v_judge import read_prompt

        return read_prompt(self.options.natural_prompt_file)

    @property
    def model_id(self) -> str:
        o = self.options
        if self.tiny:
            return "tiny-random: buffalo_l layout + tiny IR backbone, tiny CLIP + random MLP head, tiny Qwen2-VL"
        from .registry import CURRICULARFACE, FACE, GME as GME_SPEC, OPENS2V_AESTHETIC

        c = self.encoders.config
        return (f"face {c.face_weights or FACE.default} @320 + CurricularFace "
                f"{o.curricularface_weights or CURRICULARFACE.default}; CLIP ViT-L/14 + MLP "
                f"{o.opens2v_aesthetic_weights or OPENS2V_AESTHETIC.default}; GME {o.gme_weights or GME_SPEC.default}; "
                f"Q-Align {getattr(self.__dict__.get('qalign'), 'model_id', 'not plugged in')}"
                f"; judge {o.natural_judge}")


# ------------------------------------------------------------------------------------------------------------ GME
GME_MIN_TOKENS, GME_MAX_TOKENS, GME_MAX_LENGTH = 256, 1280, 1800
GME_SYSTEM = "You are a helpful assistant."
GME_IMAGE_FACTOR, GME_FETCH_MIN, GME_FETCH_MAX = 28, 4 * 28 * 28, 16384 * 28 * 28


def gme_fetch_size(height: int, width: int) -> tuple[int, int]:
    """GME's own resize before the processor (``fetch_image``'s smart resize with its 4..16384 x 28^2 pixel
    bounds): sides rounded to multiples of 28, scaled into the bounds."""
    import math

    f = GME_IMAGE_FACTOR
    h = max(f, round(height / f) * f)
    w = max(f, round(width / f) * f)
    if h * w > GME_FETCH_MAX:
        beta = math.sqrt(height * width / GME_FETCH_MAX)
        h, w = math.floor(height / beta / f) * f, math.floor(width / beta / f) * f
    elif h * w < GME_FETCH_MIN:
        beta = math.sqrt(GME_FETCH_MIN / (height * width))
        h, w = math.ceil(height * beta / f) * f, math.ceil(width * beta / f) * f
    return h, w


class GmeEmbedder:
    """GME-Qwen2-VL embeddings as its reference wrapper computes them: one chat-formatted sequence per item
    (system instruction, user turn with an optional image and text, assistant turn ending in ``<|endoftext|>``),
    right padding, the last non-padding token's final hidden state, L2-normalised. Images are first resized by
    :func:`gme_fetch_size`, then by the processor within 256..1280 x 28^2 pixels."""

    def __init__(self, model, processor, device, model_id: str, batch_size: int = 32):
        self.model, self.processor, self.device = model, processor, torch.device(device)
        self.model_id, self.batch_size = model_id, batch_size
        self.processor.tokenizer.padding_side = "right"

    @classmethod
    def load(cls, path: Path, device="cpu") -> "GmeEmbedder":
        from transformers import AutoModelForImageTextToText, AutoProcessor

        dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
        model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=dtype).to(device).eval()
        processor = AutoProcessor.from_pretrained(str(path), min_pixels=GME_MIN_TOKENS * 28 * 28,
                                                  max_pixels=GME_MAX_TOKENS * 28 * 28)
        return cls(model, processor, device, f"transformers:{path}")

    def _messages(self, texts, images, instruction):
        out = []
        for t, im in zip(texts, images):
            body = ("<|vision_start|><|image_pad|><|vision_end|>" if im is not None else "") + (t or "")
            out.append(f"<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{body}<|im_end|>\n"
                       f"<|im_start|>assistant\n<|endoftext|>")
        return out

    @torch.inference_mode()
    def _embed(self, texts, images, instruction) -> np.ndarray:
        imgs = None
        if images[0] is not None:
            imgs = []
            for im in images:
                im = im.convert("RGB")
                h, w = gme_fetch_size(im.height, im.width)
                imgs.append(im.resize((w, h)))
        inputs = self.processor(text=self._messages(texts, images, instruction), images=imgs, padding=True,
                                truncation=True, max_length=GME_MAX_LENGTH, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        base = self.model.model
        embeds = base.get_input_embeddings()(inputs["input_ids"])
        if "pixel_values" in inputs:
            visual = base.visual(inputs["pixel_values"].to(base.visual.dtype), grid_thw=inputs["image_grid_thw"])
            visual = getattr(visual, "pooler_output", visual)
            mask = inputs["input_ids"] == self.model.config.image_token_id
            embeds[mask] = visual.to(embeds.dtype)
        mask = inputs["attention_mask"]
        # GME calls the text decoder without position ids: plain 1-D positions for every token, images included
        pos = torch.arange(embeds.shape[1], device=embeds.device).unsqueeze(0).expand(embeds.shape[0], -1)
        hidden = base.language_model(inputs_embeds=embeds, attention_mask=mask,
                                     position_ids=pos.unsqueeze(0).expand(3, -1, -1)).last_hidden_state
        last = hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(1) - 1]
        return torch.nn.functional.normalize(last.float(), dim=-1).cpu().numpy()

    def _batched(self, texts, images, instruction) -> np.ndarray:
        out = [self._embed(texts[i:i + self.batch_size], images[i:i + self.batch_size], instruction)
               for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def text_embeddings(self, texts, instruction: str) -> np.ndarray:
        return self._batched(list(texts), [None] * len(texts), instruction)

    def image_embeddings(self, images) -> np.ndarray:
        return self._batched([None] * len(images), list(images), GME_SYSTEM)


# -------------------------------------------------------------------------------------------------------- Q-Align
QALIGN_PROMPT = "USER: How would you rate the quality of this video?\n<|image|>\nASSISTANT: The quality of the video is"
QALIGN_LEVELS = ("excellent", "good", "fair", "poor", "bad")
QALIGN_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)
QALIGN_IMAGE_TOKEN = -200  # mPLUG-Owl2's image placeholder id in input_ids


class QAlignScorer:
    """Q-Align's video quality of each window: frames padded to squares with the processor's mean colour, the
    model's next-token logits for the five level words after the rating prompt, softmax, weighted by 1..0 (fp16)."""

    def __init__(self, model, tokenizer, image_processor, device, model_id: str, batch_size: int = 64):
        self.model, self.tokenizer, self.image_processor = model, tokenizer, image_processor
        self.device, self.model_id, self.batch_size = torch.device(device), model_id, batch_size
        self.level_ids = [tokenizer([w])["input_ids"][0][1] for w in QALIGN_LEVELS]
        ids: list[int] = []
        for i, chunk in enumerate(QALIGN_PROMPT.split("<|image|>")):
            toks = tokenizer(chunk).input_ids
            ids += toks if i == 0 else toks[1:]  # later chunks lose their BOS
            if i == 0:
                ids.append(QALIGN_IMAGE_TOKEN)
        self.input_ids = torch.tensor(ids, device=self.device).unsqueeze(0)

    @staticmethod
    def square(img, colour):
        from PIL import Image

        w, h = img.size
        if w == h:
            return img
        side = max(w, h)
        out = Image.new(img.mode, (side, side), colour)
        out.paste(img, ((side - w) // 2, 0) if h > w else (0, (side - h) // 2))
        return out

    @torch.inference_mode()
    def score_windows(self, windows) -> np.ndarray:
        colour = tuple(int(x * 255) for x in self.image_processor.image_mean)
        weights = torch.tensor(QALIGN_WEIGHTS, dtype=torch.float16, device=self.device)
        out = []
        for i in range(0, len(windows), self.batch_size):
            batch = [[self.square(f, colour) for f in w] for w in windows[i:i + self.batch_size]]
            pix = [self.image_processor.preprocess(w, return_tensors="pt")["pixel_values"].to(self.device,
                                                                                          self.model.dtype)
                   for w in batch]
            logits = self.model(self.input_ids.repeat(len(pix), 1), images=pix)["logits"][:, -1, self.level_ids]
            out.append((torch.softmax(logits, -1).to(weights.dtype) @ weights).float().cpu())
        return torch.cat(out).numpy()
