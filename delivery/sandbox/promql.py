"""The sandbox's own Prometheus HTTP API: a PromQL subset evaluated over the telemetry's sample history.

Supported: number literals, parentheses, unary minus; vector selectors with `=`, `!=`, `=~`, `!~`
(regexes fully anchored) and `offset`; range selectors as arguments of `rate`, `irate`, `increase`
(Prometheus 2.x semantics: closed range, counter resets, extrapolation); `histogram_quantile`,
`vector`; `sum`, `avg`, `max`, `min`, `count` with `by` / `without`; `+ - * / % ^` and comparisons
(with `bool`) between scalars and vectors, one-to-one vector matching with `on` / `ignoring`; `and`,
`or`, `unless`. Anything else is answered `bad_data`, naming the construct.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Protocol
from urllib.parse import parse_qs

import promql_parser as pq
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from delivery.sandbox.telemetry import Telemetry

Labels = tuple[tuple[str, str], ...]  # sorted by label name
Vector = dict[Labels, float]
RangeVector = list[tuple[Labels, list[tuple[float, float]]]]
Value = float | Vector | RangeVector

LOOKBACK_SECONDS = 300.0  # Prometheus' default lookback delta
MAX_POINTS_PER_SERIES = 11000
NAME = "__name__"
ARITHMETIC = ("+", "-", "*", "/", "%", "^")
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}
SET_OPERATORS = ("and", "or", "unless")


class BadQuery(ValueError):
    """The query cannot be run: it does not parse or uses a construct outside the supported subset."""


class ExecutionError(RuntimeError):
    """The query parsed but its evaluation failed (e.g. ambiguous vector matching)."""


class SampleSource(Protocol):
    """Series and their samples, as `telemetry.SampleHistory` keeps them."""

    def series(self, name: str | None = None) -> list[Labels]: ...
    def samples(self, key: Labels, start: float, end: float) -> list[tuple[float, float]]: ...
    def last_sample(self, key: Labels, start: float, end: float) -> tuple[float, float] | None: ...


def parse_query(query: str) -> pq.Expr:
    try:
        return pq.parse(query)
    except ValueError as err:
        raise BadQuery(f'invalid parameter "query": parse error: {err}') from None


class Evaluator:
    """Evaluates a parsed PromQL expression at a time over a `SampleSource`."""

    def __init__(self, source: SampleSource, lookback_seconds: float = LOOKBACK_SECONDS) -> None:
        self.source = source
        self.lookback_seconds = lookback_seconds

    def evaluate(self, expr: pq.Expr, at: float) -> Value:
        if isinstance(expr, pq.NumberLiteral):
            return float(expr.val)
        if isinstance(expr, pq.ParenExpr):
            return self.evaluate(expr.expr, at)
        if isinstance(expr, pq.UnaryExpr):
            return _negated(self.evaluate(expr.expr, at))
        if isinstance(expr, pq.VectorSelector):
            return self._instant_vector(expr, at)
        if isinstance(expr, pq.MatrixSelector):
            return self._range_vector(expr, at)
        if isinstance(expr, pq.Call):
            return self._call(expr, at)
        if isinstance(expr, pq.AggregateExpr):
            return self._aggregate(expr, at)
        if isinstance(expr, pq.BinaryExpr):
            return self._binary(expr, at)
        raise BadQuery(f"{_kind(expr)} is not supported by the sandbox's PromQL: {expr.prettify()}")

    def _selected(self, selector: pq.VectorSelector) -> list[Labels]:
        if selector.at is not None:
            raise BadQuery("the @ modifier is not supported by the sandbox's PromQL")
        if selector.matchers.or_matchers:
            raise BadQuery("'or' inside label matchers is not supported by the sandbox's PromQL")
        tests = [_label_test(m) for m in selector.matchers.matchers]
        return [key for key in self.source.series(selector.name) if _passes(dict(key), tests)]

    def _instant_vector(self, selector: pq.VectorSelector, at: float) -> Vector:
        at -= _seconds(selector.offset)
        out: Vector = {}
        for key in self._selected(selector):
            sample = self.source.last_sample(key, at - self.lookback_seconds, at)
            if sample is not None:
                out[key] = sample[1]
        return out

    def _range_vector(self, matrix: pq.MatrixSelector, at: float) -> RangeVector:
        selector = matrix.vector_selector
        end = at - _seconds(selector.offset)
        start = end - matrix.range.total_seconds()
        ranges = [(key, self.source.samples(key, start, end)) for key in self._selected(selector)]
        return [(key, samples) for key, samples in ranges if samples]

    def _call(self, call: pq.Call, at: float) -> Value:
        name = call.func.name
        if name in ("rate", "increase", "irate"):
            matrix = call.args[0]
            if not isinstance(matrix, pq.MatrixSelector):
                raise BadQuery(f"{name}() of a {_kind(matrix)} is not supported by the sandbox's PromQL")
            seconds = matrix.range.total_seconds()
            end = at - _seconds(matrix.vector_selector.offset)
            out: Vector = {}
            for key, samples in self._range_vector(matrix, at):
                if name == "irate":
                    value = instant_rate(samples)
                else:
                    value = extrapolated_rate(samples, end - seconds, end, seconds if name == "rate" else None)
                if value is not None:
                    _put(out, _without_name(key), value)
            return out
        if name == "histogram_quantile":
            return histogram_quantile(self._scalar(call.args[0], at), self._vector(call.args[1], at))
        if name == "vector":
            return {(): self._scalar(call.args[0], at)}
        raise BadQuery(f"function {name}() is not supported by the sandbox's PromQL")

    def _aggregate(self, node: pq.AggregateExpr, at: float) -> Vector:
        op = str(node.op)
        if op not in AGGREGATIONS or node.param is not None:
            raise BadQuery(f"aggregation {op}() is not supported by the sandbox's PromQL")
        groups: dict[Labels, list[float]] = {}
        for labels, value in self._vector(node.expr, at).items():
            groups.setdefault(_group_of(labels, node.modifier), []).append(value)
        return {group: AGGREGATIONS[op](values) for group, values in groups.items()}

    def _binary(self, node: pq.BinaryExpr, at: float) -> Value:
        op, modifier = str(node.op), node.modifier
        if op not in ARITHMETIC and op not in COMPARISONS and op not in SET_OPERATORS:
            raise BadQuery(f"binary operator {op} is not supported by the sandbox's PromQL")
        lhs, rhs = self.evaluate(node.lhs, at), self.evaluate(node.rhs, at)
        return_bool = bool(modifier and modifier.return_bool)
        matching = modifier.matching if modifier else None
        if isinstance(lhs, float) and isinstance(rhs, float):
            return float(COMPARISONS[op](lhs, rhs)) if op in COMPARISONS else arithmetic(op, lhs, rhs)
        if isinstance(lhs, dict) and isinstance(rhs, dict):
            if op in SET_OPERATORS:
                return _set_operation(op, lhs, rhs, matching)
            if modifier and modifier.card not in (pq.VectorMatchCardinality.OneToOne, None):
                raise BadQuery("group_left / group_right matching is not supported by the sandbox's PromQL")
            return _one_to_one(op, lhs, rhs, matching, return_bool)
        if isinstance(lhs, dict) and isinstance(rhs, float):
            return _with_scalar(op, lhs, lambda v: (v, rhs), return_bool)
        if isinstance(lhs, float) and isinstance(rhs, dict):
            return _with_scalar(op, rhs, lambda v: (lhs, v), return_bool)
        raise BadQuery(f"binary operator {op} between range vectors is not valid PromQL")

    def _vector(self, expr: pq.Expr, at: float) -> Vector:
        value = self.evaluate(expr, at)
        if not isinstance(value, dict):
            raise BadQuery(f"expected an instant vector, got {_kind(expr)}: {expr.prettify()}")
        return value

    def _scalar(self, expr: pq.Expr, at: float) -> float:
        value = self.evaluate(expr, at)
        if not isinstance(value, float):
            raise BadQuery(f"expected a scalar, got {_kind(expr)}: {expr.prettify()}")
        return value


def extrapolated_rate(
    samples: list[tuple[float, float]], start: float, end: float, per_seconds: float | None
) -> float | None:
    """Prometheus 2.x `increase` (per_seconds None) or `rate` of a counter's samples in [start, end]."""
    if len(samples) < 2:
        return None
    (first_t, first_v), (last_t, last_v) = samples[0], samples[-1]
    result, previous = last_v - first_v, 0.0
    for _, value in samples:
        if value < previous:  # a counter reset
            result += previous
        previous = value
    to_start, to_end = first_t - start, end - last_t
    sampled = last_t - first_t
    average_gap = sampled / (len(samples) - 1)
    if result > 0 and first_v >= 0:
        to_start = min(to_start, sampled * (first_v / result))  # never extrapolate below zero
    threshold = average_gap * 1.1
    interval = sampled + (to_start if to_start < threshold else average_gap / 2)
    interval += to_end if to_end < threshold else average_gap / 2
    result *= interval / sampled
    return result / per_seconds if per_seconds else result


