"""Test doubles: an in-process LM Studio simulator and a fake ``lms`` CLI.

Import from here::

    from tests.fakes import FAKE_LMS, Reply, ScriptedCall, open_simulator

See :mod:`fakes.lmstudio_sim` for the simulator's API and
:mod:`fakes.sim_faults` for the fault switches.
"""

from .lmstudio_sim import FAKE_LMS, ApiVersion, Simulator, open_simulator
from .sim_faults import GUARDRAIL_MESSAGE, CliCall, Faults, HttpCall
from .sim_scripts import Reply, ScriptedCall
from .sim_state import DEFAULT_MODELS, LoadRecord, SimInstance, SimModel

__all__ = [
    "DEFAULT_MODELS",
    "FAKE_LMS",
    "GUARDRAIL_MESSAGE",
    "ApiVersion",
    "CliCall",
    "Faults",
    "HttpCall",
    "LoadRecord",
    "Reply",
    "ScriptedCall",
    "SimInstance",
    "SimModel",
    "Simulator",
    "open_simulator",
]
