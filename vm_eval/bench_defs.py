"""Benchmarks as data: ``vm_eval/benchmarks/<name>.json`` (+ prompt TSVs) -> subjects, prompts, protocol, work items.

Subject images are the user's to supply (no public list of the paper's subjects exists), in this layout:

- ``human``: ``SUBJECTS/<person_id>.<png|jpg|jpeg|webp|bmp>``, one image per person;
- ``object``: ``SUBJECTS/<class>/<subject_id>.<ext>`` for each of the 9 classes, 2 subjects per class.

The ``demo`` benchmark ships its images (scikit-image's astronaut and chelsea) and the ``toy`` benchmark renders its
held-out toy subjects (``toy:<index>``, :func:`vm_model.toy.domain.heldout_reference`); both write them to
``OUT/subjects/`` so that every reference is a file, as in the real benchmarks.

The OpenS2V-Eval benchmarks (``opens2v-human``, ``opens2v-single``; arXiv 2505.20292) read their cases - one
reference image and one prompt each - from the user's download of the dataset (``hf download
--repo-type dataset BestWishYsh/OpenS2V-Eval --local-dir OpenS2V-Eval``): ``--subjects`` names that folder, which
holds the case file (``Human-Domain_Eval.json``, ``Single-Domain_Eval.json``: ``{case_id: {img_paths, prompt,
class_label, ...}}``) and the ``Images/`` it points into. Nothing of the dataset ships with the toolkit. Each case
becomes a subject named by its case id (``singleface_3``) with its own prompt, so `vm bench export --format opens2v`
can name the videos as OpenS2V's scripts expect (:mod:`vm_eval.export`).

A benchmark may list ``baselines``: extra methods that `vm bench run` generates and scores beside the model, each
the same model under a changed protocol (``toy``: the same model with the reference zeroed).

A definition file is data: subject ids and class names must be plain file names (:mod:`vm_common.safe_names`; an
id climbing out with ``../`` is refused), and built-in images come from an allow-list (``skimage:<name>`` for the
names in :data:`SKIMAGE_IMAGES`, ``toy:<index>``), never from an arbitrary attribute. Reference paths are absolute,
so rows and reports find them whatever the working directory.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from vm_common.errors import UserError
from vm_common.safe_names import UnsafeNameError, check_component, path_inside

logger = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
# scikit-image sample images a definition may name as skimage:<name> (colour photos of one subject each)
SKIMAGE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "cat")


class BenchmarkError(UserError, ValueError):
    """A benchmark definition or its subject images cannot be used; the message says what and where."""


@dataclass(frozen=True)
class Prompt:
    index: int
    text: str
    category: str
    kind: str  # human | object
    cls: str | None = None  # object class the prompt belongs to
    subject: str | None = None  # the one subject this prompt belongs to (an OpenS2V-Eval case), else None


@dataclass(frozen=True)
class Subject:
    id: str
    kind: str
    image: str  # a file path, or "skimage:<name>" for built-in images
    cls: str | None = None

    @property
    def highlight_text(self) -> str:
        """The Grounding DINO prompt of the paper's subject-highlight preprocessing."""
        return "head" if self.kind == "human" else f"{self.cls}."


@dataclass(frozen=True)
class Baseline:
    """An extra method of a benchmark: the same model with some protocol fields changed."""

    name: str  # appended to the method's name in the tables: "<method>: <name>"
    protocol: dict  # GenerationProtocol fields it changes (over the run's protocol)
    description: str = ""


@dataclass(frozen=True)
class WorkItem:
    sample_id: str
    subject: Subject
    prompt: Prompt
    seed: int


