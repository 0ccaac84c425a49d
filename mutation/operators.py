"""Mutant generation: one small AST edit of a module's source per mutant.

Every mutant replaces one child of one node (found again in a fresh copy of the
tree by its position in :func:`ast.walk` order) and is compiled straight from
the edited tree, so line numbers stay those of the real file and nothing is
ever written to disk.
"""

from __future__ import annotations

import ast
import copy
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

__all__ = ["Kind", "Mutant", "compile_mutant", "enum_members", "generate"]


class Kind(enum.StrEnum):
    """What a mutant changes."""

    OPERATOR = "operator"  # + - * / and augmented assignment
    COMPARISON = "comparison"  # < <= > >= == !=
    IDENTITY = "identity"  # is / is not
    MEMBERSHIP = "membership"  # in / not in
    BOOLEAN = "boolean"  # and / or
    NEGATION = "negation"  # a condition negated, or a `not` removed
    CONSTANT = "constant"  # numbers, booleans, behaviour-bearing strings
    STATEMENT = "statement"  # a simple statement dropped (replaced by `pass`)
    ENUM_MEMBER = "enum member"  # State.READY -> State.EXPIRING, in the table and elsewhere


Make = Callable[[ast.AST], ast.AST]


@dataclass(frozen=True)
class Mutant:
    """One edit: ``make`` builds the new child from the old one (in a copied tree)."""

    module: str
    index: int
    line: int
    kind: Kind
    description: str
    source_line: str
    parent: int  # position of the parent node in ast.walk order
    field: str
    position: int | None  # index within a list field, None for a single child
    make: Make

    @property
    def key(self) -> str:
        """A name that survives edits elsewhere in the file (used by verdicts)."""
        return f"{self.source_line} | {self.description}"


_BINOPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.Mult,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
}
_CMPOPS: dict[type[ast.cmpop], tuple[tuple[type[ast.cmpop], Kind], ...]] = {
    ast.Lt: ((ast.LtE, Kind.COMPARISON), (ast.GtE, Kind.COMPARISON)),
    ast.LtE: ((ast.Lt, Kind.COMPARISON), (ast.Gt, Kind.COMPARISON)),
    ast.Gt: ((ast.GtE, Kind.COMPARISON), (ast.LtE, Kind.COMPARISON)),
    ast.GtE: ((ast.Gt, Kind.COMPARISON), (ast.Lt, Kind.COMPARISON)),
    ast.Eq: ((ast.NotEq, Kind.COMPARISON),),
    ast.NotEq: ((ast.Eq, Kind.COMPARISON),),
    ast.Is: ((ast.IsNot, Kind.IDENTITY),),
    ast.IsNot: ((ast.Is, Kind.IDENTITY),),
    ast.In: ((ast.NotIn, Kind.MEMBERSHIP),),
    ast.NotIn: ((ast.In, Kind.MEMBERSHIP),),
}
_DROPPABLE = (
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Return,
    ast.Raise,
    ast.Delete,
    ast.Break,
    ast.Continue,
)
_BLOCKS = (
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.ExceptHandler,
    ast.match_case,
)
# Strings are behaviour only where code inspects text (prefixes, separators, patterns);
# elsewhere they are messages and labels, which mutation would only reword.
_TEXT_METHODS = {"startswith", "endswith", "split", "compile", "fullmatch", "search", "match"}
_OP_TEXT = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.And: "and",
    ast.Or: "or",
}


def enum_members(sources: list[Path]) -> dict[str, list[str]]:
    """Return ``{enum class name: member names}`` for the enums defined in ``sources``."""
    found: dict[str, list[str]] = {}
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ClassDef):
                continue
            if not any("Enum" in ast.unparse(base) for base in node.bases):
                continue
            found[node.name] = [
                t.id
                for stmt in node.body
                if isinstance(stmt, ast.Assign)
                for t in stmt.targets
                if isinstance(t, ast.Name)
            ]
    return found


