"""Label selectors (`app=trip,version in (blue,green),!canary`) and field selectors
(`metadata.name=trip-service`), parsed from query strings."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from delivery.sandbox.store import bad_request

_KEY = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_ORDER = re.compile(rf"^({_KEY})\s*(<|>)\s*(-?\d+)$")
_FIELD = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(==|=|!=)\s*(.*)$")


@dataclass(frozen=True)
class Requirement:
    """One condition on a label: operator one of in, notin, exists, !, gt, lt."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "in":
            return present and value in self.values
        if self.operator == "notin":
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        try:
            number = int(value)
        except (TypeError, ValueError):
            return False
        bound = int(self.values[0])
        return number > bound if self.operator == "gt" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must hold; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: dict | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def matches_object(self, obj: dict) -> bool:
        return self.matches(obj.get("metadata", {}).get("labels"))


def _split_outside_parentheses(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _requirement(text: str) -> Requirement:
    if match := _SET.match(text):
        values = tuple(v.strip() for v in match.group(3).split(",") if v.strip())
        if not values or not all(re.fullmatch(_VALUE, v) for v in values):
            raise bad_request(f"unable to parse requirement: invalid values in {text!r}")
        return Requirement(match.group(1), match.group(2), values)
    if match := _EQUALITY.match(text):
        operator = "notin" if match.group(2) == "!=" else "in"
        return Requirement(match.group(1), operator, (match.group(3),))
    if match := _ORDER.match(text):
        return Requirement(match.group(1), "gt" if match.group(2) == ">" else "lt", (match.group(3),))
    if match := _EXISTS.match(text):
        return Requirement(match.group(2), "!" if match.group(1) else "exists")
    raise bad_request(f"unable to parse requirement: {text!r} is not a valid label selector requirement")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a `labelSelector` query parameter; 400 BadRequest when malformed."""
    if not text or not text.strip():
        return LabelSelector()
    return LabelSelector(tuple(_requirement(part) for part in _split_outside_parentheses(text.strip())))


def _field_value(obj: dict, path: str) -> str:
    value: object = obj
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def parse_field_selector(text: str | None) -> Callable[[dict], bool]:
    """Parse a `fieldSelector` (`metadata.name=x,status.phase!=Running`) into a predicate
    over objects; any dotted field path is accepted."""
    if not text or not text.strip():
        return lambda obj: True
    requirements = []
    for part in (p.strip() for p in text.split(",")):
        match = _FIELD.match(part)
        if match is None:
            raise bad_request(f"invalid selector: {text!r}; can't understand {part!r}")
        requirements.append((match.group(1), match.group(2) != "!=", match.group(3).strip()))

    def matches(obj: dict) -> bool:
        return all((_field_value(obj, path) == value) == equal for path, equal, value in requirements)

    return matches
