"""Start a Prefect deployment run and follow it, as GitHub Actions does on a tag push or a rollback dispatch.

    python -m deployments.trigger release/production --param tag=v1.2.0 --param initiator=octocat \
        --idempotency-key release-v1.2.0

Auth: PREFECT_API_KEY (Prefect Cloud, Bearer) or PREFECT_API_AUTH_STRING (self-hosted, user:password).
Exit 0 when the run completes, 1 when it fails, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from delivery.prefect_rest import FINAL_STATES, PrefectRest

POLL_SECONDS = 5


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`key=value` pairs into flow parameters; SystemExit(2) naming a malformed one."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            print(f"--param '{pair}': write key=value", file=sys.stderr)
            raise SystemExit(2)
        params[key] = value
    return params


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
    run = api.create_run(deployment["id"], parse_params(args.param), idempotency_key=args.idempotency_key)
    print(f"{run['name']}: {ui}/runs/flow-run/{run['id']}")
    return 0 if args.no_follow else follow(api, run["id"], ui)


if __name__ == "__main__":
    sys.exit(main())
