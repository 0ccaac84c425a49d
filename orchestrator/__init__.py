"""lmstudio-orchestrator: local models for AI agents, one actor per model on trio.

Start here::

    from orchestrator import Config, open_orchestrator
    from orchestrator.testing import FakeBackend

    async with open_orchestrator(FakeBackend(["qwen"]), Config()) as orch:
        async with orch.lease("qwen") as lease:
            ...  # the model is READY and cannot expire until the block ends
"""

from orchestrator.api import Lease, Orchestrator, open_orchestrator
from orchestrator.backends.base import Backend, BackendHealth, LoadedModel, ModelInfo
from orchestrator.config import Config
from orchestrator.downloads import DownloadJob, DownloadManager
from orchestrator.errors import (
    ActorStopped,
    BackendAuthError,
    BackendError,
    BackendProtocolError,
    BackendRejected,
    BackendServerError,
    BackendSilent,
    BackendTimeout,
    BackendUnreachable,
    BreakerOpen,
    CapacityExhausted,
    ConfigError,
    ConnectionDropped,
    DownloadFailed,
    DownloadsDisabled,
    InvalidModelName,
    InvalidRequest,
    InvalidTransition,
    LoadFailed,
    ModelBusy,
    ModelNotLoaded,
    ModelUnavailable,
    NotAnswered,
    NotOwned,
    OrchestratorError,
    Overloaded,
    StreamCut,
    UnknownDownload,
    UnknownModel,
    VerifyFailed,
    WaitTimeout,
)
from orchestrator.exception_groups import unwrap_group
from orchestrator.feed import Dropped, Subscription, TransitionEvent
from orchestrator.held_model import HeldModel, InferenceCall, hold_model
from orchestrator.identity import SERVER_NAME
from orchestrator.inference.target import InferenceTarget
from orchestrator.lifecycle import Input, State
from orchestrator.metrics import Metrics
from orchestrator.paths import implicit_root
from orchestrator.scheduler import ModelQueue, SchedulerStatus
from orchestrator.status import ModelStatus

__all__ = [
    "SERVER_NAME",
    "ActorStopped",
    "Backend",
    "BackendAuthError",
    "BackendError",
    "BackendHealth",
    "BackendProtocolError",
    "BackendRejected",
    "BackendServerError",
    "BackendSilent",
    "BackendTimeout",
    "BackendUnreachable",
    "BreakerOpen",
    "CapacityExhausted",
    "Config",
    "ConfigError",
    "ConnectionDropped",
    "DownloadFailed",
    "DownloadJob",
    "DownloadManager",
    "DownloadsDisabled",
    "Dropped",
    "HeldModel",
    "InferenceCall",
    "InferenceTarget",
    "Input",
    "InvalidModelName",
    "InvalidRequest",
    "InvalidTransition",
    "Lease",
    "LoadFailed",
    "LoadedModel",
    "Metrics",
    "ModelBusy",
    "ModelInfo",
    "ModelNotLoaded",
    "ModelQueue",
    "ModelStatus",
    "ModelUnavailable",
    "NotAnswered",
    "NotOwned",
    "Orchestrator",
    "OrchestratorError",
    "Overloaded",
    "SchedulerStatus",
    "State",
    "StreamCut",
    "Subscription",
    "TransitionEvent",
    "UnknownDownload",
    "UnknownModel",
    "VerifyFailed",
    "WaitTimeout",
    "hold_model",
    "implicit_root",
    "open_orchestrator",
    "unwrap_group",
]
