"""The Prefect UI as an approver and a release manager see it: headless Chromium (Debian's /usr/bin/chromium)
driven by Playwright.

`approval_form` walks from the runs list to a paused run's Resume dialog and reads the form it renders from
the run input's JSON schema; given an answer, it types it in and submits it, as an approver does. `start_run_from_ui` starts a deployment's run with its
Run > Custom run form, rendered from the deployment's parameter schema. Selectors are the classic UI's
(served at `/runs`): the list row `.flow-run-list-item`, the `.state-badge` tags, the modal `[role=dialog]`,
the run form `form.flow-run-create-form-v2`, their `.schema-form-property` blocks, and the toast
`.toast-flow-run-create` of a created run. A server with PREFECT_SERVER_API_AUTH_STRING sends the browser to
its login page first, a form with one password field taking "user:password".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.sync_api import Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = "/usr/bin/chromium"
# Root needs --no-sandbox; the rest keep Chromium off the network, which is closed here.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_TIMEOUT_MS = 60_000  # per wait: the Vue SPA's first load takes seconds on a 2-core machine
FORM_FIELDS = ("approver", "code", "approve", "comment")


def approval_form(ui_url: str, flow_run_id: str, screenshot: Path, expected_fields: tuple[str, ...] = FORM_FIELDS,
                  auth_string: str | None = None, answer: dict[str, str] | None = None) -> dict:
    """Open the paused run's Resume form from the runs list, logging in with `auth_string` ("user:password")
    when the server asks for it; return what the form shows and save a PNG of it.

    Returns {"run_name", "list_state", "state", "run_url", "title", "description", "labels", "fields"}, where
    `fields` maps a field name (from its label: "Approve (Optional)" -> "approve") to its label, description
    and current value (text, or True/False for a toggle). Raises AssertionError, saying what the page showed,
    when the run, its Resume button or an expected field is missing. With `answer` (field name -> text), types
    each into its field's text box after reading the form, saves the PNG of the filled form, submits it and waits
    for the dialog to close; without, never submits.
    """
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with _ui_page(ui_url, "/runs", auth_string) as page:
        row = page.locator(".flow-run-list-item").filter(has=page.locator(f'a[href="/runs/flow-run/{flow_run_id}"]'))
        _wait(page, row, f"flow run {flow_run_id} in the runs list")
        run_link = row.locator("a.flow-run-bread-crumbs__flow-run-link")
        run_name = run_link.inner_text().strip()
        list_state = row.locator(".state-badge").inner_text().strip()

        run_link.click()
        page.wait_for_url(f"**/runs/flow-run/{flow_run_id}**")
        badge = page.locator(".page-heading .state-badge")
        _wait(page, badge, "state badge on the run's page")
        state = badge.inner_text().strip()
        resume = page.get_by_role("button", name="Resume", exact=True)
        _wait(page, resume, f"Resume button for {run_name} (state {state!r})")
        resume.click()

        dialog = page.get_by_role("dialog")
        properties = dialog.locator(".schema-form-property")
        _wait(page, properties.first, "form field in the Resume dialog")
        result = {
            "run_name": run_name,
            "list_state": list_state,
            "state": state,
            "run_url": page.url,
            "title": dialog.locator(".p-modal__title").inner_text().strip(),
            "description": _text(dialog.locator(".p-modal__body > .markdown-renderer")),
            "labels": [],
            "fields": {},
        }
        for prop in properties.all():
            label = prop.locator(".schema-form-property__label").inner_text().strip()
            result["labels"].append(label)
            result["fields"][_field_name(label)] = {
                "label": label,
                "description": _text(prop.locator(".schema-form-property__description")),
                "value": _value(prop),
            }
        if answer:
            _submit_answer(page, dialog, {_field_name(p.locator(".schema-form-property__label").inner_text()): p
                                          for p in properties.all()}, answer, screenshot)
        else:
            page.screenshot(path=str(screenshot))
    missing = [name for name in expected_fields if name not in result["fields"]]
    assert not missing, f"Resume form of {run_name} lacks {missing}; it shows {result['labels']} (see {screenshot})"
    return result


def _submit_answer(page: Page, dialog: Locator, fields: dict[str, Locator], answer: dict[str, str], screenshot: Path) -> None:
    """Type `answer` into the dialog's fields, save the PNG, submit; AssertionError when the dialog stays open."""
    for name, value in answer.items():
        assert name in fields, f"the Resume form has no field {name!r}; it shows {list(fields)}"
        fields[name].locator("textarea, input:not([type=checkbox])").first.fill(value)
    page.screenshot(path=str(screenshot))
    dialog.get_by_role("button", name=re.compile(r"^(Submit|Resume)$")).last.click()
    try:
        dialog.wait_for(state="hidden", timeout=STEP_TIMEOUT_MS)
    except PlaywrightTimeout:
        raise AssertionError(f"the Resume dialog stayed open after Submit: {_text(dialog)} (see {screenshot})") from None


