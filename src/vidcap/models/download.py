"""Model weights: a local folder, or a Hub id fetched once into --model-dir."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from vidcap.errors import ConfigError, SettingError
from vidcap.paths import temp_name
from vidcap.storage import is_url, join, local_cache, open_fs, unreachable

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = "./models"


def local_copy(model_dir: str | Path, hf_id: str) -> Path:
    """Where a Hub model lives under ``model_dir`` (``models/Qwen/Qwen2.5-VL-7B-Instruct``); for a model_dir in
    object storage, this machine's copy of it."""
    folder = local_cache(str(model_dir), "models") if is_url(str(model_dir)) else Path(model_dir)
    return folder / hf_id


def is_complete(folder: Path) -> bool:
    """A config and every weight file: all shards a sharded checkpoint's index names, else one weight file."""
    if not (folder / "config.json").is_file():
        return False
    for index in folder.glob("*.index.json"):
        try:
            shards = set(json.loads(index.read_text("utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError):
            return False
        return all((folder / shard).is_file() for shard in shards)
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def _in_hub_cache(repo_id: str) -> Path | None:
    """A complete copy in the Hugging Face cache (HF_HOME / HF_HUB_CACHE), without going online."""
    try:
        from huggingface_hub import snapshot_download

        # The cache as the environment names it now (huggingface_hub reads it once, when first imported).
        home = os.environ.get("HF_HOME")
        cache = os.environ.get("HF_HUB_CACHE") or (str(Path(home) / "hub") if home else None)
        found = Path(snapshot_download(repo_id=repo_id, local_files_only=True, cache_dir=cache))
    except Exception:  # not cached (or no huggingface_hub): download it
        return None
    return found if is_complete(found) else None


def _looks_like_path(model: str) -> bool:
    # Hub ids are "org/name"; anything else with slashes or a leading ./ ~ is meant as a folder.
    return model.startswith(("/", ".", "~")) or model.count("/") > 1


def resolve_weights(model: str | None, hf_id: str, model_dir: str | Path, *, what: str) -> Path:
    """A folder holding the weights, downloading ``model or hf_id`` on first use.

    ``what`` names the model for messages ("captioning model qwen2.5"); messages call the setting that
    takes a local folder instead ``{model}``, so the CLI can name its flag.
    """
    if model is not None and not Path(model).expanduser().is_dir() and _looks_like_path(model):
        raise SettingError("model", f"{what}: folder {model} given with {{model}} does not exist")
    if model is not None and Path(model).expanduser().is_dir():
        folder = Path(model).expanduser()
        if not (folder / "config.json").is_file():
            raise SettingError(
                "model", f"{what}: {folder} has no config.json; pass a folder with the model's files to {{model}}"
            )
        return folder
    repo_id = model or hf_id
    if is_url(str(model_dir)):
        return _through_bucket(repo_id, str(model_dir), what)
    target = local_copy(model_dir, repo_id)
    if is_complete(target):
        return target
    return _from_hub(repo_id, target, str(model_dir), what)


def _through_bucket(repo_id: str, model_dir: str, what: str) -> Path:
    """--model-dir in object storage: each machine keeps a copy; the first to need a model the bucket lacks
    fetches it from the Hub and puts it there (config.json last, so a half-put model is never taken)."""
    target = local_copy(model_dir, repo_id)
    if is_complete(target):
        return target
    remote = join(model_dir, repo_id)
    try:
        fs, key = open_fs(remote)
        there = fs.exists(f"{key}/config.json")
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{what}: {unreachable(remote, exc)}") from exc
    if not there:
        found = _from_hub(repo_id, target, model_dir, what)
        logger.info("%s: putting %s into %s for the other machines", what, repo_id, remote)
        files = sorted(p for p in found.rglob("*") if p.is_file() and ".cache" not in p.parts)
        try:
            for path in sorted(files, key=lambda p: p.name == "config.json"):
                fs.put_file(str(path), f"{key}/{path.relative_to(found).as_posix()}")
        except Exception as exc:  # this machine has the weights; the others fetch them from the Hub too
            logger.warning("%s: could not put %s into %s: %s", what, repo_id, remote, unreachable(remote, exc))
        return found
    logger.info("%s: copying %s from %s to this machine (%s)", what, repo_id, remote, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(temp_name(target.name))
    try:
        fs.get(f"{key}/", f"{tmp}/", recursive=True)
        if target.exists() and not is_complete(target):
            shutil.rmtree(target)  # a copy cut short
        if not target.exists():
            os.replace(tmp, target)
    except Exception as exc:
        if not is_complete(target):  # another worker of this machine may have made it meanwhile
            raise ConfigError(f"{what}: could not copy it from {unreachable(remote, exc)}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not is_complete(target):
        raise ConfigError(f"The {what} in {remote} is incomplete (a config.json without all its weights).")
    return target


def _from_hub(repo_id: str, target: Path, model_dir: str, what: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ConfigError(f"fetching the {what} needs huggingface_hub: pip install -e '.[models]'") from exc
    cached = _in_hub_cache(repo_id)
    if cached is not None:
        logger.info("%s: using %s from the Hugging Face cache (%s)", what, repo_id, cached)
        return cached
    logger.info("%s: downloading %s into %s (first use)", what, repo_id, target)
    try:
        snapshot_download(repo_id=repo_id, local_dir=str(target))
    except Exception as exc:  # offline, unknown id, no access: all end the same way
        reason = type(exc).__name__
        raise SettingError(
            "model",
            f"The {what} ({repo_id}) is not in {model_dir} and could not be downloaded ({reason}): "
            f"run `hf download {repo_id} --local-dir {target}` where the Hub is reachable, "
            f"or pass a local folder with {{model}}.",
        ) from exc
    if not is_complete(target):
        raise ConfigError(f"The {what} download into {target} is incomplete; delete the folder and run again.")
    return target
