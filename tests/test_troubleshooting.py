"""docs/troubleshooting.md covers every error: each one in docs/errors.md and every error class."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from orchestrator import OrchestratorError

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _headings() -> set[str]:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#### `(\w+)`$", text, flags=re.MULTILINE))


def _subclasses(cls: type[OrchestratorError]) -> set[type[OrchestratorError]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_every_error_named_in_errors_md_has_a_section() -> None:
    table = (DOCS / "errors.md").read_text(encoding="utf-8")
    first_cells = re.findall(r"^\| (.+?) \|", table, flags=re.MULTILINE)
    named = {n for cell in first_cells for n in re.findall(r"`(\w+)`", cell)}
    assert len(named) >= 15  # the table really was read
    assert named - _headings() - {"ValueError"} == set()


def test_every_error_class_has_a_section() -> None:
    # Every error class is defined in one of these (with the modules they import).
    for module in (
        "mcp_frontend.server",
        "orchestrator.backends.llamacpp",
        "orchestrator.backends.provision",
    ):
        importlib.import_module(module)
    ours = {
        cls.__name__
        for cls in _subclasses(OrchestratorError)
        if cls.__module__.startswith(("orchestrator", "mcp_frontend"))
    }
    assert {"ConfigError", "PathNotAllowed", "PortTaken", "ProvisionError"} <= ours
    # Bases that are never raised themselves; EndpointNotSupported is a BackendRejected, told there.
    bases = {"ModelUnavailable", "BackendError"}
    missing = ours - _headings() - bases - {"EndpointNotSupported"}
    assert missing == set(), f"add a section (cause and fix) to docs/troubleshooting.md: {missing}"
    assert "`EndpointNotSupported`" in (DOCS / "troubleshooting.md").read_text(encoding="utf-8")


def test_every_section_says_cause_and_fix() -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    sections = re.split(r"^#{3,4} ", text, flags=re.MULTILINE)[1:]
    for section in sections:
        title = section.splitlines()[0]
        if title in {
            "Start-up and configuration",
            "Arguments",
            "Loading",
            "The backend",
            "Downloads",
            "Agents",
        }:
            continue
        if title == "`AgentError`":
            continue
        assert "*Cause:*" in section, title
        assert "*Fix:*" in section, title


def test_every_fidelity_finding_is_covered() -> None:
    text = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
    for finding in range(1, 15):
        assert re.search(rf"\bF{finding}\b", text), f"F{finding}"
