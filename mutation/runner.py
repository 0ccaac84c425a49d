"""Run mutants: one forked child per mutant, the mutated module served by an import hook.

The parent imports pytest, trio, Hypothesis and the other heavy dependencies
once, but never the package under test; each child installs a finder that
serves the mutated code for one module, runs ``pytest.main`` on the covering
tests and exits with pytest's code. The real source files are never written
(other processes read them). A child that outlives its timeout is killed with
its process group and the mutant counts as killed by timeout.
"""

from __future__ import annotations

import contextlib
import enum
import faulthandler
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, ModuleType

from mutation.operators import Mutant, compile_mutant

__all__ = ["Outcome", "Result", "preload", "run_baseline", "run_mutants"]

# Imported once in the parent so each child starts warm; not the package under test.
_PRELOAD = (
    "pytest",
    "_pytest.python",
    "pytest_trio",
    "trio",
    "trio.testing",
    "anyio",
    "hypothesis",
    "hypothesis.stateful",
    "msgspec",
    "structlog",
    "tenacity",
    "transitions",
    "httpx",
    "prometheus_client",
    "jsonschema",
)


class Outcome(enum.StrEnum):
    """How one mutant ended."""

    KILLED = "killed"  # a covering test failed (or the mutant did not even import)
    TIMEOUT = "timeout"  # the tests hung or ran far too long: counted as killed
    SURVIVED = "survived"


@dataclass(frozen=True)
class Result:
    """One mutant's outcome, with pytest's exit code and the wall time it took."""

    mutant: Mutant
    outcome: Outcome
    exit_code: int | None
    seconds: float


def preload() -> None:
    """Import the heavy dependencies in the parent (the children inherit them)."""
    for name in _PRELOAD:
        importlib.import_module(name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("orchestrator", "tests"))
    if leaked:  # a mutant must be imported fresh in each child
        raise RuntimeError(f"the parent imported the code under test: {leaked}")


class _MutantLoader(importlib.abc.Loader):
    def __init__(self, code: CodeType) -> None:
        self._code = code

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        exec(self._code, module.__dict__)


class _MutantFinder(importlib.abc.MetaPathFinder):
    def __init__(self, module: str, path: Path, code: CodeType) -> None:
        self._module, self._path, self._code = module, path, code

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self._module:
            return None
        loader = _MutantLoader(self._code)
        return importlib.util.spec_from_file_location(fullname, self._path, loader=loader)


def _child(root: Path, mutant: Mutant | None, path: Path, tests: Sequence[str]) -> int:
    """In the forked child: serve the mutant, run pytest, return its exit code."""
    os.setpgid(0, 0)  # so a timeout kills whatever the tests started, too
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    # Also at the Python level: a parent running under pytest has swapped these out.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the child)
    os.chdir(root)
    from hypothesis import settings

    # Loaded before conftest registers its profiles, which inherit from it: no example
    # database (a mutant's failures must not replay into the real runs) and a fixed seed.
    settings.register_profile("mutation", database=None, derandomize=True)
    settings.load_profile("mutation")
    if mutant is not None:
        code = compile_mutant(mutant, path)
        sys.meta_path.insert(0, _MutantFinder(mutant.module, path, code))
    import pytest

    # The preloaded plugins cannot have their asserts rewritten: harmless, but a warning is
    # an error under this project's filterwarnings.
    quiet = ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    # A parent that is itself under pytest (the tool's own test) has armed faulthandler's
    # watchdog thread, which a forked child does not have: cancelling or re-arming it there
    # (pytest does both on a failure) waits for that thread for ever. Nothing to cancel here.
    quiet += ["-o", "faulthandler_timeout=0"]
    faulthandler.cancel_dump_traceback_later = lambda: None
    args = [*tests, "-x", "-q", "-p", "no:cacheprovider", "--no-header", *quiet]
    return int(pytest.main(args))


def _fork(root: Path, mutant: Mutant | None, path: Path, tests: Sequence[str]) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child never returns)
        code = 98
        try:
            code = _child(root, mutant, path, tests)
        except BaseException:  # noqa: BLE001 (a mutant that cannot even compile is killed)
            code = 99
        finally:
            os._exit(code)
    return pid


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def run_baseline(root: Path, path: Path, tests: Sequence[str], timeout_s: float) -> float:
    """Run the covering tests on the real module; return their wall time.

    Raises:
        RuntimeError: the tests fail (or hang) without any mutant.
    """
    started = time.monotonic()
    pid = _fork(root, None, path, tests)
    code = _wait(pid, started + timeout_s)
    if code != 0:
        raise RuntimeError(
            f"the covering tests of {path} fail unmutated (exit code {code}); "
            f"run them by hand: pytest {' '.join(tests)}"
        )
    return time.monotonic() - started


def _wait(pid: int, deadline: float) -> int | None:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            _kill(pid)
            return None
        time.sleep(0.02)


def run_mutants(
    root: Path,
    path: Path,
    tests: Sequence[str],
    mutants: Sequence[Mutant],
    timeout_s: float,
    jobs: int,
) -> list[Result]:
    """Run every mutant (``jobs`` at a time); results come back in ``mutants`` order."""
    queue = list(mutants)
    running: dict[int, tuple[Mutant, float]] = {}
    results: dict[int, Result] = {}
    while queue or running:
        while queue and len(running) < jobs:
            mutant = queue.pop(0)
            running[_fork(root, mutant, path, tests)] = (mutant, time.monotonic())
        for pid, (mutant, started) in list(running.items()):
            done, status = os.waitpid(pid, os.WNOHANG)
            elapsed = time.monotonic() - started
            if done:
                code = os.waitstatus_to_exitcode(status)
                outcome = Outcome.SURVIVED if code == 0 else Outcome.KILLED
                results[mutant.index] = Result(mutant, outcome, code, elapsed)
            elif elapsed > timeout_s:
                _kill(pid)
                results[mutant.index] = Result(mutant, Outcome.TIMEOUT, None, elapsed)
            else:
                continue
            del running[pid]
            outcome = results[mutant.index].outcome
            print(f"  {mutant.line:4d} {outcome:8s} {mutant.description}", flush=True)
        time.sleep(0.02)
    return [results[m.index] for m in mutants]
