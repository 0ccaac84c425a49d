"""Helpers that tests use to set up the simulator, the fake ``lms`` and a backend.

Pytest fixtures cannot be shared from here without a conftest (ruff flags
imported fixtures), so test modules declare two-line fixtures around these.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from orchestrator.backends.lmstudio import LMStudioBackend
from orchestrator.config import LMStudioSettings

from .lmstudio_sim import FAKE_LMS, Simulator

__all__ = ["free_port", "install_fake_lms", "make_backend", "remove_lms"]


def install_fake_lms(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Put a fake ``lms`` first on PATH and return its path.

    The copy runs under this interpreter (no ``env python3`` lookup, which is
    slow behind version shims), with ``-S``: it needs only the standard library, and
    without ``site`` no ``.pth`` file runs, so coverage (which measures the tests'
    Python children through one) does not start in it; its start-up delayed the
    SIGINT handler past a 0.5 s load deadline. HOME moves to ``tmp_path`` so a real
    ``~/.lmstudio/bin/lms`` is never picked up.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "lms"
    text = Path(FAKE_LMS).read_text(encoding="utf-8")
    script.write_text(text.replace("#!/usr/bin/env python3", f"#!{sys.executable} -S", 1))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("HOME", str(tmp_path))
    return str(script)


def remove_lms(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make sure no ``lms`` can be found: empty PATH, HOME without ``~/.lmstudio``."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("HOME", str(tmp_path))


def make_backend(
    sim: Simulator,
    *,
    lms_cli: str | None = None,
    prefer_cli: bool = False,
    api_token: str | None = None,
    http_timeout_s: float = 5.0,
    cli_timeout_s: float = 10.0,
    load_timeout_s: float = 10.0,
    allow_untimed_rest_load: bool = False,
    download_poll_s: float = 0.02,
) -> LMStudioBackend:
    """An :class:`LMStudioBackend` pointed at ``sim`` with test-sized timeouts."""
    settings = LMStudioSettings(
        base_url=sim.base_url,
        api_token=api_token,
        lms_cli=lms_cli,
        prefer_cli=prefer_cli,
        http_timeout_s=http_timeout_s,
        cli_timeout_s=cli_timeout_s,
        load_timeout_s=load_timeout_s,
        download_poll_s=download_poll_s,
    )
    return LMStudioBackend(settings, allow_untimed_rest_load=allow_untimed_rest_load)


def free_port() -> int:
    """A loopback port nothing listens on (for "server down" tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