@dataclass
class Benchmark:
    name: str
    description: str
    paper_table: str | None
    subjects_spec: dict
    prompts: list[Prompt]
    protocol: dict = field(default_factory=dict)  # GenerationProtocol fields this benchmark sets (vm_model.protocol)
    highlight: bool = True  # subject-highlight the references, as the paper's evaluation did
    weights: dict[str, str] = field(default_factory=dict)
    baselines: list[Baseline] = field(default_factory=list)

    def prompts_for(self, subject: Subject) -> list[Prompt]:
        own = [p for p in self.prompts if p.subject == subject.id]
        if own or any(p.subject is not None for p in self.prompts):
            return own
        if subject.kind in ("human", "toy"):
            return [p for p in self.prompts if p.kind == subject.kind]
        return [p for p in self.prompts if p.kind == "object" and p.cls == subject.cls]

    def work_items(self, subjects: list[Subject], seeds: list[int] | tuple[int, ...]) -> list[WorkItem]:
        """Subject x prompt x seed, in a fixed order (sharding splits this list)."""
        items = []
        for s in subjects:
            for p in self.prompts_for(s):
                for seed in seeds:
                    items.append(WorkItem(f"{s.id}/p{p.index:02d}/s{seed}", s, p, int(seed)))
        return items

    # ------------------------------------------------------------------------------------------------ subjects
    def resolve_subjects(self, subjects_dir: Path | None, out_dir: Path) -> list[Subject]:
        """The subjects with their reference files; raises BenchmarkError before any work when one is missing."""
        spec = self.subjects_spec
        if spec["source"] == "builtin":
            return [_materialize_builtin(item, Path(os.path.abspath(out_dir)) / "subjects", spec.get("toy_domain"))
                    for item in spec["items"]]
        if subjects_dir is None:
            raise BenchmarkError(f"benchmark '{self.name}' needs --subjects DIR with the subject images; "
                                 f"layout: {_layout_help(spec)}")
        root = Path(os.path.abspath(Path(subjects_dir).expanduser()))
        if not root.is_dir():
            raise BenchmarkError(f"subjects folder not found: {root} (layout: {_layout_help(spec)})")
        if spec["source"] == "opens2v":
            from .opens2v_cases import read_cases

            cases = read_cases(root, spec, self.name)
            self.prompts = [c.prompt for c in cases]
            return [c.subject for c in cases]
        if spec["layout"] == "flat":
            subjects = [Subject(p.stem, spec["kind"], str(p)) for p in _images_in(root)]
            if not subjects:
                raise BenchmarkError(f"no subject images ({', '.join(IMAGE_EXTS)}) in {root}; "
                                     f"layout: {_layout_help(spec)}")
            return subjects
        if spec["layout"] == "by_class":
            subjects, missing = [], []
            for cls in spec["classes"]:
                images = _images_in(root / cls) if (root / cls).is_dir() else []
                if not images:
                    missing.append(str(root / cls))
                    continue
                if len(images) != spec.get("per_class", len(images)):
                    logger.warning("%s: %d subject images, the paper used %d per class", root / cls, len(images),
                                   spec["per_class"])
                subjects += [Subject(f"{cls}-{p.stem}", "object", str(p), cls) for p in images]
            if missing:
                raise BenchmarkError("missing subject images for classes: " + ", ".join(missing)
                                     + f" (layout: {_layout_help(spec)})")
            return subjects
        raise BenchmarkError(f"benchmark '{self.name}': unknown subjects layout {spec['layout']!r}")


def _layout_help(spec: dict) -> str:
    if spec.get("source") == "opens2v":
        return (f"SUBJECTS = your download of the OpenS2V-Eval dataset, holding {spec.get('eval_json')} and "
                f"Images/ ({spec.get('download', '')})")
    if spec.get("layout") == "by_class":
        return "SUBJECTS/<class>/<subject_id>.png for classes " + ", ".join(spec["classes"])
    return "SUBJECTS/<person_id>.png (one image per person)"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                  and not p.name.startswith("."))


def _builtin_image(source: str, toy_domain: dict | None):
    """The pixels of a built-in image: ``skimage:<name>`` or ``toy:<index>`` (a held-out toy subject's reference,
    rendered from the benchmark's ``toy_domain``)."""
    kind, _, name = str(source).partition(":")
    if kind == "skimage":
        if name not in SKIMAGE_IMAGES:
            raise BenchmarkError(f"built-in image {source!r}: not an allowed scikit-image sample; allowed: "
                                 f"{', '.join('skimage:' + n for n in SKIMAGE_IMAGES)}")
        from skimage import data

        return getattr(data, name)()
    if kind == "toy":
        from vm_model.toy.domain import ToyDomain, heldout_reference

        try:
            index = int(name)
            domain = ToyDomain.from_dict(toy_domain or {})
        except (TypeError, ValueError) as exc:
            raise BenchmarkError(f"built-in image {source!r}: {exc}") from None
        return heldout_reference(domain, index)
    raise BenchmarkError(f"unknown built-in image {source!r} (known: skimage:<name>, toy:<index>)")


def _materialize_builtin(item: dict, folder: Path, toy_domain: dict | None = None) -> Subject:
    from PIL import Image

    from vm_common.io_utils import atomic_output

    path = path_inside(folder, f"{item['id']}.png")  # the id was checked on loading; this is the last guard
    if not path.exists():
        arr = _builtin_image(item["image"], toy_domain)
        with atomic_output(path) as tmp:
            Image.fromarray(arr).convert("RGB").save(tmp, format="PNG")
    return Subject(item["id"], item["kind"], str(path), item.get("class"))


# ------------------------------------------------------------------------------------------------------ loading
def _data_dir():
    return Path(__file__).resolve().parent / "benchmarks"


def list_benchmarks() -> list[str]:
    return sorted(p.name[:-5] for p in _data_dir().iterdir() if p.name.endswith(".json"))


def _read_tsv(name: str) -> list[dict]:
    text = (_data_dir() / name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines(), delimiter="\t"))


