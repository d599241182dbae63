"""SonarQube web API: a project's quality gate status and maintainability grade.

Authenticates with a user token from `SONAR_TOKEN`, sent as the HTTP Basic login with an empty
password (the scheme every SonarQube version accepts). The token never appears in a message.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from delivery.reports import ReportError, as_number

SONAR_TOKEN_ENV = "SONAR_TOKEN"
SONARQUBE_TIMEOUT_SECONDS = 10.0
GRADES = "ABCDE"
MAINTAINABILITY_METRIC = "sqale_rating"


@dataclass(frozen=True)
class Condition:
    """One quality gate condition: it errors when `actual` compares (`comparator` GT/LT) beyond `error_threshold`."""

    metric: str
    status: str
    comparator: str
    error_threshold: str
    actual: str


@dataclass(frozen=True)
class QualityGateStatus:
    """`status` is OK, WARN, ERROR or NONE (no quality gate computed for the project)."""

    status: str
    conditions: tuple[Condition, ...]


class SonarQube:
    """A read-only client of one SonarQube server over `http_client`; failures raise ReportError."""

    def __init__(self, base_url: str, http_client: httpx.Client, *, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http_client
        self._auth = httpx.BasicAuth(token, "") if token else None

    def quality_gate(self, project_key: str) -> QualityGateStatus:
        """`GET /api/qualitygates/project_status?projectKey=...`."""
        body = self._get("/api/qualitygates/project_status", {"projectKey": project_key})
        status = body.get("projectStatus")
        if not isinstance(status, dict) or "status" not in status:
            raise ReportError(f"SonarQube at {self.base_url} answered without a projectStatus for '{project_key}'")
        conditions = tuple(
            Condition(
                metric=str(item.get("metricKey", "")),
                status=str(item.get("status", "")),
                comparator=str(item.get("comparator", "")),
                error_threshold=str(item.get("errorThreshold", "")),
                actual=str(item.get("actualValue", "")),
            )
            for item in status.get("conditions") or []
        )
        return QualityGateStatus(status=str(status["status"]), conditions=conditions)

    def maintainability_grade(self, project_key: str) -> str:
        """The letter A..E of the project's `sqale_rating` measure (1.0..5.0)."""
        body = self._get(
            "/api/measures/component", {"component": project_key, "metricKeys": MAINTAINABILITY_METRIC}
        )
        component = body.get("component")
        measures = component.get("measures", []) if isinstance(component, dict) else []
        values = [m.get("value") for m in measures if isinstance(m, dict) and m.get("metric") == MAINTAINABILITY_METRIC]
        if not values:
            raise ReportError(
                f"SonarQube at {self.base_url} has no maintainability rating for '{project_key}': "
                "run an analysis of the project first"
            )
        rating = as_number(values[0], MAINTAINABILITY_METRIC, f"SonarQube at {self.base_url}")
        if rating != round(rating) or not 1 <= rating <= len(GRADES):
            raise ReportError(f"SonarQube at {self.base_url}: {MAINTAINABILITY_METRIC} {rating:g} is not 1.0..5.0")
        return GRADES[int(rating) - 1]

    def _get(self, path: str, params: dict[str, str]) -> dict:
        try:
            response = self._http.get(f"{self.base_url}{path}", params=params, auth=self._auth)
        except httpx.TimeoutException:
            raise ReportError(f"SonarQube at {self.base_url} did not answer {path} in time") from None
        except httpx.HTTPError as err:
            raise ReportError(f"SonarQube at {self.base_url} is unreachable ({type(err).__name__})") from None
        if response.status_code in (401, 403):
            raise ReportError(
                f"SonarQube at {self.base_url} refused {path} (HTTP {response.status_code}): "
                f"set {SONAR_TOKEN_ENV} to a user token with Browse permission on the project"
            )
        if response.status_code != 200:
            raise ReportError(
                f"SonarQube at {self.base_url} answered {path} with HTTP {response.status_code}{_error_of(response)}"
            )
        try:
            body = response.json()
        except ValueError:
            raise ReportError(f"SonarQube at {self.base_url} answered {path} with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise ReportError(f"SonarQube at {self.base_url} answered {path} with JSON that is not an object")
        return body


def _error_of(response: httpx.Response) -> str:
    """SonarQube's own reason (`{"errors": [{"msg": ...}]}`), e.g. an unknown project key."""
    try:
        errors = response.json().get("errors") or []
        return f": {errors[0]['msg']}"
    except (ValueError, AttributeError, LookupError, TypeError):
        return ""