def start_run_from_ui(ui_url: str, deployment_id: str, parameters: dict[str, str], screenshot: Path,
                      auth_string: str | None = None) -> str:
    """Start a run of the deployment as a release manager does: its page, Run > Custom run, type each of
    `parameters` (name -> text) into the text box of the form's field of that name, save a PNG of the filled
    form, Submit, and follow the toast's "View run"; return the new flow run's id. The other fields keep
    what the form shows, the schema's defaults.

    Logs in with `auth_string` ("user:password") when the server asks for it. Raises AssertionError, saying
    what the page showed, when the Run menu, a field or its text box is missing, the form refuses the values
    (its failed-field messages), or no run page follows.
    """
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with _ui_page(ui_url, f"/deployments/deployment/{deployment_id}", auth_string) as page:
        run = page.get_by_role("button", name="Run", exact=True)
        _wait(page, run, f"Run button of deployment {deployment_id}")
        run.click()
        page.get_by_role("button", name="Custom run", exact=True).click()
        form = page.locator("form.flow-run-create-form-v2")
        properties = form.locator(".schema-form-property")
        _wait(page, properties.first, "parameter field in the Custom run form")
        fields = {_field_name(prop.locator(".schema-form-property__label").inner_text()): prop for prop in properties.all()}
        missing = [name for name in parameters if name not in fields]
        assert not missing, f"the Custom run form lacks {missing}; it shows {list(fields)}"
        for name, value in parameters.items():
            text_box = fields[name].locator("textarea, input:not([type=checkbox])")
            assert text_box.count(), f"the form's field {name!r} has no text box: {fields[name].inner_text()}"
            text_box.first.fill(value)
        page.set_viewport_size({"width": 1400, "height": 1700})  # the whole form, Submit included
        page.screenshot(path=str(screenshot))

        form.get_by_role("button", name="Submit", exact=True).click()
        created = page.locator(".toast-flow-run-create")
        refused = page.locator(".p-label__message--failed")
        _wait(page, created.or_(refused).first, "toast of the created run or failed-field message")
        assert not refused.count(), f"the form refused the parameters: {refused.all_inner_texts()} (see {screenshot})"
        created.last.get_by_role("button", name="View run", exact=True).click()  # the UI mounts two toast apps
        _wait(page, page.locator(".page-heading .state-badge"), "state badge on the new run's page")
        flow_run_id = re.search(r"/runs/flow-run/([0-9a-f-]{36})", page.url)
        assert flow_run_id, f"View run led to {page.url}, not a flow run's page"
        return flow_run_id.group(1)


@contextmanager
def _ui_page(ui_url: str, path: str, auth_string: str | None) -> Iterator[Page]:
    """A page of headless Chromium showing `path` of the UI at `ui_url`, logged in when the server asks."""
    ui_url = ui_url.rstrip("/")
    needs_login = _check_ui_settings(ui_url, auth_string)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.goto(f"{ui_url}{path}", timeout=STEP_TIMEOUT_MS)
            if needs_login:
                _log_in(page, auth_string, f"{ui_url}{path}")
            yield page
        finally:
            browser.close()


def _check_ui_settings(ui_url: str, auth_string: str | None) -> bool:
    """Whether the UI will ask for a login (/ui-settings' auth), after checking it calls the right API.

    The UI calls the API at /ui-settings' api_url, which `prefect server start --port` does not set:
    without PREFECT_UI_API_URL it is http://127.0.0.1:4200/api, another server's or none."""
    auth = tuple(auth_string.split(":", 1)) if auth_string else None
    settings = httpx.get(f"{ui_url}/ui-settings", auth=auth, timeout=30).raise_for_status().json()
    api_url = settings["api_url"]
    assert urlsplit(api_url).port == urlsplit(ui_url).port, (
        f"the UI at {ui_url} talks to the API at {api_url}: start the server with PREFECT_UI_API_URL={ui_url}/api")
    if not settings["auth"]:
        return False
    assert auth, f"the server at {ui_url} requires {settings['auth']} auth: pass auth_string='user:password'"
    status = httpx.get(f"{api_url}/admin/version", auth=auth, timeout=30).status_code
    assert status != 401, f"the API at {api_url} refuses auth_string: not the server's PREFECT_SERVER_API_AUTH_STRING"
    return True


def _log_in(page: Page, auth_string: str, asked_url: str) -> None:
    """Type "user:password" into the login page the UI redirected to, submit it, wait for the UI to go back to
    the page first asked for (with whatever query it adds: a deployment's page gets ?tab=Runs), and reload
    that: the first, unauthenticated load left error toasts on it."""
    password = page.locator('form input[type="password"]')
    _wait(page, password, "password field of the login page")
    password.fill(auth_string)
    page.locator("form").get_by_role("button", name="Login", exact=True).click()
    page.wait_for_url(lambda url: url.split("?", 1)[0] == asked_url)
    page.reload()


def _wait(page: Page, locator: Locator, what: str) -> None:
    try:
        locator.wait_for(state="visible", timeout=STEP_TIMEOUT_MS)
    except PlaywrightTimeout:
        shown = page.locator("body").inner_text()[-3000:]
        raise AssertionError(f"no {what} after {STEP_TIMEOUT_MS // 1000}s at {page.url}; the page shows:\n{shown}") from None


def _text(locator: Locator) -> str:
    return locator.first.inner_text().strip() if locator.count() else ""


def _field_name(label: str) -> str:
    """The JSON schema title the form shows, back to the field's name: "Approve (Optional)" -> "approve"."""
    return label.removesuffix("(Optional)").strip().lower().replace(" ", "_")


def _value(prop: Locator) -> str | bool | None:
    switch = prop.get_by_role("switch")
    if switch.count():
        return switch.first.get_attribute("aria-checked") == "true"
    control = prop.locator("textarea, input:not([type=checkbox])")
    return control.first.input_value() if control.count() else None
