"""Start a Prefect deployment run and follow it, as GitHub Actions does on a tag push or a rollback dispatch.

    python -m deployments.trigger release/production --param tag=v1.2.0 --param initiator=octocat \
        --param commit_time=2026-11-26T08:00:00+09:00 --idempotency-key release-v1.2.0

Values take their parameter's type from the deployment's schema (`hotfix=true`, `services=user-service,trip-service`)
and a date-time must carry its UTC offset, as `git log --format=%cI` prints it.
Auth: PREFECT_API_KEY (Prefect Cloud, Bearer) or PREFECT_API_AUTH_STRING (self-hosted, user:password).
Exit 0 when the run completes, 1 when it fails, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime
from typing import NoReturn

import httpx

from delivery.prefect_rest import FINAL_STATES, PrefectRest

POLL_SECONDS = 5


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`key=value` pairs into flow parameters; SystemExit(2) naming a malformed one."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            usage_error(f"--param '{pair}': write key=value")
        params[key] = value
    return params


def typed_params(params: dict[str, str], schema: dict, deployment: str) -> dict:
    """The `--param` values in the types the deployment's parameter schema gives them; SystemExit(2) naming a bad one."""
    properties = schema.get("properties", {})
    typed = {}
    for key, text in params.items():
        if key not in properties:
            usage_error(f"--param {key}: {deployment} has no parameter '{key}' (it takes {', '.join(properties)})")
        try:
            typed[key] = convert(text, schema_types(properties[key]))
        except ValueError as err:
            usage_error(f"--param {key}={text}: {err}")
        pattern = properties[key].get("pattern")
        if pattern and isinstance(typed[key], str) and not re.search(pattern, typed[key]):
            usage_error(f"--param {key}={text}: {properties[key].get('description') or 'does not match ' + pattern}")
        if "date-time" in schema_formats(properties[key]) and isinstance(typed[key], str) and not aware_time(typed[key]):
            usage_error(f"--param {key}={text}: not a date-time with its UTC offset (as git log --format=%cI prints it)")
    missing = [key for key in schema.get("required", []) if key not in typed]
    if missing:
        usage_error(f"{deployment} needs " + ", ".join(f"--param {key}=..." for key in missing))
    return typed


def schema_types(prop: dict) -> set[str]:
    """The JSON types a parameter accepts (`anyOf` included)."""
    options = prop.get("anyOf", [prop])
    return {option.get("type", "string") for option in options}


def schema_formats(prop: dict) -> set[str]:
    """The string formats a parameter's schema names (`date-time`), which the server does not check."""
    return {option["format"] for option in prop.get("anyOf", [prop]) if "format" in option}


def aware_time(text: str) -> bool:
    """An ISO 8601 date and time with its UTC offset, which the release flow's `AwareDatetime` wants."""
    try:
        return datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False


def convert(text: str, types: set[str]) -> object:
    """A command-line value as the first JSON type that fits: null, boolean, integer, number, array, string."""
    if "null" in types and text in ("", "null"):
        return None
    if "boolean" in types:
        if text.lower() in ("true", "yes", "1"):
            return True
        if text.lower() in ("false", "no", "0"):
            return False
    if "integer" in types and text.lstrip("-").isdigit():
        return int(text)
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            pass
    if "array" in types:
        return json.loads(text) if text.startswith("[") else [item.strip() for item in text.split(",") if item.strip()]
    if "string" in types:
        return text
    raise ValueError(f"expected {' or '.join(sorted(types))}")


def usage_error(message: str) -> NoReturn:
    print(message, file=sys.stderr)
    raise SystemExit(2)


def follow(api: PrefectRest, flow_run_id: str, ui: str, out=print) -> int:
    """Print state changes until the run ends; 0 when it completed, 1 otherwise."""
    last = None
    while True:
        run = api.flow_run(flow_run_id)
        state = run["state"]
        label = state["type"]
        if label == "PAUSED":
            label = f"PAUSED — waiting for approval: approve in the UI ({ui}/runs/flow-run/{flow_run_id}) or with `tripgen-release approve`"
        if label != last:
            out(f"{run['name']}: {label}" + (f" ({state['message']})" if state.get("message") and state["type"] in FINAL_STATES else ""))
            last = label
        if state["type"] in FINAL_STATES:
            return 0 if state["type"] == "COMPLETED" else 1
        time.sleep(POLL_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a Prefect deployment and follow it.")
    parser.add_argument("deployment", help="<flow>/<deployment>, e.g. release/production")
    parser.add_argument("--param", action="append", default=[], help="a flow parameter, key=value (repeatable)")
    parser.add_argument("--idempotency-key", help="the same key returns the same run (e.g. release-<tag>)")
    parser.add_argument("--no-follow", action="store_true", help="start the run and exit")
    args = parser.parse_args(argv)
    api_url = os.environ.get("PREFECT_API_URL")
    if not api_url:
        print("PREFECT_API_URL is not set: point it at the Prefect API (…/api)", file=sys.stderr)
        return 2
    api = PrefectRest(api_url, api_key=os.environ.get("PREFECT_API_KEY"), auth_string=os.environ.get("PREFECT_API_AUTH_STRING"))
    ui = api_url.removesuffix("/api")
    try:
        deployment = api.deployment(args.deployment)
    except LookupError as err:
        print(err, file=sys.stderr)
        return 2
    parameters = typed_params(parse_params(args.param), deployment.get("parameter_openapi_schema") or {}, args.deployment)
    try:
        run = api.create_run(deployment["id"], parameters, idempotency_key=args.idempotency_key)
    except httpx.HTTPStatusError as err:
        if err.response.status_code not in (409, 422):
            raise
        print(f"{args.deployment} refused the run: {err.response.json().get('detail', err.response.text)}", file=sys.stderr)
        return 2
    print(f"{run['name']}: {ui}/runs/flow-run/{run['id']}")
    return 0 if args.no_follow else follow(api, run["id"], ui)


if __name__ == "__main__":
    sys.exit(main())
