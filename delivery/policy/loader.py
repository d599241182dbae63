"""Read a policy file: YAML in, a validated `Policy` out, or every problem with its path and line."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from delivery.policy.checks import Loc, Problem, find_problems
from delivery.policy.models import Policy


class PolicyError(Exception):
    """A policy file that cannot be used; `problems` lists each one with its location."""

    def __init__(self, source: str, problems: list[Problem], lines: dict[Loc, int] | None = None) -> None:
        self.source = source
        self.problems = problems
        self.lines = lines or {}
        super().__init__(self.report())

    def report(self) -> str:
        """One line per problem: `file:line: path: message`."""
        rows = []
        for problem in self.problems:
            line = self.lines.get(problem.loc)
            where = f"{self.source}:{line}" if line else self.source
            rows.append(f"{where}: {problem.path}: {problem.message}")
        return "\n".join(rows)


def load_policy(path: str | Path) -> Policy:
    """Load and validate the policy at `path`; raises PolicyError naming every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyError(source, [Problem((), f"cannot read the file: {err.strerror}")]) from None
    return parse_policy(text, source)


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate policy YAML text; raises PolicyError naming every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        raise PolicyError(source, [Problem((), f"not valid YAML{line}: {getattr(err, 'problem', err)}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(source, [Problem((), "the top level must be a mapping of sections (services, canary, ...)")])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as err:
        problems = [_problem_from_pydantic(e) for e in err.errors()]
        raise PolicyError(source, problems, _line_numbers(root, problems)) from None
    problems = find_problems(policy)
    if problems:
        raise PolicyError(source, problems, _line_numbers(root, problems))
    return policy


def _problem_from_pydantic(error: dict) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return Problem(loc, _unknown_key_message(loc))
    if kind == "missing":
        return Problem(loc, "is required")
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be"):
        message = "must be" + message.removeprefix("Input should be")
        value = error.get("input")
        if isinstance(value, (str, int, float, bool)) or value is None:
            message += f", got {value!r}"
    return Problem(loc, message)


def _unknown_key_message(loc: Loc) -> str:
    allowed = _allowed_keys(Policy, loc[:-1])
    key = str(loc[-1])
    hint = difflib.get_close_matches(key, allowed, n=1)
    if hint:
        return f"unknown key '{key}': did you mean '{hint[0]}'?"
    return f"unknown key '{key}' (allowed: {', '.join(allowed)})"


def _allowed_keys(model: type, loc: Loc) -> list[str]:
    """The field names of the model found by following `loc` from `model`."""
    current: object = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = current.model_fields.get(part)
            current = field.annotation if field else None
        else:  # a list index or a dict key: step into the item type
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[-1] if args else None
        while typing.get_origin(current) is typing.Annotated:
            current = typing.get_args(current)[0]
        if typing.get_origin(current) in (typing.Union, types.UnionType):  # an optional section: its model
            current = next(a for a in typing.get_args(current) if a is not type(None))
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _line_numbers(root: yaml.Node | None, problems: list[Problem]) -> dict[Loc, int]:
    """1-based line of the deepest YAML node each problem's location reaches."""
    return {p.loc: line for p in problems if (line := _line_of(root, p.loc))}


def _line_of(node: yaml.Node | None, loc: Loc) -> int | None:
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                return line
            key, node = match
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
