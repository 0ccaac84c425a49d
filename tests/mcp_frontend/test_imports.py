"""The MCP server uses only the orchestrator's public names.

Allowed modules, and why:

- ``orchestrator``: the facade, the error tree, the status Structs.
- ``orchestrator.inference``: the public OpenAI-compatible client and its wire Structs.
- ``orchestrator.agent``: MCP server discovery, the toolbox and the agent loop.
- ``orchestrator.lifecycle``: ``render_mermaid``, for the live statechart resource.
- ``orchestrator.logs``: ``configure_logging``, called once by the entry point.
- ``orchestrator.response_chains``: the emulated Responses chains (a store the
  server owns, for backends whose Responses API keeps no state).
- ``orchestrator.backends.lmstudio`` / ``.llamacpp``: the concrete backend
  constructors, in ``backend_factory`` only (not re-exported by
  ``orchestrator.backends``, so importing that package stays light).
- ``orchestrator.env_settings``: the ``LMSORCH_*`` settings loader, in ``settings`` only.

Every imported name must also be in its module's ``__all__``. The CLI
maintenance commands of other features (``commands/models.py``, ``demo.py``,
``statechart.py``) are outside this check.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import mcp_frontend

PACKAGE = Path(mcp_frontend.__file__).parent
ALLOWED = {
    "orchestrator",
    "orchestrator.agent",
    "orchestrator.inference",
    "orchestrator.lifecycle",
    "orchestrator.logs",
    "orchestrator.response_chains",
}
ALLOWED_IN = {
    "backend_factory.py": {"orchestrator.backends.lmstudio", "orchestrator.backends.llamacpp"},
    "settings.py": {"orchestrator.env_settings"},
    "legacy_tools.py": {"orchestrator.legacy_env"},  # the env's one-time warnings
}
SERVER_FILES = sorted(
    [
        *PACKAGE.glob("*.py"),
        *PACKAGE.glob("checks/*.py"),
        *PACKAGE.glob("tools/*.py"),
        *PACKAGE.glob("transports/*.py"),
        PACKAGE / "commands" / "serve.py",
    ]
)


def orchestrator_imports(path: Path) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "orchestrator"]
        elif (
            isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "orchestrator"
        ):
            found.append((node.module or "", [a.name for a in node.names]))
    return found


@pytest.mark.parametrize("path", SERVER_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_server_imports_only_public_orchestrator_names(path: Path) -> None:
    allowed = ALLOWED | ALLOWED_IN.get(path.name, set())
    for module, names in orchestrator_imports(path):
        assert module in allowed, f"{path.name} imports {module}"
        assert names, f"{path.name}: use 'from {module} import ...'"
        public = set(importlib.import_module(module).__all__)
        assert set(names) <= public, f"{path.name} imports non-public {set(names) - public}"


def test_the_check_sees_the_imports() -> None:
    every = [m for p in SERVER_FILES for m, _ in orchestrator_imports(p)]
    assert {"orchestrator", "orchestrator.inference", "orchestrator.backends.llamacpp"} <= set(
        every
    )
