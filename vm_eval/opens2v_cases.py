"""OpenS2V-Eval's cases as `vm bench` subjects and prompts, read from the user's download of the dataset.

OpenS2V-Eval (arXiv 2505.20292; https://huggingface.co/datasets/BestWishYsh/OpenS2V-Eval) is distributed as a
folder holding ``Images/`` and one case file per track - ``Human-Domain_Eval.json``, ``Single-Domain_Eval.json``,
``Open-Domain_Eval.json`` (the layout its ``eval/README.md`` in PKU-YuanGroup/OpenS2V-Nexus shows). A case file
maps a case id to its case::

    {"singleface_3": {"img_paths": ["Images/singleface/..../3.png"], "prompt": "...",
                      "class_label": ["Woman"], "synthesis_flag": "wrong"}, ...}

``img_paths`` are relative to the dataset folder (OpenS2V's scripts join them with ``--input_image_folder``). The
case id's prefix names the track (``singlehuman``, ``singleface``, ``singleobj``, ``humanobj``, ``faceobj``,
``multiface``, ``multihuman``, ``multiobject``); OpenS2V's FaceSim scores the prefixes with a person in them.

Here each case becomes one subject (id = case id; kind ``human`` for the person prefixes, else ``object`` with the
first class label as its class) with its own prompt (:attr:`vm_eval.bench_defs.Prompt.subject`). VideoMaker takes
one reference image, so a case with several (the Open-Domain track's multi-subject cases) is refused, naming it.
The dataset is not shipped: a missing folder, case file or image is one :class:`BenchmarkError` naming what is
missing, where it looked and how to download it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from vm_common.safe_names import UnsafeNameError, check_component, path_inside

from .bench_defs import IMAGE_EXTS, BenchmarkError, Prompt, Subject

logger = logging.getLogger(__name__)

DOWNLOAD = "hf download --repo-type dataset BestWishYsh/OpenS2V-Eval --local-dir OpenS2V-Eval"
HUMAN_PREFIXES = ("singlehuman", "singleface", "humanobj", "faceobj", "multiface", "multihuman")
PREFIXES = HUMAN_PREFIXES + ("singleobj", "multiobject")
CASE_ID = re.compile(r"^(?P<prefix>[a-z]+)_(?P<number>\d+)$")
MAX_LISTED = 5


@dataclass(frozen=True)
class Case:
    subject: Subject
    prompt: Prompt
    class_labels: tuple[str, ...]


def is_case_id(text: str) -> bool:
    """True for an OpenS2V-Eval case id (``<track prefix>_<number>``, say ``singleface_3``)."""
    m = CASE_ID.match(str(text))
    return bool(m) and m.group("prefix") in PREFIXES


def read_cases(root: Path, spec: dict, bench_name: str) -> list[Case]:
    """The cases of ``root / spec["eval_json"]`` (optionally only the case-id prefixes in ``spec["prefixes"]``), each
    with its reference image checked to exist inside ``root``; :class:`BenchmarkError` otherwise."""
    eval_json = root / spec["eval_json"]
    how = (f"download the OpenS2V-Eval dataset with `{spec.get('download', DOWNLOAD)}` and pass that folder as "
           f"--subjects")
    if not eval_json.is_file():
        raise BenchmarkError(f"benchmark '{bench_name}': OpenS2V-Eval case file not found: {eval_json} (the cases "
                             f"and reference images are not shipped; {how})")
    try:
        data = json.loads(eval_json.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"{eval_json}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise BenchmarkError(f"{eval_json}: expected a non-empty mapping {{case_id: {{img_paths, prompt, "
                             f"class_label}}}}")
    prefixes = tuple(spec.get("prefixes") or PREFIXES)
    cases, missing, problems = [], [], []
    for case_id, case in data.items():
        m = CASE_ID.match(str(case_id))
        if not m or m.group("prefix") not in PREFIXES:
            problems.append(f"{case_id!r}: not an OpenS2V-Eval case id (<{'|'.join(PREFIXES)}>_<number>)")
            continue
        if m.group("prefix") not in prefixes:
            continue
        try:
            check_component(case_id, "case id")
            cases.append(_case(root, case_id, case, m.group("prefix"), int(m.group("number"))))
        except (UnsafeNameError, KeyError, TypeError, ValueError) as exc:
            problems.append(f"{case_id}: {exc}")
        except FileNotFoundError as exc:
            missing.append(str(exc))
    if problems:
        raise BenchmarkError(f"{eval_json}: {len(problems)} unusable case(s): " + "; ".join(problems[:MAX_LISTED])
                             + (" ..." if len(problems) > MAX_LISTED else ""))
    if missing:
        raise BenchmarkError(f"benchmark '{bench_name}': {len(missing)} reference image(s) of {eval_json.name} not "
                             f"found under {root} (e.g. {', '.join(missing[:MAX_LISTED])}); {how}")
    if not cases:
        raise BenchmarkError(f"{eval_json}: no cases with the prefixes {', '.join(prefixes)}")
    logger.info("%s: %d OpenS2V-Eval cases from %s", bench_name, len(cases), eval_json)
    return cases


def _case(root: Path, case_id: str, case: dict, prefix: str, number: int) -> Case:
    if not isinstance(case, dict):
        raise TypeError("a case must be a mapping with img_paths, prompt and class_label")
    paths, prompt = case["img_paths"], case["prompt"]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise ValueError("img_paths must be a non-empty list of paths")
    if len(paths) != 1:
        raise ValueError(f"{len(paths)} reference images; VideoMaker takes one (multi-subject cases are not "
                         f"supported)")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty text")
    labels = case.get("class_label") or []
    labels = tuple(str(x) for x in (labels if isinstance(labels, list) else [labels]))
    try:
        image = path_inside(root, paths[0])
    except UnsafeNameError:
        raise ValueError(f"img_paths entry {paths[0]!r} points outside the dataset folder") from None
    if not image.is_file():
        raise FileNotFoundError(str(image))
    if image.suffix.lower() not in IMAGE_EXTS:
        raise ValueError(f"{paths[0]}: not an image file ({', '.join(IMAGE_EXTS)})")
    kind = "human" if prefix in HUMAN_PREFIXES else "object"
    cls = None if kind == "human" else (labels[0].lower() if labels else "object")
    subject = Subject(case_id, kind, str(image), cls)
    return Case(subject, Prompt(number, prompt.strip(), prefix, kind, cls, subject=case_id), labels)
