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

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from orchestrator import legacy_env
from orchestrator.config_checks import LMSTUDIO_ENV, Checker
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
        http_timeout_s: deadline for one control-plane HTTP request that changes
            something (unload).
        read_timeout_s: deadline for one control-plane read (catalogue, loaded list,
            API probe): LM Studio answers these in milliseconds, so a server that
            accepts the connection and stays silent fails a call within it.
        load_timeout_s: deadline for one load (large models take minutes).
        download_poll_s: how often a REST v1 download job's status is read.
    """

    base_url: str = "http://127.0.0.1:1234"
    api_token: str | None = None
    lms_cli: str | None = None
    prefer_cli: bool = False
    cli_timeout_s: float = 30.0
    http_timeout_s: float = 30.0
    read_timeout_s: float = 5.0
    load_timeout_s: float = 600.0
    download_poll_s: float = 1.0

    def __post_init__(self) -> None:
        check = Checker("lmstudio")
        check.http_url("base_url", self.base_url)
        check.not_blank("api_token", self.api_token)
        check.executable("lms_cli", self.lms_cli)
        for name in (
            "cli_timeout_s",
            "http_timeout_s",
            "read_timeout_s",
            "load_timeout_s",
            "download_poll_s",
        ):
            check.seconds(name, getattr(self, name))

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
        parallel: requests one worker serves at once (llama.cpp's slots,
            ``--parallel``); more wait in the orchestrator, first come first served.
            Above 1 the slots share the ``context_length`` KV cache.
        download_allow_http_loopback: let ``download_model`` fetch from a plain
            ``http://`` URL on a loopback address (a local mirror, the tests);
            other plain ``http`` URLs are always refused.
    """

    models_dir: str | None = None
    threads: int = 2
    context_length: int = 2048
    port_min: int = 18700
    port_max: int = 18999
    server_binary: str | None = None
    start_timeout_s: float = 60.0
    stop_timeout_s: float = 5.0
    parallel: int = 1
    download_allow_http_loopback: bool = False

    def __post_init__(self) -> None:
        check = Checker("llamacpp")
        check.not_blank("models_dir", self.models_dir)
        check.directory("models_dir", self.resolved_models_dir())
        check.count("threads", self.threads, 1, 1024)
        check.count("context_length", self.context_length, 64, 1 << 24)
        check.port("port_min", self.port_min)
        check.port("port_max", self.port_max)
        check.ordered("port_min", self.port_min, "port_max", self.port_max)
        check.executable("server_binary", self.server_binary)
        check.seconds("start_timeout_s", self.start_timeout_s)
        check.seconds("stop_timeout_s", self.stop_timeout_s)
        check.count("parallel", self.parallel, 1, 256)

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
        scheduler: who gets a slot when the models asked for do not all fit:
            ``swap_aware`` serves loaded models while they have queued requests and
            swaps when one drains or a request waits past its bound; ``fifo`` serves
            requests in arrival order (a swap for almost every change of model).
        swap_max_wait_s: the wait after which a request for a model without a
            slot forces a swap; ``None`` derives it per model (below).
        swap_wait_load_factor: the derived bound is this many times the model's
            measured p50 load time ...
        swap_wait_floor_s: ... and at least this long (also the bound before
            the model's first load).
        swap_max_batches: most batches of queued requests one model runs while
            another waits for a slot, before it is drained and swapped out.
        mailbox_size: per-model mailbox capacity; callers wait for room (within
            their deadline, then ``Overloaded``).
        unload_timeout_s: deadline for one unload.
        shutdown_timeout_s: bound on the unloads done at shutdown.
        adopt_loaded: at start, take note of models the backend already holds (as
            foreign instances, see ``manage_foreign``).
        manage_foreign: let this server unload (idle TTL, eviction, ``unload_model``)
            instances another client or the user loaded; off by default, so a model
            this server did not load is never unloaded by it.
        reconcile_interval_s: how often the reconciler lists what the backend holds
            and corrects what the actors believe (one listing per interval).
        adopt_loaded: at start, adopt models the backend already holds.
        allow_downloads: let ``download_model`` fetch models (network and disk);
            off by default.
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
    scheduler: Literal["swap_aware", "fifo"] = "swap_aware"
    swap_max_wait_s: float | None = None
    swap_wait_load_factor: float = 4.0
    swap_wait_floor_s: float = 5.0
    swap_max_batches: int = 8
    mailbox_size: int = 256
    unload_timeout_s: float = 30.0
    shutdown_timeout_s: float = 10.0
    adopt_loaded: bool = True
    manage_foreign: bool = False
    reconcile_interval_s: float = 5.0
    allow_downloads: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    lmstudio: LMStudioSettings = msgspec.field(default_factory=LMStudioSettings)
    llamacpp: LlamaCppSettings = msgspec.field(default_factory=LlamaCppSettings)

    def __post_init__(self) -> None:
        check = Checker("")
        for name in (
            "default_ttl_s",
            "temporary_ttl_s",
            "max_ttl_s",
            "request_timeout_s",
            "verify_initial_interval_s",
            "verify_max_interval_s",
            "verify_deadline_s",
            "breaker_cooldown_s",
            "unload_timeout_s",
            "shutdown_timeout_s",
            "reconcile_interval_s",
            "swap_wait_floor_s",
        ):
            check.seconds(name, getattr(self, name))
        if self.swap_max_wait_s is not None:
            check.seconds("swap_max_wait_s", self.swap_max_wait_s)
        check.factor("swap_wait_load_factor", self.swap_wait_load_factor, 1000)
        check.count("swap_max_batches", self.swap_max_batches, 1, 1_000_000)
        for name in ("retry_initial_s", "retry_max_s", "retry_jitter_s", "catalog_ttl_s"):
            check.seconds(name, getattr(self, name), zero=True)
        check.count("retry_attempts", self.retry_attempts, 1, 100)
        check.count("breaker_threshold", self.breaker_threshold, 1, 10_000)
        check.count("max_loaded_models", self.max_loaded_models, 1, 1_000)
        check.count("mailbox_size", self.mailbox_size, 1, 1_000_000)
        if self.memory_budget_bytes is not None:
            check.count("memory_budget_bytes", self.memory_budget_bytes, 1, 1 << 60)
        check.not_blank("default_model", self.default_model)
        check.not_blank("default_embedding_model", self.default_embedding_model)
        check.ordered("default_ttl_s", self.default_ttl_s, "max_ttl_s", self.max_ttl_s)
        check.ordered("temporary_ttl_s", self.temporary_ttl_s, "max_ttl_s", self.max_ttl_s)
        check.ordered(
            "verify_initial_interval_s",
            self.verify_initial_interval_s,
            "verify_max_interval_s",
            self.verify_max_interval_s,
        )
        check.ordered("retry_initial_s", self.retry_initial_s, "retry_max_s", self.retry_max_s)

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
        env = legacy_env.translate(os.environ if env is None else env)
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
            raise _invalid(exc, data) from exc


# LMSORCH_* variables read elsewhere: by name, and by prefix (each of those loaders
# refuses unknown names under its prefix itself).
_OTHER_NAMES = ("LMSORCH_CONFIG", "LMSORCH_HTTP_TOKEN", "LMSORCH_STATUS_URL")
_OTHER_PREFIXES = ("LMSORCH_MCP_", "LMSORCH_AGENT_")
_LLAMACPP_PREFIX = "LMSORCH_LLAMACPP_"


def _overlay_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    top = {f"LMSORCH_{f.upper()}": f for f in Config.__struct_fields__}
    del top["LMSORCH_LMSTUDIO"], top["LMSORCH_LLAMACPP"]
    llama = {f"{_LLAMACPP_PREFIX}{f.upper()}": f for f in LlamaCppSettings.__struct_fields__}
    lmstudio = {variable: field for field, variable in LMSTUDIO_ENV.items()}
    for key, value in env.items():
        if key in llama:
            data.setdefault("llamacpp", {})[llama[key]] = value
        elif key in top:
            data[top[key]] = value
        elif key in lmstudio:
            if value:
                data.setdefault("lmstudio", {})[lmstudio[key]] = value
        elif key == "LM_API_TOKEN" and value and not env.get("LMSTUDIO_API_TOKEN"):
            # LM Studio's own name (docs authentication.mdx, lmstudio-js LMStudioClient.ts).
            data.setdefault("lmstudio", {})["api_token"] = value
        elif key.startswith("LMSORCH_") and not (
            key in _OTHER_NAMES or key.startswith(_OTHER_PREFIXES)
        ):
            raise _unknown_variable(key, [*top, *llama, *_OTHER_NAMES])


def _unknown_variable(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "see docs/tools.md for the settings"
    return ConfigError(f"unknown environment variable {key}: {hint}")


def _invalid(exc: msgspec.ValidationError, data: Mapping[str, Any]) -> ConfigError:
    """Say which key got a value of the wrong type, with the value and where it is set."""
    problem, _, path = str(exc).partition(" - at `$.")
    parts = path.rstrip("`").split(".") if path else []
    if not parts or parts[0] not in Config.__struct_fields__:
        return ConfigError(f"invalid configuration: {exc}")
    value: Any = data
    for part in parts:
        value = value.get(part) if isinstance(value, Mapping) else None
    section, name = (parts[0], parts[-1]) if len(parts) > 1 else ("", parts[0])
    allowed = problem.replace("`", "")
    return Checker(section).fail(name, value, allowed[0].lower() + allowed[1:])
