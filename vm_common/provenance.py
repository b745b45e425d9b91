"""What produced an output: package versions, git commit, machine, time. Written next to every run's results."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import platform
import subprocess
from pathlib import Path

_PACKAGES = (
    "videomaker-toolkit", "torch", "torchvision", "diffusers", "transformers", "accelerate", "huggingface-hub",
    "open_clip_torch", "timm", "segment-anything", "insightface", "onnxruntime", "opencv-python", "av", "numpy",
)


def package_versions(packages: tuple[str, ...] = _PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: Path | None = None) -> str | None:
    path = path or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_description() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    except Exception:  # pragma: no cover - torch import problems are reported elsewhere
        pass
    return f"cpu: {platform.processor() or platform.machine()}"


def provenance() -> dict:
    return {
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_description(),
        "versions": package_versions(),
    }
