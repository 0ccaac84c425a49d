"""The two ways to load into LM Studio without ``lms``: a JIT request, or REST v1 (opt-in).

:class:`~orchestrator.backends.lmstudio.LMStudioBackend` prefers ``lms load``
(identifier and TTL); these are its fallbacks (``docs/decisions/0002-lmstudio-load-path.md``).

Neither can be cancelled in LM Studio: cancelling one drops its HTTP request,
and LM Studio completes the load anyway (no documented cancel route; ``lms``
cancels only through its SDK channel on SIGINT, findings F8). So a cancelled
one is remembered in :class:`AbandonedLoads`, and the backend's close unloads
it once LM Studio lists it (bounded by the caller: the shutdown bound).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import msgspec
import structlog
import trio

from orchestrator.backends.base import LoadedModel, ModelInfo
from orchestrator.backends.lmstudio_rest import LMStudioRest
from orchestrator.backends.lmstudio_support import INSTALL_HINT, ApiLevel, jit_request
from orchestrator.backends.lmstudio_wire import V1LoadResult
from orchestrator.errors import BackendRejected, ModelNotLoaded, OrchestratorError, UnknownModel

__all__ = ["AbandonedLoads", "load_jit", "load_rest_v1", "warn_if_fitted"]

_log = structlog.get_logger("orchestrator.backends.lmstudio")

SETTLE_INTERVAL_S: Final = 0.25
"""How often :meth:`AbandonedLoads.settle` lists what LM Studio holds."""


class AbandonedLoads:
    """Identifiers of REST/JIT loads cancelled on our side that LM Studio may still complete."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    @contextmanager
    def watch(self, identifier: str) -> Iterator[None]:
        """Remember ``identifier`` if the load in the block is cancelled."""
        try:
            yield
        except trio.Cancelled:
            self._ids.add(identifier)
            _log.info("lmstudio_load_abandoned", identifier=identifier)
            raise

    def gone(self, identifier: str) -> None:
        """``identifier`` was unloaded (by whoever): nothing is left to wait for."""
        self._ids.discard(identifier)

    async def settle(
        self,
        list_loaded: Callable[[], Awaitable[list[LoadedModel]]],
        unload: Callable[[str], Awaitable[None]],
    ) -> None:
        """Unload each abandoned load once LM Studio lists it; until none is left.

        Bound it: a load LM Studio never completes is waited for until the
        caller's deadline, then left (a JIT load expires by its TTL).
        """
        try:
            while self._ids:
                try:
                    listed = {m.identifier for m in await list_loaded()}
                    for identifier in sorted(self._ids & listed):
                        await unload(identifier)
                        self.gone(identifier)
                        _log.info("unload", reason="abandoned_load", identifier=identifier)
                except OrchestratorError as exc:
                    _log.info("lmstudio_abandoned_load_check_failed", error=str(exc))
                if self._ids:
                    await trio.sleep(SETTLE_INTERVAL_S)
        finally:
            if self._ids:
                _log.warning("lmstudio_abandoned_loads_left", identifiers=sorted(self._ids))


async def load_jit(
    rest: LMStudioRest,
    level: ApiLevel,
    info: ModelInfo,
    identifier: str,
    ttl: int,
    context_length: int | None,
    timeout_s: float,
) -> None:
    """Load ``info`` by a one-token inference request that carries ``ttl``.

    A JIT load names the instance after the key and ignores any context length.

    Raises:
        BackendRejected: the server is too old, the identifier is not the key,
            or JIT loading is off.
    """
    if level is ApiLevel.OPENAI_ONLY:
        raise BackendRejected(
            f"cannot load {info.key!r} with a TTL: the lms CLI is not usable here and "
            f"LM Studio at {rest.root} is too old to JIT-load with a TTL; {INSTALL_HINT}"
        )
    if identifier != info.key:
        raise BackendRejected(
            f"cannot load {info.key!r} as {identifier!r}: without the lms CLI LM Studio "
            f"names a JIT-loaded instance after its model key; {INSTALL_HINT}"
        )
    if context_length is not None:
        _log.warning("jit_load_ignores_context_length", model=info.key, asked=context_length)
    path, payload = jit_request(info, ttl)
    try:
        await rest.call("POST", path, msgspec.json.encode(payload), timeout_s)
    except ModelNotLoaded as exc:
        raise BackendRejected(
            f"LM Studio did not load {info.key!r} on demand ({exc}); Just-in-Time model "
            f"loading is probably off. Enable it in LM Studio's server settings, or "
            f"{INSTALL_HINT}"
        ) from exc


async def load_rest_v1(
    rest: LMStudioRest,
    key: str,
    identifier: str,
    context_length: int | None,
    catalog: list[ModelInfo],
    unload: Callable[[str], Awaitable[None]],
    timeout_s: float,
) -> None:
    """Load ``key`` through ``POST /api/v1/models/load`` (no TTL, no identifier).

    Raises:
        UnknownModel: LM Studio does not know ``key``.
        BackendRejected: LM Studio named the instance otherwise (it is unloaded again).
    """
    payload: dict[str, Any] = {"model": key}
    if context_length is not None:
        payload["context_length"] = context_length
    try:
        result = await rest.post(
            "/api/v1/models/load",
            V1LoadResult,
            body=msgspec.json.encode(payload),
            timeout_s=timeout_s,
        )
    except ModelNotLoaded as exc:
        raise UnknownModel(key, [m.key for m in catalog]) from exc
    if result.instance_id != identifier:
        # LM Studio picked another name (e.g. "key:2"); do not leave it behind.
        await unload(result.instance_id)
        raise BackendRejected(
            f"LM Studio loaded {key!r} as {result.instance_id!r}, not {identifier!r} "
            f"(REST v1 loads cannot choose the identifier); {INSTALL_HINT}"
        )


async def warn_if_fitted(
    list_loaded: Callable[[], Awaitable[list[LoadedModel]]], identifier: str, asked: int
) -> None:
    """Log when LM Studio loaded ``identifier`` with less context than ``asked``.

    LM Studio 0.4.12+ fits context to memory and may load less than asked,
    without an error (BT#1902, BT#2174); the loaded context is in lms ps.
    """
    got = next((m for m in await list_loaded() if m.identifier == identifier), None)
    if got is not None and got.context_length is not None and got.context_length < asked:
        _log.warning(
            "lmstudio_context_fitted_down",
            identifier=identifier,
            asked=asked,
            loaded=got.context_length,
        )
