"""What is mutated and which tests run against it.

Each module is run against the test files that exercise it (not the whole
suite): fast, focused files first so that most mutants die within a second.
The lists are kept by hand; ``tests/test_mutation_tool.py`` checks every path
exists.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ACTOR_SAMPLE", "TARGETS", "Target"]


@dataclass(frozen=True)
class Target:
    """One mutated module.

    Attributes:
        module: the dotted name the import hook serves the mutant under.
        path: its source file, relative to the repository root.
        tests: the covering test files, in the order pytest runs them.
        target: the score (percent, equivalent mutants left out) it must reach.
        sample: when set, only this many mutants (a fixed-seed sample) are run.
    """

    module: str
    path: str
    tests: tuple[str, ...]
    target: float
    sample: int | None = None


_CORE_TESTS = (
    "tests/orchestrator/test_policy.py",
    "tests/orchestrator/test_policy_rules.py",
    "tests/orchestrator/test_decide.py",
    "tests/orchestrator/test_lifecycle.py",
    "tests/orchestrator/test_capacity.py",
    "tests/orchestrator/test_actor.py",
    "tests/orchestrator/test_orchestrator.py",
    "tests/orchestrator/test_reconciler.py",
    "tests/stateful/test_core_machine.py",
    "tests/stateful/test_actor_commands.py",
)
ACTOR_SAMPLE = 80

TARGETS: tuple[Target, ...] = (
    Target(
        module="orchestrator.lifecycle",
        path="orchestrator/lifecycle.py",
        tests=(*_CORE_TESTS, "tests/test_statecharts.py"),
        target=95.0,
    ),
    Target(
        module="orchestrator.policy", path="orchestrator/policy.py", tests=_CORE_TESTS, target=95.0
    ),
    Target(
        module="orchestrator.policy_core",
        path="orchestrator/policy_core.py",
        tests=_CORE_TESTS,
        target=95.0,
    ),
    Target(
        module="orchestrator.policy_unload",
        path="orchestrator/policy_unload.py",
        tests=_CORE_TESTS,
        target=95.0,
    ),
    Target(
        module="orchestrator.capacity",
        path="orchestrator/capacity.py",
        tests=(
            "tests/orchestrator/test_capacity.py",
            "tests/orchestrator/test_actor.py",
            "tests/orchestrator/test_orchestrator.py",
        ),
        target=95.0,
    ),
    Target(
        module="orchestrator.retry",
        path="orchestrator/retry.py",
        tests=("tests/orchestrator/test_retry.py", "tests/orchestrator/test_orchestrator.py"),
        target=95.0,
    ),
    Target(
        module="orchestrator.names",
        path="orchestrator/names.py",
        tests=("tests/orchestrator/test_names.py", "tests/security/test_model_names.py"),
        target=95.0,
    ),
    Target(
        module="orchestrator.actor",
        path="orchestrator/actor.py",
        # The actor's own duties beyond the policy: one log event per transition, the gauges.
        tests=(
            *_CORE_TESTS,
            "tests/observability/test_logs.py",
            "tests/observability/test_gauges.py",
        ),
        target=90.0,
        sample=ACTOR_SAMPLE,
    ),
)