def load_benchmark(name_or_path: str) -> Benchmark:
    """A packaged benchmark by name (see :func:`list_benchmarks`) or a JSON definition file."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BenchmarkError(f"benchmark definition {path}: not readable JSON ({exc})") from None
        missing = [k for k in ("name", "prompts", "subjects") if not isinstance(data, dict) or k not in data]
        if missing:
            raise BenchmarkError(f"benchmark definition {path}: missing {', '.join(missing)}")
    else:
        res = _data_dir() / f"{name_or_path}.json"
        if not res.is_file():
            raise BenchmarkError(f"unknown benchmark {name_or_path!r}; known: {', '.join(list_benchmarks())} "
                                 f"(or pass a .json definition)")
        data = json.loads(res.read_text())
    prompts = _read_prompts(data["prompts"], name_or_path)
    _check_subjects(data.get("subjects"), name_or_path)
    proto = dict(data.get("protocol", {}))
    _check_protocol(proto, name_or_path)
    baselines = []
    for row in data.get("baselines", []):
        _check_protocol({**proto, **row.get("protocol", {})}, f"{name_or_path} (baseline {row.get('name')!r})")
        baselines.append(Baseline(str(row["name"]), dict(row.get("protocol", {})), row.get("description", "")))
    return Benchmark(data["name"], data.get("description", ""), data.get("paper_table"), data["subjects"], prompts,
                     proto, bool(data.get("highlight", True)), dict(data.get("weights", {})), baselines)


def _read_prompts(pspec, where: str) -> list[Prompt]:
    """The prompts of a definition: a packaged TSV (``file``: a plain file name in vm_eval/benchmarks) and/or
    ``items``; a malformed entry is a :class:`BenchmarkError` naming it."""
    if not isinstance(pspec, dict):
        raise BenchmarkError(f"benchmark {where}: 'prompts' must be a mapping (file and/or items)")
    prompts: list[Prompt] = []
    try:
        if "file" in pspec:
            check_component(str(pspec["file"]), "prompts file")
            for row in _read_tsv(pspec["file"]):
                if "class" in row:
                    prompts.append(Prompt(int(row["index"]), row["prompt"], row["class"], "object", row["class"]))
                else:
                    prompts.append(Prompt(int(row["index"]), row["prompt"], row["category"], "human"))
        for row in pspec.get("items", []):
            prompts.append(Prompt(int(row["index"]), str(row["prompt"]), str(row["category"]), str(row["kind"]),
                                  row.get("class")))
    except (KeyError, TypeError, ValueError, OSError) as exc:  # parsing the user's file, not our code
        raise BenchmarkError(f"benchmark {where}: bad prompt entry ({type(exc).__name__}: {exc}); each needs index, "
                             f"prompt, category and kind") from None
    return prompts


def _check_subjects(spec, where: str) -> None:
    """The subjects part of a definition: ids and class names are plain file names, images are allowed sources."""
    if not isinstance(spec, dict) or "source" not in spec:
        raise BenchmarkError(f"benchmark {where}: 'subjects' must be a mapping with a 'source'")
    try:
        for cls in spec.get("classes", []) or []:
            check_component(str(cls), "class")
        if spec["source"] == "opens2v":
            check_component(str(spec.get("eval_json") or ""), "OpenS2V-Eval case file (eval_json)")
        if spec["source"] == "builtin":
            items = spec.get("items")
            if not isinstance(items, list) or not items:
                raise BenchmarkError(f"benchmark {where}: builtin subjects need a non-empty 'items' list")
            for item in items:
                if not isinstance(item, dict) or not {"id", "kind", "image"} <= set(item):
                    raise BenchmarkError(f"benchmark {where}: each builtin subject needs id, kind and image")
                check_component(str(item["id"]), "subject id")
                kind, _, name = str(item["image"]).partition(":")
                if kind == "skimage" and name not in SKIMAGE_IMAGES:
                    raise BenchmarkError(f"benchmark {where}: subject {item['id']!r}: image {item['image']!r} is not "
                                         f"an allowed built-in; allowed: skimage:<{'|'.join(SKIMAGE_IMAGES)}>, "
                                         f"toy:<index>")
                if kind not in ("skimage", "toy"):
                    raise BenchmarkError(f"benchmark {where}: subject {item['id']!r}: unknown built-in image "
                                         f"{item['image']!r} (known: skimage:<name>, toy:<index>)")
    except UnsafeNameError as exc:
        raise BenchmarkError(f"benchmark {where}: {exc}") from None


def _check_protocol(proto: dict, where: str) -> None:
    """The benchmark's protocol keys must be GenerationProtocol fields with valid values."""
    import dataclasses

    from vm_model.protocol import GenerationProtocol

    known = {f.name for f in dataclasses.fields(GenerationProtocol)}
    unknown = sorted(set(proto) - known)
    if unknown:
        raise BenchmarkError(f"benchmark {where}: unknown protocol keys {unknown}; known: {sorted(known)}")
    try:
        GenerationProtocol(**proto)
    except (TypeError, ValueError) as exc:
        raise BenchmarkError(f"benchmark {where}: invalid protocol: {exc}") from None