def instant_rate(samples: list[tuple[float, float]]) -> float | None:
    """Prometheus `irate`: the per-second increase between the last two samples."""
    if len(samples) < 2:
        return None
    (previous_t, previous_v), (last_t, last_v) = samples[-2], samples[-1]
    if last_t == previous_t:
        return None
    return (last_v if last_v < previous_v else last_v - previous_v) / (last_t - previous_t)


def histogram_quantile(q: float, buckets: Vector) -> Vector:
    """Prometheus `histogram_quantile` over classic `le` buckets, per label set without `le`."""
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for labels, count in buckets.items():
        le = dict(labels).get("le")
        try:
            bound = float(le) if le is not None else None
        except ValueError:
            bound = None
        if bound is not None:
            group = tuple(pair for pair in labels if pair[0] not in ("le", NAME))
            groups.setdefault(group, []).append((bound, count))
    return {group: bucket_quantile(q, points) for group, points in groups.items()}


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """The q-quantile of (upper bound, cumulative count) buckets by linear interpolation, as Prometheus does."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if not math.isinf(ordered[-1][0]):
        return math.nan
    merged: list[list[float]] = []
    for bound, count in ordered:
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    highest = -math.inf
    for bucket in merged:  # ensure monotonic counts
        highest = max(highest, bucket[1])
        bucket[1] = highest
    if len(merged) < 2 or merged[-1][1] == 0:
        return math.nan
    rank = q * merged[-1][1]
    b = next((i for i in range(len(merged) - 1) if merged[i][1] >= rank), len(merged) - 1)
    if b == len(merged) - 1:
        return merged[-2][0]
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0]
    start, end, count = 0.0, merged[b][0], merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * (rank / count)


def arithmetic(op: str, a: float, b: float) -> float:
    """IEEE-754 arithmetic as Go does it: x/0 is ±Inf, 0/0 and x%0 are NaN."""
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "%":
            return math.fmod(a, b)
        return math.pow(a, b)
    except ZeroDivisionError:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)
    except ValueError:
        return math.nan
    except OverflowError:
        return math.inf


def _max(values: list[float]) -> float:
    numbers = [v for v in values if not math.isnan(v)]
    return max(numbers) if numbers else math.nan


def _min(values: list[float]) -> float:
    numbers = [v for v in values if not math.isnan(v)]
    return min(numbers) if numbers else math.nan


AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": lambda values: float(sum(values)),
    "avg": lambda values: sum(values) / len(values),
    "max": _max,
    "min": _min,
    "count": lambda values: float(len(values)),
}


def _with_scalar(
    op: str, vector: Vector, operands: Callable[[float], tuple[float, float]], return_bool: bool
) -> Vector:
    out: Vector = {}
    for labels, value in vector.items():
        a, b = operands(value)
        if op in ARITHMETIC:
            _put(out, _without_name(labels), arithmetic(op, a, b))
        elif return_bool:
            _put(out, _without_name(labels), float(COMPARISONS[op](a, b)))
        elif COMPARISONS[op](a, b):
            out[labels] = value
    return out


def _one_to_one(op: str, lhs: Vector, rhs: Vector, matching: pq.LabelModifier | None, return_bool: bool) -> Vector:
    right: dict[Labels, float] = {}
    for labels, value in rhs.items():
        signature = _signature(labels, matching)
        if signature in right:
            raise ExecutionError(
                f"found duplicate series for the match group {_text(signature)} on the right hand-side of the "
                "operation; many-to-many matching not allowed: matching labels must be unique on one side"
            )
        right[signature] = value
    out: Vector = {}
    matched: set[Labels] = set()
    for labels, a in lhs.items():
        signature = _signature(labels, matching)
        if signature not in right:
            continue
        if signature in matched:
            raise ExecutionError(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
            )
        matched.add(signature)
        b = right[signature]
        if op in ARITHMETIC:
            value = arithmetic(op, a, b)
        elif return_bool:
            value = float(COMPARISONS[op](a, b))
        elif COMPARISONS[op](a, b):
            value = a
        else:
            continue
        _put(out, _result_labels(labels, matching, drop_name=op in ARITHMETIC or return_bool), value)
    return out


def _set_operation(op: str, lhs: Vector, rhs: Vector, matching: pq.LabelModifier | None) -> Vector:
    right = {_signature(labels, matching) for labels in rhs}
    if op == "and":
        return {labels: v for labels, v in lhs.items() if _signature(labels, matching) in right}
    if op == "unless":
        return {labels: v for labels, v in lhs.items() if _signature(labels, matching) not in right}
    left = {_signature(labels, matching) for labels in lhs}
    return {**lhs, **{labels: v for labels, v in rhs.items() if _signature(labels, matching) not in left}}


def _signature(labels: Labels, matching: pq.LabelModifier | None) -> Labels:
    if matching is None:
        return _without_name(labels)
    names = set(matching.labels)
    if matching.type == pq.LabelModifierType.Include:
        return tuple(pair for pair in labels if pair[0] in names)
    return tuple(pair for pair in labels if pair[0] not in names and pair[0] != NAME)


def _result_labels(labels: Labels, matching: pq.LabelModifier | None, drop_name: bool) -> Labels:
    if drop_name:
        labels = _without_name(labels)
    if matching is None:
        return labels
    names = set(matching.labels)
    if matching.type == pq.LabelModifierType.Include:
        return tuple(pair for pair in labels if pair[0] in names)
    return tuple(pair for pair in labels if pair[0] not in names)


def _group_of(labels: Labels, modifier: pq.AggModifier | None) -> Labels:
    if modifier is None:
        return ()
    names = set(modifier.labels)
    if modifier.type == pq.AggModifierType.By:
        return tuple(pair for pair in labels if pair[0] in names)
    return tuple(pair for pair in labels if pair[0] not in names and pair[0] != NAME)


def _negated(value: Value) -> Value:
    if isinstance(value, float):
        return -value
    if isinstance(value, dict):
        out: Vector = {}
        for labels, v in value.items():
            _put(out, _without_name(labels), -v)
        return out
    raise BadQuery("unary minus of a range vector is not valid PromQL")


def _put(vector: Vector, labels: Labels, value: float) -> None:
    if labels in vector:
        raise ExecutionError(f"vector cannot contain metrics with the same labelset {_text(labels)}")
    vector[labels] = value


def _without_name(labels: Labels) -> Labels:
    return tuple(pair for pair in labels if pair[0] != NAME)


def _label_test(matcher: pq.Matcher) -> Callable[[dict[str, str]], bool]:
    name, value, op = matcher.name, matcher.value, matcher.op
    if op == pq.MatchOp.Equal:
        return lambda labels: labels.get(name, "") == value
    if op == pq.MatchOp.NotEqual:
        return lambda labels: labels.get(name, "") != value
    pattern = _anchored(value)
    if op == pq.MatchOp.Re:
        return lambda labels: pattern.fullmatch(labels.get(name, "")) is not None
    return lambda labels: pattern.fullmatch(labels.get(name, "")) is None


def _passes(labels: dict[str, str], tests: list[Callable[[dict[str, str]], bool]]) -> bool:
    return all(test(labels) for test in tests)


@lru_cache(maxsize=256)
def _anchored(regex: str) -> re.Pattern[str]:
    try:
        return re.compile(regex, re.DOTALL)
    except re.error as err:
        raise BadQuery(f'invalid parameter "query": invalid regular expression {regex!r}: {err}') from None


def _seconds(offset: object) -> float:
    return offset.total_seconds() if offset is not None else 0.0  # type: ignore[attr-defined]


def _kind(expr: object) -> str:
    return {"MatrixSelector": "range vector", "SubqueryExpr": "subquery", "StringLiteral": "string"}.get(
        type(expr).__name__, type(expr).__name__
    )


def _text(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


# --- the HTTP API -------------------------------------------------------------------------------


def format_value(value: float) -> str:
    """A sample value as Prometheus' JSON renders it: shortest decimal, `NaN`, `+Inf`, `-Inf`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_time(at: float) -> float | int:
    at = round(at, 3)
    return int(at) if at == int(at) else at


