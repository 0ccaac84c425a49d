"""The mutation tool itself (``python -m mutation``): it makes every kind of mutant, judges
a killable mutant killed, an unobservable one survived and a hanging one killed by timeout,
and scores without the equivalent mutants, whose verdicts must name real mutants.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mutation.__main__ import ROOT
from mutation.operators import Kind, Mutant, compile_mutant, enum_members, generate
from mutation.report import Row, from_json, score, to_json
from mutation.runner import Outcome, run_mutants
from mutation.targets import TARGETS, Target
from mutation.verdicts import EQUIVALENT

SOURCE = '''
"""A module with one of everything."""
import enum


class Color(enum.Enum):
    RED = 1
    GREEN = 2


C = Color


def f(a: int, b: int, xs: list[int], flag: bool) -> int:
    """Not mutated: a docstring."""
    total = a + b
    if a < b and flag:
        total -= 1
    if a is None or b in xs:
        return 0
    picked = [x for x in xs if x != 3]
    colour = C.RED if flag else Color.GREEN
    done = not flag
    assert colour
    return total + len(picked) + len("-".split("x")) + done
'''


def mutants(tmp_path: Path, source: str = SOURCE) -> list[Mutant]:
    path = tmp_path / "sample.py"
    path.write_text(textwrap.dedent(source))
    return generate("sample", path, enum_members([path]))


def test_every_kind_of_mutant_is_made_and_each_compiles(tmp_path: Path) -> None:
    found = mutants(tmp_path)
    assert {m.kind for m in found} == set(Kind)
    descriptions = {m.description for m in found}
    expected = {
        "`+` -> `-`",
        "`-` -> `+`",
        "`<` -> `<=`",
        "`<` -> `>=`",
        "`is` -> `is not`",
        "`in` -> `not in`",
        "`!=` -> `==`",
        "`and` -> `or`",
        "`a < b and flag` negated",
        "`not flag`: `not` removed",
        "`flag` negated",
        "`x != 3` negated",
        "`3` -> `4`",
        "`C.RED` -> `C.GREEN`",
        "`Color.GREEN` -> `Color.RED`",
        "`'x'` -> `'xX'`",
        "`total -= 1` dropped",
        "`return 0` dropped",
    }
    assert expected <= descriptions
    # Declarations and text are left alone: annotations, docstrings, enum values, messages.
    assert not any("Not mutated" in d or "int" in d for d in descriptions)
    assert "`'-'` -> `'-X'`" not in descriptions  # a receiver, not an argument
    for mutant in found:
        compile_mutant(mutant, tmp_path / "sample.py")


def test_the_real_file_is_never_written(tmp_path: Path) -> None:
    found = mutants(tmp_path)
    before = (tmp_path / "sample.py").read_text()
    for mutant in found:
        compile_mutant(mutant, tmp_path / "sample.py")
    assert (tmp_path / "sample.py").read_text() == before


TARGET = """
def countdown(n: int) -> int:
    steps = 0
    while n > 0:
        n -= 1
        steps += 1
    return steps


def unused(x: int) -> int:
    return x * 2
"""
TEST = """
from mutation_tool_target import countdown


def test_countdown() -> None:
    assert countdown(3) == 3
"""


def test_killable_mutants_are_killed_unobserved_ones_survive_and_hangs_time_out(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mutation_tool_target.py"
    path.write_text(TARGET)
    (tmp_path / "test_target.py").write_text(TEST)
    found = generate("mutation_tool_target", path, {})
    chosen = {m.description: m for m in found}
    run = [chosen["`>` -> `>=`"], chosen["`*` -> `/`"]]
    results = run_mutants(tmp_path, path, ["test_target.py"], run, timeout_s=60.0, jobs=2)
    # A short bound for the one that hangs: it costs exactly its timeout.
    hang = [chosen["`-` -> `+`"]]
    results += run_mutants(tmp_path, path, ["test_target.py"], hang, timeout_s=2.0, jobs=1)
    outcomes = {r.mutant.description: r.outcome for r in results}
    assert outcomes == {
        "`>` -> `>=`": Outcome.KILLED,  # countdown(3) == 4
        "`*` -> `/`": Outcome.SURVIVED,  # no test calls unused()
        "`-` -> `+`": Outcome.TIMEOUT,  # n grows for ever
    }


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.module)
def test_every_target_and_its_covering_tests_exist(target: Target) -> None:
    assert (ROOT / target.path).is_file()
    assert target.tests
    for test in target.tests:
        assert (ROOT / test).is_file(), test


def row(edit: str, outcome: Outcome) -> Row:
    return Row("m", 1, "constant", edit, "x = 1", outcome, None, 0.1)


def test_equivalent_mutants_are_left_out_and_unjudged_survivors_fail_the_target() -> None:
    rows = [row(f"e{i}", Outcome.KILLED) for i in range(8)]
    rows += [row("t", Outcome.TIMEOUT), row("eq", Outcome.SURVIVED), row("gap", Outcome.SURVIVED)]
    verdicts = {"x = 1 | eq": "why", "x = 1 | e0": "stale: it is killed"}
    s = score("m", rows, verdicts, target=90.0, sampled=False)
    assert (s.total, s.killed, s.timeouts, s.equivalent) == (11, 8, 1, 1)
    assert s.percent == pytest.approx(90.0)
    assert [r.edit for r in s.unjudged] == ["gap"]
    assert s.stale == ["x = 1 | e0"]
    assert not s.passed  # on target, but a survivor is not judged
    again, _ = from_json(to_json(rows, 60.0))
    assert again == rows


@pytest.mark.parametrize("module", sorted(EQUIVALENT))
def test_every_verdict_names_a_mutant_that_exists(module: str) -> None:
    target = next(t for t in TARGETS if t.module == module)
    enums = enum_members(sorted((ROOT / "orchestrator").glob("*.py")))
    keys = {m.key for m in generate(module, ROOT / target.path, enums)}
    assert set(EQUIVALENT[module]) <= keys
