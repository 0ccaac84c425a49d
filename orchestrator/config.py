"""Configuration: one frozen :class:`Config`, from defaults, a TOML file and the environment.

Precedence (later wins): defaults, the TOML file, environment variables,
explicit overrides. Unknown keys are errors, so a typo never passes silently.
Durations are float seconds everywhere.

Environment variables: ``LMSORCH_<FIELD>`` for top-level fields (for example
``LMSORCH_DEFAULT_TTL_S=900``), ``LMSORCH_LLAMACPP_<FIELD>`` for the embedded
backend, and LM Studio's own names ``LMSTUDIO_BASE_URL``,
``LMSTUDIO_API_TOKEN`` and ``LMS_CLI``. The TOML file is given by
``LMSORCH_CONFIG`` or the ``path`` argument; its sections are ``[lmstudio]``
and ``[llamacpp]``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from orchestrator.errors import ConfigError

__all__ = ["Config", "LMStudioSettings", "LlamaCppSettings", "default_data_dir"]


def default_data_dir() -> Path:
    """Return the per-user data directory (``$XDG_DATA_HOME/lmsorch``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lmsorch"


class LMStudioSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to reach LM Studio.

    Attributes:
        base_url: the server root, without ``/v1``.
        api_token: sent as a Bearer token when set; never logged.
        lms_cli: path of the ``lms`` executable; ``None`` looks it up on PATH.
        prefer_cli: load and unload through ``lms`` even when REST offers it.
        cli_timeout_s: deadline for one ``lms`` call; a hung CLI is killed.
        http_timeout_s: deadline for one control-plane HTTP request.
        load_timeout_s: deadline for one load (large models take minutes).
    """

    base_url: str = "http://127.0.0.1:1234"
    api_token: str | None = None
    lms_cli: str | None = None
    prefer_cli: bool = False
    cli_timeout_s: float = 30.0
    http_timeout_s: float = 30.0
    load_timeout_s: float = 600.0

    def __repr__(self) -> str:
        # The token must never reach a log or a traceback through a repr.
        token = None if self.api_token is None else "<set>"
        return (
            f"LMStudioSettings(base_url={self.base_url!r}, api_token={token}, "
            f"lms_cli={self.lms_cli!r}, prefer_cli={self.prefer_cli!r})"
        )


class LlamaCppSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The embedded llama.cpp backend.

    Attributes:
        models_dir: where GGUF files live; ``None`` means ``<data dir>/models``.
        threads: CPU threads per worker.
        context_length: default context length per model.
        port_min: lowest loopback port a worker may use.
        port_max: highest loopback port a worker may use.
        server_binary: a ``llama-server`` binary to use instead of the xllamacpp worker.
        start_timeout_s: deadline for a worker to start listening.
        stop_timeout_s: grace period between terminate and kill.
    """

    models_dir: str | None = None
    threads: int = 2
    context_length: int = 2048
    port_min: int = 18700
    port_max: int = 18999
    server_binary: str | None = None
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 5.0

    def resolved_models_dir(self) -> Path:
        """Return the models directory, defaulting under the user's data directory."""
        return Path(self.models_dir) if self.models_dir else default_data_dir() / "models"


class Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every policy and setting, with the product plan's defaults.

    Attributes:
        backend: which backend ``lmsorch serve`` uses.
        default_model: model used when a tool omits ``model``.
        default_embedding_model: model used when an embedding tool omits ``model``.
        default_ttl_s: idle TTL for a load that names none.
        temporary_ttl_s: idle TTL for short-lived, temporary loads.
        max_ttl_s: upper bound for every TTL (never infinite).
        request_timeout_s: default wait for a model to become ready.
        verify_initial_interval_s: first verification poll interval.
        verify_max_interval_s: cap on the growing poll interval, so a model the
            backend lists late is seen within it (a local listing is cheap).
        verify_deadline_s: a load not listed by then is a failed verification.
        retry_attempts: attempts for a transient backend error (1 = no retry).
        retry_initial_s: first backoff; it doubles per attempt.
        retry_max_s: cap on the backoff.
        retry_jitter_s: random extra wait, up to this much.
        breaker_threshold: consecutive failures that open the breaker.
        breaker_cooldown_s: how long the breaker stays open before one probe.
        catalog_ttl_s: how long the model catalogue is cached.
        max_loaded_models: most models loaded at once (LRU idle eviction beyond).
        memory_budget_bytes: optional cap on the summed size of loaded models.
        mailbox_size: per-model mailbox capacity; callers wait for room (within
            their deadline, then ``Overloaded``).
        unload_timeout_s: deadline for one unload.
        shutdown_timeout_s: bound on the unloads done at shutdown.
        adopt_loaded: at start, adopt models the backend already holds.
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        lmstudio: LM Studio settings.
        llamacpp: embedded llama.cpp settings.
    """

    backend: Literal["lmstudio", "llamacpp"] = "llamacpp"
    default_model: str | None = None
    default_embedding_model: str | None = None
    default_ttl_s: float = 600.0
    temporary_ttl_s: float = 300.0
    max_ttl_s: float = 3600.0
    request_timeout_s: float = 300.0
    verify_initial_interval_s: float = 0.01
    verify_max_interval_s: float = 0.05
    verify_deadline_s: float = 30.0
    retry_attempts: int = 3
    retry_initial_s: float = 1.0
    retry_max_s: float = 4.0
    retry_jitter_s: float = 0.5
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 60.0
    catalog_ttl_s: float = 60.0
    max_loaded_models: int = 3
    memory_budget_bytes: int | None = None
    mailbox_size: int = 256
    unload_timeout_s: float = 30.0
    shutdown_timeout_s: float = 10.0
    adopt_loaded: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    lmstudio: LMStudioSettings = msgspec.field(default_factory=LMStudioSettings)
    llamacpp: LlamaCppSettings = msgspec.field(default_factory=LlamaCppSettings)

    def __post_init__(self) -> None:
        positive = {
            "default_ttl_s": self.default_ttl_s,
            "temporary_ttl_s": self.temporary_ttl_s,
            "max_ttl_s": self.max_ttl_s,
            "request_timeout_s": self.request_timeout_s,
            "verify_initial_interval_s": self.verify_initial_interval_s,
            "verify_max_interval_s": self.verify_max_interval_s,
            "verify_deadline_s": self.verify_deadline_s,
            "breaker_cooldown_s": self.breaker_cooldown_s,
            "unload_timeout_s": self.unload_timeout_s,
            "shutdown_timeout_s": self.shutdown_timeout_s,
        }
        for name, value in positive.items():
            if not value > 0 or value == float("inf"):
                raise ConfigError(f"{name} must be a positive, finite number of seconds")
        for name, count in {
            "retry_attempts": self.retry_attempts,
            "breaker_threshold": self.breaker_threshold,
            "max_loaded_models": self.max_loaded_models,
            "mailbox_size": self.mailbox_size,
        }.items():
            if count < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.default_ttl_s > self.max_ttl_s or self.temporary_ttl_s > self.max_ttl_s:
            raise ConfigError("default_ttl_s and temporary_ttl_s must not exceed max_ttl_s")
        if min(self.retry_initial_s, self.retry_max_s, self.retry_jitter_s, self.catalog_ttl_s) < 0:
            raise ConfigError("retry and catalogue durations must not be negative")

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Config:
        """Build a Config from a TOML file, the environment and explicit overrides.

        Args:
            path: a TOML file; defaults to ``$LMSORCH_CONFIG`` when set.
            env: the environment to read (``os.environ`` by default).
            **overrides: top-level fields that win over everything else.

        Raises:
            ConfigError: the file is unreadable or invalid, or a value is out of range.
        """
        env = os.environ if env is None else env
        data: dict[str, Any] = {}
        path = path or env.get("LMSORCH_CONFIG") or None
        if path is not None:
            try:
                data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read config file {str(path)!r}: {exc}") from exc
        _overlay_env(data, env)
        data.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"invalid configuration: {exc}") from exc


_LMSTUDIO_ENV = {
    "LMSTUDIO_BASE_URL": "base_url",
    "LMSTUDIO_API_TOKEN": "api_token",
    "LMS_CLI": "lms_cli",
}


def _overlay_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    top = {f.upper(): f for f in Config.__struct_fields__ if f not in ("lmstudio", "llamacpp")}
    llama = {f.upper(): f for f in LlamaCppSettings.__struct_fields__}
    for key, value in env.items():
        if key.startswith("LMSORCH_LLAMACPP_") and key[17:] in llama:
            data.setdefault("llamacpp", {})[llama[key[17:]]] = value
        elif key.startswith("LMSORCH_") and key[8:] in top:
            data[top[key[8:]]] = value
        elif key in _LMSTUDIO_ENV and value:
            data.setdefault("lmstudio", {})[_LMSTUDIO_ENV[key]] = value
        elif key == "LM_API_TOKEN" and value and not env.get("LMSTUDIO_API_TOKEN"):
            # LM Studio's own name (docs authentication.mdx, lmstudio-js LMStudioClient.ts).
            data.setdefault("lmstudio", {})["api_token"] = value