def _aliases(tree: ast.Module, enums: dict[str, list[str]]) -> dict[str, list[str]]:
    # `S, I, G = State, Input, Guard` lets the transition table use short names.
    result = dict(enums)
    for stmt in tree.body:
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            continue
        target, value = stmt.targets[0], stmt.value
        pairs: list[tuple[ast.expr, ast.expr]] = [(target, value)]
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            pairs = list(zip(target.elts, value.elts, strict=False))
        for t, v in pairs:
            if isinstance(t, ast.Name) and isinstance(v, ast.Name) and v.id in enums:
                result[t.id] = enums[v.id]
    return result


def _set_op(op: type[ast.AST]) -> Make:
    def make(node: ast.AST) -> ast.AST:
        node.op = op()  # type: ignore[attr-defined]
        return node

    return make


def _set_cmp(i: int, op: type[ast.cmpop]) -> Make:
    def make(node: ast.AST) -> ast.AST:
        assert isinstance(node, ast.Compare)
        node.ops[i] = op()
        return node

    return make


def _negate(node: ast.AST) -> ast.AST:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return node.operand
    assert isinstance(node, ast.expr)
    return ast.copy_location(ast.UnaryOp(op=ast.Not(), operand=node), node)


def _drop(node: ast.AST) -> ast.AST:
    return ast.copy_location(ast.Pass(), node)


def _constant(value: bool | int | float | str) -> Make:
    def make(node: ast.AST) -> ast.AST:
        assert isinstance(node, ast.Constant)
        node.value = value
        return node

    return make


def _attr(member: str) -> Make:
    def make(node: ast.AST) -> ast.AST:
        assert isinstance(node, ast.Attribute)
        node.attr = member
        return node

    return make


def _new_constant(value: object) -> bool | int | float | str | None:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return {0: 1, 1: 0}.get(value, value + 1)
    if isinstance(value, float):
        return value + 1.0
    if isinstance(value, str):
        return value + "X" if value else "X"
    return None


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _text_strings(tree: ast.Module) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _TEXT_METHODS:
                ids.update(id(a) for a in node.args)
        elif isinstance(node, ast.Compare):
            ids.update(id(c) for c in [node.left, *node.comparators])
    return ids


def _annotations(tree: ast.Module) -> set[int]:
    # Annotations are types, not behaviour (msgspec would merely fail on `float & None`);
    # class keywords (`frozen=True, kw_only=True`) declare, they do not decide.
    roots: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.ClassDef):  # `frozen=True, kw_only=True`: declarations too
            roots.extend(node.keywords)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            roots.append(node.returns)
    return {id(n) for root in roots for n in ast.walk(root)}


def _sites(
    tree: ast.Module, enums: dict[str, list[str]]
) -> Iterator[tuple[ast.AST, str, int | None, ast.AST, Kind, str, Make]]:
    """Yield ``(parent, field, position, child, kind, description, make)`` per mutant."""
    texts = _text_strings(tree)
    skip = _annotations(tree)
    for parent in ast.walk(tree):
        if id(parent) in skip:
            continue
        in_function = isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef)
        for field, value in ast.iter_fields(parent):
            children = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
            for pos, child in children:
                if not isinstance(child, ast.AST) or id(child) in skip:
                    continue
                yield from _child_sites(parent, field, pos, child, enums, texts, in_function)