def build_prometheus_app(telemetry: Telemetry) -> Starlette:
    """The Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`, readiness, buildinfo) over `telemetry`."""
    api = _PrometheusAPI(telemetry)
    return Starlette(
        routes=[
            Route("/api/v1/query", api.query, methods=["GET", "POST"]),
            Route("/api/v1/query_range", api.query_range, methods=["GET", "POST"]),
            Route("/api/v1/status/buildinfo", api.buildinfo, methods=["GET"]),
            Route("/-/ready", api.ready, methods=["GET", "HEAD"]),
            Route("/-/healthy", api.healthy, methods=["GET", "HEAD"]),
        ]
    )


class _PrometheusAPI:
    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.evaluator = Evaluator(telemetry.history)

    async def query(self, request: Request) -> Response:
        params = await _params(request)
        try:
            expr = parse_query(_required(params, "query"))
            at = _timestamp(params, "time") if "time" in params else self.telemetry.now()
            at = round(at, 3)
            value = self.evaluator.evaluate(expr, at)
        except BadQuery as err:
            return _error(400, "bad_data", str(err))
        except ExecutionError as err:
            return _error(422, "execution", str(err))
        return _success(_instant_result(value, at))

    async def query_range(self, request: Request) -> Response:
        params = await _params(request)
        try:
            expr = parse_query(_required(params, "query"))
            start, end, step = _timestamp(params, "start"), _timestamp(params, "end"), _duration(params, "step")
            if end < start:
                raise BadQuery("end timestamp must not be before start time")
            if step <= 0:
                raise BadQuery("zero or negative query resolution step widths are not accepted. Try a positive integer")
            if (end - start) / step > MAX_POINTS_PER_SERIES:
                raise BadQuery(
                    "exceeded maximum resolution of 11,000 points per timeseries. "
                    "Try decreasing the query resolution (?step=XX)"
                )
            series = self._evaluate_range(expr, start, end, step)
        except BadQuery as err:
            return _error(400, "bad_data", str(err))
        except ExecutionError as err:
            return _error(422, "execution", str(err))
        result = [{"metric": dict(labels), "values": points} for labels, points in sorted(series.items())]
        return _success({"resultType": "matrix", "result": result})

    def _evaluate_range(self, expr: pq.Expr, start: float, end: float, step: float) -> dict[Labels, list]:
        series: dict[Labels, list] = {}
        steps = int((end - start) / step + 1e-9)
        for index in range(steps + 1):
            at = round(start + index * step, 3)
            value = self.evaluator.evaluate(expr, at)
            if isinstance(value, list):
                raise BadQuery(
                    'invalid expression type "range vector" for range query, must be Scalar or instant Vector'
                )
            for labels, v in ({(): value} if isinstance(value, float) else value).items():
                series.setdefault(labels, []).append([format_time(at), format_value(v)])
        return series

    async def ready(self, request: Request) -> Response:
        return PlainTextResponse("Prometheus Server is Ready.\n")

    async def healthy(self, request: Request) -> Response:
        return PlainTextResponse("Prometheus Server is Healthy.\n")

    async def buildinfo(self, request: Request) -> Response:
        return _success(
            {
                "version": "2.42.0-sandbox",
                "revision": "tripgen-sandbox",
                "branch": "sandbox",
                "buildUser": "tripgen-release",
                "buildDate": "",
                "goVersion": "none (the TripGen sandbox's PromQL subset in Python)",
            }
        )


