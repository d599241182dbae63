"""The response-time probe: a stray 5xx is asked again, a broken or slow service still fails."""

from __future__ import annotations

import httpx

from delivery.release.probes import SERVER_ERROR_ATTEMPTS, Prober


def prober(statuses: list[int]) -> tuple[Prober, list[int]]:
    answered: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answered.append(statuses[min(len(answered), len(statuses) - 1)])
        return httpx.Response(answered[-1])

    return Prober(httpx.Client(transport=httpx.MockTransport(handler)), "http://gateway"), answered


def test_one_stray_server_error_is_asked_again():
    probe, answered = prober([500, 200])
    assert probe.response_time("staging-api.tripgen.com", "/api/trips", 2.0).passed and answered == [500, 200]


def test_a_service_that_keeps_failing_fails_after_the_attempts():
    probe, answered = prober([503])
    result = probe.response_time("staging-api.tripgen.com", "/api/trips", 2.0)
    assert not result.passed and len(answered) == SERVER_ERROR_ATTEMPTS


def test_a_client_error_fails_at_once():
    probe, answered = prober([404, 200])
    assert not probe.response_time("staging-api.tripgen.com", "/api/trips", 2.0).passed and answered == [404]
