"""The models directory: a file or unreadable path is refused at start; a missing one is said."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator import Config, ConfigError, UnknownModel, open_orchestrator
from orchestrator.backends.llamacpp import LlamaCppBackend
from orchestrator.config import LlamaCppSettings


def test_a_models_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "models"
    path.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"llamacpp\.models_dir = .*must be a directory"):
        Config.load(env={"LMSORCH_LLAMACPP_MODELS_DIR": str(path)})


async def test_a_missing_models_dir_is_named_wherever_models_are_looked_up(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no-models-here"
    backend = LlamaCppBackend(LlamaCppSettings(models_dir=str(missing)))
    problem = backend.catalog_problem()
    assert problem is not None
    assert str(missing) in problem
    assert "fetch-demo" in problem
    assert await backend.list_available() == []
    async with open_orchestrator(backend, Config()) as orch:
        with pytest.raises(UnknownModel) as caught:
            await orch.ensure_loaded("some-model", timeout_s=5)
    assert "available models: none" in str(caught.value)
    assert f"the models directory {missing} does not exist" in str(caught.value)
    missing.mkdir()
    assert backend.catalog_problem() is None  # created later (fetch-demo): no longer said
