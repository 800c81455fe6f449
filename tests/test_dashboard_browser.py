"""The dashboard in a real browser: Debian's headless `chromium` driven by selenium
through `chromedriver`, against uvicorn serving the app on a free port in a thread, on a
database whose runs a worker in this process executes. A failing test leaves a
screenshot (and the page's HTML) under its tmp_path."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

pytest.importorskip("starlette", reason="the dashboard extra is not installed")
pytest.importorskip("uvicorn", reason="the dashboard extra is not installed")
pytest.importorskip("selenium", reason="selenium is not installed")

import uvicorn
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from hatchlite import Context, EmptyModel, Hatchet, V1TaskStatus
from hatchlite.dashboard import create_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "browser tests need Debian's chromium and chromedriver "
        "(apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )

WAIT = 10.0  # seconds for the page to show a change (it polls every second)


class Greeting(BaseModel):
    name: str


@dataclass
class Site:
    url: str
    hatchet: Hatchet
    workflows: dict[str, Any]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _define(hatchet: Hatchet) -> dict[str, Any]:
    report = hatchet.workflow(name="report")

    @report.task()
    def fetch(input: EmptyModel, ctx: Context) -> dict[str, int]:
        return {"rows": 3}

    @report.task(parents=[fetch])
    def render(input: EmptyModel, ctx: Context) -> None:
        raise ValueError("template missing: <b>header</b>")

    @report.task(parents=[fetch])
    def archive(input: EmptyModel, ctx: Context) -> dict[str, bool]:
        return {"archived": True}

    @hatchet.task(name="greet", input_validator=Greeting)
    def greet(input: Greeting, ctx: Context) -> dict[str, str]:
        return {"greeting": f"hello {input.name}"}

    @hatchet.task(name="slow")
    async def slow(input: EmptyModel, ctx: Context) -> None:
        await asyncio.sleep(60)

    return {"report": report, "greet": greet, "slow": slow}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    db = str(tmp_path_factory.mktemp("browser") / "hatchlite.db")
    hatchet = Hatchet(db=db)
    workflows = _define(hatchet)
    workflows["greet"].run(Greeting(name="first"))  # registers; starts this process's worker
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(db), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Site(f"http://127.0.0.1:{port}", hatchet, workflows)
    server.should_exit = True
    thread.join(10)
    hatchet.close()


@pytest.fixture(scope="module")
def chrome() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,1000")
    try:
        driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    except WebDriverException as error:
        pytest.skip(f"chromium could not start: {error.msg}")
    yield driver
    driver.quit()


@pytest.fixture
def browser(
    chrome: WebDriver, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[WebDriver]:
    """The browser; a screenshot and the page source under tmp_path if the test failed."""
    failed_before = request.session.testsfailed
    yield chrome
    if request.session.testsfailed > failed_before:
        shot = tmp_path / "failure.png"
        chrome.save_screenshot(str(shot))
        (tmp_path / "failure.html").write_text(chrome.page_source)
        print(f"screenshot of the failure: {shot}")


def wait_for(driver: WebDriver, condition: Any, what: str) -> Any:
    # The live refresh replaces elements under a condition's feet: look again.
    waiting = WebDriverWait(
        driver, WAIT, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
    )
    return waiting.until(lambda d: condition(d), message=f"page did not show {what} within {WAIT}s")


def run_status(driver: WebDriver) -> str:
    """The run page's status; "" while the live refresh is replacing the element (the
    wait that calls this looks again)."""
    try:
        element = driver.find_element(By.ID, "run-live")
        return element.get_attribute("data-status") or ""
    except StaleElementReferenceException:
        return ""


def test_a_new_run_appears_live_on_the_runs_page(browser: WebDriver, site: Site) -> None:
    browser.get(site.url + "/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Runs"
    browser.execute_script("window.__same_page = true")
    ref = site.workflows["greet"].run_no_wait(Greeting(name="live"))
    row = f'tr[data-run-id="{ref.workflow_run_id}"]'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the new run")
    wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, row).get_attribute("data-status") == "COMPLETED",
        "the run completed",
    )
    assert browser.execute_script("return window.__same_page") is True  # no reload


def test_open_a_run_see_its_dag_and_read_its_error(browser: WebDriver, site: Site) -> None:
    ref = site.workflows["report"].run_no_wait()
    run_id = ref.workflow_run_id
    deadline = time.monotonic() + WAIT
    while site.hatchet.runs.get_status(run_id) != V1TaskStatus.FAILED:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    browser.get(site.url + "/?status=FAILED")
    link = f'tr[data-run-id="{run_id}"] a.run-link'
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, link), "the failed run")
    browser.find_element(By.CSS_SELECTOR, link).click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "dag"), "the DAG")
    nodes = {
        n.get_attribute("data-task"): n.get_attribute("data-status")
        for n in browser.find_elements(By.CSS_SELECTOR, "svg.dag g.node")
    }
    assert nodes == {"fetch": "COMPLETED", "render": "FAILED", "archive": "COMPLETED"}
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.dag path.edge")) == 2
    # Clicking the failed task in the graph goes to its details: the error, as text.
    browser.find_element(By.CSS_SELECTOR, 'g.node[data-task="render"]').click()
    traceback = browser.find_element(By.CSS_SELECTOR, "details.task[open] pre.traceback")
    assert "ValueError: template missing: <b>header</b>" in traceback.text
    assert "Traceback (most recent call last)" in traceback.text
    assert not browser.find_elements(By.CSS_SELECTOR, "pre.traceback b")  # not markup


def test_cancel_a_running_run_and_see_it_cancelled(browser: WebDriver, site: Site) -> None:
    ref = site.workflows["slow"].run_no_wait()
    browser.get(f"{site.url}/runs/{ref.workflow_run_id}")
    wait_for(browser, lambda d: run_status(d) == "RUNNING", "the run running")
    browser.find_element(By.CSS_SELECTOR, 'button[name="cancel"]').click()
    wait_for(browser, lambda d: run_status(d) == "CANCELLED", "the run cancelled")
    badge = browser.find_element(By.CSS_SELECTOR, ".run-head .badge")
    assert badge.text == "CANCELLED"
    assert site.hatchet.runs.get_status(ref.workflow_run_id) == V1TaskStatus.CANCELLED


def test_trigger_a_workflow_from_the_form(browser: WebDriver, site: Site) -> None:
    browser.get(site.url + "/workflows")
    form = browser.find_element(By.ID, "trigger")
    if not form.get_attribute("open"):
        form.find_element(By.TAG_NAME, "summary").click()
    Select(
        browser.find_element(By.CSS_SELECTOR, '#trigger-form select[name="workflow"]')
    ).select_by_value("greet")
    box = browser.find_element(By.CSS_SELECTOR, '#trigger-form textarea[name="input"]')
    box.clear()
    box.send_keys('{"name": "Ada <3"}')
    browser.find_element(By.CSS_SELECTOR, "#trigger-form button[type=submit]").click()
    wait_for(browser, lambda d: "/runs/" in d.current_url, "the new run's page")
    wait_for(browser, lambda d: run_status(d) == "COMPLETED", "the run completed")
    output = browser.find_element(By.ID, "run-output").text
    assert '"greeting": "hello Ada <3"' in output


def test_malformed_json_in_the_form_is_refused(browser: WebDriver, site: Site) -> None:
    browser.get(site.url + "/workflows?trigger=greet")
    box = browser.find_element(By.CSS_SELECTOR, '#trigger-form textarea[name="input"]')
    box.clear()
    box.send_keys("{oops")
    browser.find_element(By.CSS_SELECTOR, "#trigger-form button[type=submit]").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".error-page"), "the error page")
    assert "not valid JSON" in browser.find_element(By.CSS_SELECTOR, ".message").text
