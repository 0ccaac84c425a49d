"""The package as a user gets it: a wheel from ``python -m build``, installed in a clean venv.

The wheel is built from a copy of the sources (no ``build/`` or ``*.egg-info``
left in the checkout) without build isolation, so nothing is downloaded: the
build backend (``setuptools``) and ``build`` come from the test extra. It is
installed with ``--no-deps --no-index`` into a fresh venv that has no system
site-packages; the third-party dependencies come from this test run's
environment, appended to the venv's path *after* its own site-packages, and
the wheel's ``Requires-Dist`` is checked against them, so what pip would have
to resolve is checked too, offline. ``lmsorch --help`` then runs from that
venv, in a directory outside the checkout, and must import the installed copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from email.parser import Parser
from importlib import metadata
from pathlib import Path
from zipfile import ZipFile

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "orchestrator", "mcp_frontend")
STEP_TIMEOUT_S = 120


def _run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{argv}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist, src, cwd=src)
    [wheel] = dist.glob("lmstudio_orchestrator-*.whl")
    return wheel


def _requirements(wheel: Path) -> list[Requirement]:
    with ZipFile(wheel) as zf:
        [name] = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        meta = Parser().parsestr(zf.read(name).decode())
    return [Requirement(r) for r in meta.get_all("Requires-Dist") or []]


def test_the_wheel_installs_into_a_clean_venv_and_lmsorch_runs(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    with ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert {"orchestrator/py.typed", "mcp_frontend/py.typed", "mcp_frontend/cli.py"} <= names
    assert not any(n.startswith("tests/") for n in names)

    # What pip would resolve: every dependency of the base install, met by this environment.
    for req in _requirements(wheel):
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra's dependency (embedded, test)
        assert req.specifier.contains(metadata.version(req.name), prereleases=True), req

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # This environment's pip installs into the new venv (``--python``): no pip bootstrap there.
    pip = (sys.executable, "-m", "pip", "--python", python)
    _run(*pip, "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    clean_site = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=tmp_path
        ).stdout.strip()
    )
    # The dependencies, after the venv's own packages (a plain path: no .pth inside it runs,
    # so the checkout's editable install stays out).
    (clean_site / "zz_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    lmsorch = env_dir / "bin" / "lmsorch"
    out = _run(lmsorch, "--help", cwd=tmp_path).stdout
    assert "serve" in out
    assert "run the MCP server" in out
    where = _run(python, "-c", "import mcp_frontend; print(mcp_frontend.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(clean_site)