def _child_sites(
    parent: ast.AST,
    field: str,
    pos: int | None,
    child: ast.AST,
    enums: dict[str, list[str]],
    texts: set[int],
    in_function: bool,
) -> Iterator[tuple[ast.AST, str, int | None, ast.AST, Kind, str, Make]]:
    site = (parent, field, pos, child)
    if isinstance(child, ast.BinOp | ast.AugAssign) and type(child.op) in _BINOPS:
        new = _BINOPS[type(child.op)]
        desc = f"`{_OP_TEXT[type(child.op)]}` -> `{_OP_TEXT[new]}`"
        yield (*site, Kind.OPERATOR, desc, _set_op(new))
    if isinstance(child, ast.Compare):
        for i, op in enumerate(child.ops):
            for new_cmp, kind in _CMPOPS.get(type(op), ()):
                desc = f"`{_OP_TEXT[type(op)]}` -> `{_OP_TEXT[new_cmp]}`"
                yield (*site, kind, desc, _set_cmp(i, new_cmp))
    if isinstance(child, ast.BoolOp):
        new_bool = ast.Or if isinstance(child.op, ast.And) else ast.And
        desc = f"`{_OP_TEXT[type(child.op)]}` -> `{_OP_TEXT[new_bool]}`"
        yield (*site, Kind.BOOLEAN, desc, _set_op(new_bool))
    negated_field = field == "test" and isinstance(parent, ast.If | ast.While | ast.IfExp)
    if negated_field or (field == "ifs" and isinstance(parent, ast.comprehension)):
        yield (*site, Kind.NEGATION, f"`{ast.unparse(child)}` negated", _negate)
    elif isinstance(child, ast.UnaryOp) and isinstance(child.op, ast.Not):
        yield (*site, Kind.NEGATION, f"`{ast.unparse(child)}`: `not` removed", _negate)
    if isinstance(child, ast.Constant):
        value = child.value
        if not isinstance(value, str) or id(child) in texts:
            new_value = _new_constant(value)
            if new_value is not None:
                desc = f"`{value!r}` -> `{new_value!r}`"
                yield (*site, Kind.CONSTANT, desc, _constant(new_value))
    if (
        isinstance(child, ast.Attribute)
        and isinstance(child.value, ast.Name)
        and child.attr in enums.get(child.value.id, ())
    ):
        members = enums[child.value.id]
        other = members[(members.index(child.attr) + 1) % len(members)]
        desc = f"`{child.value.id}.{child.attr}` -> `{child.value.id}.{other}`"
        yield (*site, Kind.ENUM_MEMBER, desc, _attr(other))
    in_block = (in_function and field == "body") or isinstance(parent, _BLOCKS)
    if in_block and isinstance(child, _DROPPABLE) and not _is_docstring(child):
        yield (*site, Kind.STATEMENT, f"`{ast.unparse(child)}` dropped", _drop)


def generate(module: str, path: Path, enums: dict[str, list[str]]) -> list[Mutant]:
    """Return every mutant of ``module`` (whose source is ``path``), in source order."""
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source, str(path))
    order = {id(node): i for i, node in enumerate(ast.walk(tree))}
    known = _aliases(tree, enums)
    found = []
    for parent, field, pos, child, kind, desc, make in _sites(tree, known):
        line = getattr(child, "lineno", getattr(parent, "lineno", 1))
        found.append((line, order[id(parent)], field, pos, kind, desc, make))
    found.sort(key=lambda f: (f[0], f[1]))
    return [
        Mutant(
            module=module,
            index=i,
            line=line,
            kind=kind,
            description=" ".join(desc.split())[:120],
            source_line=lines[line - 1].strip(),
            parent=parent,
            field=field,
            position=pos,
            make=make,
        )
        for i, (line, parent, field, pos, kind, desc, make) in enumerate(found)
    ]


def compile_mutant(mutant: Mutant, path: Path) -> CodeType:
    """Compile ``path`` with ``mutant`` applied (the file itself is never changed)."""
    tree = ast.parse(path.read_text(), str(path))
    tree = copy.deepcopy(tree)
    parent = list(ast.walk(tree))[mutant.parent]
    if mutant.position is None:
        setattr(parent, mutant.field, mutant.make(getattr(parent, mutant.field)))
    else:
        children = getattr(parent, mutant.field)
        children[mutant.position] = mutant.make(children[mutant.position])
    ast.fix_missing_locations(tree)
    return compile(tree, str(path), "exec", dont_inherit=True)
