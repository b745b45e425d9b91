"""Benchmarks as data: ``vm_eval/benchmarks/<name>.json`` (+ prompt TSVs) -> subjects, prompts, protocol, work items.

Subject images are the user's to supply (no public list of the paper's subjects exists), in this layout:

- ``human``: ``SUBJECTS/<person_id>.<png|jpg|jpeg|webp|bmp>``, one image per person;
- ``object``: ``SUBJECTS/<class>/<subject_id>.<ext>`` for each of the 9 classes, 2 subjects per class.

The ``demo`` benchmark ships its images (scikit-image's astronaut and chelsea) and writes them to
``OUT/subjects/`` so that every reference is a file, as in the real benchmarks.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

logger = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
TINY_PROTOCOL = {"num_frames": 8, "height": 128, "width": 128, "steps": 2}  # tiny preset overrides


class BenchmarkError(ValueError):
    """A benchmark definition or its subject images cannot be used; the message says what and where."""


@dataclass(frozen=True)
class Protocol:
    num_frames: int = 16
    height: int = 512
    width: int = 512
    seeds: tuple[int, ...] = (42,)
    steps: int = 30
    guidance_scale: float = 8.0
    negative_prompt: str = ""
    fps: int = 8
    highlight: bool = True


@dataclass(frozen=True)
class Prompt:
    index: int
    text: str
    category: str
    kind: str  # human | object
    cls: str | None = None  # object class the prompt belongs to


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
    protocol: Protocol
    weights: dict[str, str] = field(default_factory=dict)

    def prompts_for(self, subject: Subject) -> list[Prompt]:
        if subject.kind == "human":
            return [p for p in self.prompts if p.kind == "human"]
        return [p for p in self.prompts if p.kind == "object" and p.cls == subject.cls]

    def work_items(self, subjects: list[Subject]) -> list[WorkItem]:
        """Subject x prompt x seed, in a fixed order (sharding splits this list)."""
        items = []
        for s in subjects:
            for p in self.prompts_for(s):
                for seed in self.protocol.seeds:
                    items.append(WorkItem(f"{s.id}/p{p.index:02d}/s{seed}", s, p, seed))
        return items

    def protocol_for(self, preset: str) -> Protocol:
        return replace(self.protocol, **TINY_PROTOCOL) if preset == "tiny" else self.protocol

    # ------------------------------------------------------------------------------------------------ subjects
    def resolve_subjects(self, subjects_dir: Path | None, out_dir: Path) -> list[Subject]:
        """The subjects with their reference files; raises BenchmarkError before any work when one is missing."""
        spec = self.subjects_spec
        if spec["source"] == "builtin":
            return [_materialize_builtin(item, out_dir / "subjects") for item in spec["items"]]
        if subjects_dir is None:
            raise BenchmarkError(f"benchmark '{self.name}' needs --subjects DIR with the subject images; "
                                 f"layout: {_layout_help(spec)}")
        root = Path(subjects_dir).expanduser()
        if not root.is_dir():
            raise BenchmarkError(f"subjects folder not found: {root} (layout: {_layout_help(spec)})")
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
    if spec.get("layout") == "by_class":
        return "SUBJECTS/<class>/<subject_id>.png for classes " + ", ".join(spec["classes"])
    return "SUBJECTS/<person_id>.png (one image per person)"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                  and not p.name.startswith("."))


def _materialize_builtin(item: dict, folder: Path) -> Subject:
    from PIL import Image

    from vm_common.io_utils import atomic_output

    source = item["image"]
    if not source.startswith("skimage:"):
        raise BenchmarkError(f"unknown built-in image {source!r}")
    path = folder / f"{item['id']}.png"
    if not path.exists():
        from skimage import data

        arr = getattr(data, source.split(":", 1)[1])()
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
        data = json.loads(path.read_text())
    else:
        res = _data_dir() / f"{name_or_path}.json"
        if not res.is_file():
            raise BenchmarkError(f"unknown benchmark {name_or_path!r}; known: {', '.join(list_benchmarks())} "
                                 f"(or pass a .json definition)")
        data = json.loads(res.read_text())
    prompts: list[Prompt] = []
    pspec = data["prompts"]
    if "file" in pspec:
        for row in _read_tsv(pspec["file"]):
            if "class" in row:
                prompts.append(Prompt(int(row["index"]), row["prompt"], row["class"], "object", row["class"]))
            else:
                prompts.append(Prompt(int(row["index"]), row["prompt"], row["category"], "human"))
    for row in pspec.get("items", []):
        prompts.append(Prompt(int(row["index"]), row["prompt"], row["category"], row["kind"], row.get("class")))
    proto = dict(data.get("protocol", {}))
    if "seeds" in proto:
        proto["seeds"] = tuple(int(s) for s in proto["seeds"])
    return Benchmark(data["name"], data.get("description", ""), data.get("paper_table"), data["subjects"], prompts,
                     Protocol(**proto), dict(data.get("weights", {})))