def _instant_result(value: Value, at: float) -> dict:
    if isinstance(value, float):
        return {"resultType": "scalar", "result": [format_time(at), format_value(value)]}
    if isinstance(value, dict):
        result = [
            {"metric": dict(labels), "value": [format_time(at), format_value(v)]} for labels, v in sorted(value.items())
        ]
        return {"resultType": "vector", "result": result}
    result = [
        {"metric": dict(labels), "values": [[format_time(t), format_value(v)] for t, v in samples]}
        for labels, samples in sorted(value)
    ]
    return {"resultType": "matrix", "result": result}


async def _params(request: Request) -> dict[str, str]:
    """Query-string and form-body parameters (the first value of each)."""
    params = {key: values[0] for key, values in parse_qs(request.url.query, keep_blank_values=True).items()}
    form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    if request.method == "POST" and form:
        body = (await request.body()).decode("utf-8", "replace")
        params.update({key: values[0] for key, values in parse_qs(body, keep_blank_values=True).items()})
    return params


def _required(params: dict[str, str], name: str) -> str:
    if name not in params:
        raise BadQuery(f'invalid parameter "{name}": parse error: no expression found in input')
    return params[name]


def _timestamp(params: dict[str, str], name: str) -> float:
    """A Unix time or an RFC 3339 time, as Prometheus accepts for `time`, `start` and `end`."""

    def rfc3339(text: str) -> float:
        parsed = datetime.fromisoformat(text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()

    return _number_or(params, name, rfc3339, "timestamp")


def _duration(params: dict[str, str], name: str) -> float:
    """Seconds, or a PromQL duration such as `15s`, as Prometheus accepts for `step`."""
    return _number_or(params, name, lambda text: pq.parse_duration(text).total_seconds(), "duration")


def _number_or(params: dict[str, str], name: str, parse: Callable[[str], float], noun: str) -> float:
    """The parameter as a float, else through `parse`; BadQuery in Prometheus' words when neither reads it."""
    text = params.get(name, "")
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse(text)
    except ValueError:
        raise BadQuery(f'invalid parameter "{name}": cannot parse "{text}" to a valid {noun}') from None


def _success(data: dict) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _error(status: int, error_type: str, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "errorType": error_type, "error": message}, status_code=status)
