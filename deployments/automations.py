"""The Prefect automations that make crash recovery happen by itself (issue 10).

1. A release run whose heartbeats stop (its worker or node is gone) is marked Crashed.
2. A release run that enters Crashed or Cancelled starts the recover deployment for that run.
Both are created or updated by name, so registering again is harmless.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, RunDeployment
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

ENDED = {"prefect.flow-run.Completed", "prefect.flow-run.Failed", "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"}


def zombie_automation(release_deployment_id: str, silence: timedelta) -> AutomationCore:
    """Proactive: no heartbeat from a running release run for `silence` after the last one → Crashed."""
    return AutomationCore(
        name=f"tripgen: release runs without heartbeats are crashed ({release_deployment_id})",
        description="A release run that stops sending heartbeats lost its worker or node; mark it Crashed so recovery starts.",
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": f"prefect.deployment.{release_deployment_id}"},
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *ENDED},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=silence,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, force=True, message=f"no heartbeat for {silence.total_seconds():g}s: "
                                                                     "the worker or node running it is gone")],
    )


def recovery_automation(release_deployment_id: str, recover_deployment_id: str) -> AutomationCore:
    """Reactive: a release run entered Crashed or Cancelled → run the recover deployment for it."""
    return AutomationCore(
        name=f"tripgen: recover crashed or cancelled releases ({release_deployment_id})",
        description="Restore every service a dead release run changed, from its release record in the cluster.",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Crashed", "prefect.flow-run.Cancelled"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.id": f"prefect.deployment.{release_deployment_id}"},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[RunDeployment(source="selected", deployment_id=recover_deployment_id,
                               # a plain "{{ flow_run.id }}" is upgraded to `| tojson`, which cannot encode a UUID
                               parameters={"crashed_flow_run": {"__prefect_kind": "jinja", "template": "{{ flow_run.id }}"},
                                           "initiator": "automation"})],
    )


def ensure_recovery_automations(release_deployment_id: str, recover_deployment_id: str, silence: timedelta) -> list[str]:
    """Create or update both automations on the server PREFECT_API_URL names; returns one line each."""
    lines = []
    with get_client(sync_client=True) as client:
        for automation in (zombie_automation(release_deployment_id, silence),
                           recovery_automation(release_deployment_id, recover_deployment_id)):
            existing = client.read_automations_by_name(automation.name)
            if existing:
                client.update_automation(existing[0].id, automation)
                lines.append(f"automation '{automation.name}' updated")
            else:
                client.create_automation(automation)
                lines.append(f"automation '{automation.name}' created")
    return lines
