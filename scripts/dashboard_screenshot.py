"""Generate docs/dashboard.png: the dashboard over a database with a known history,
photographed by headless Chromium (Debian's `chromium` and `chromedriver`, driven by
selenium, as the browser tests do).

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png] [--page run|runs]

The history: an `etl` DAG (extract, then clean and enrich, then load) run a few times,
one run whose `enrich` fails once and is retried, a run that fails for good, a few
single-task runs with metadata, and one still running. The picture is the run page of
the retried `etl` run (its DAG, tasks and timeline), or with `--page runs` the runs list.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from hatchlite import Context, EmptyModel, Hatchet, V1TaskStatus  # noqa: E402
from hatchlite.dashboard import create_app  # noqa: E402


def build_history(hatchet: Hatchet) -> str:
    """Define the workflows, run them; the id of the run to photograph."""
    attempts: dict[str, int] = {}
    etl = hatchet.workflow(name="etl")

    @etl.task()
    def extract(input: EmptyModel, ctx: Context) -> dict[str, int]:
        ctx.log("read 1,204 rows from orders.csv")
        return {"rows": 1204}

    @etl.task(parents=[extract])
    def clean(input: EmptyModel, ctx: Context) -> dict[str, int]:
        time.sleep(0.15)
        return {"rows": 1198}

    @etl.task(parents=[extract], retries=2)
    def enrich(input: EmptyModel, ctx: Context) -> dict[str, int]:
        run = ctx.workflow_run_id
        attempts[run] = attempts.get(run, 0) + 1
        if ctx.additional_metadata.get("flaky") == "yes" and attempts[run] == 1:
            raise ConnectionError("geo-ip service timed out")
        time.sleep(0.3)
        return {"rows": 1204}

    @etl.task(parents=[clean, enrich])
    def load(input: EmptyModel, ctx: Context) -> dict[str, int]:
        time.sleep(0.1)
        return {"loaded": 1198}

    @hatchet.task(name="send-invoice")
    def send_invoice(input: EmptyModel, ctx: Context) -> dict[str, str]:
        return {"status": "sent"}

    @hatchet.task(name="sync-crm")
    def sync_crm(input: EmptyModel, ctx: Context) -> None:
        raise PermissionError("CRM token expired")

    @hatchet.task(name="rebuild-index")
    async def rebuild_index(input: EmptyModel, ctx: Context) -> None:
        await asyncio.sleep(3600)

    for customer in ("acme", "globex", "initech"):
        send_invoice.run(additional_metadata={"customer": customer})
    etl.run(additional_metadata={"source": "orders"})
    sync_crm.run_no_wait()
    featured = etl.run_no_wait(additional_metadata={"source": "orders", "flaky": "yes"})
    featured.result()
    etl.run(additional_metadata={"source": "refunds"})
    rebuild_index.run_no_wait()
    return featured.workflow_run_id


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def photograph(url: str, out: Path, wait_for: str) -> None:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        raise SystemExit(
            "needs chromium and chromedriver: apt-get install -y chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1000")
    options.add_argument("--hide-scrollbars")
    driver = webdriver.Chrome(service=webdriver.ChromeService(chromedriver), options=options)
    try:
        driver.get(url)
        WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, wait_for))
        time.sleep(1.2)  # one live refresh, so the indicator shows it is live
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--page", choices=["run", "runs"], default="run")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    home = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the page header shows the database path: keep it short
        db = "hatchlite.db"
        hatchet = Hatchet(db=db)
        featured = build_history(hatchet)
        deadline = time.monotonic() + 10
        while hatchet.runs.get_status(featured) != V1TaskStatus.COMPLETED:
            if time.monotonic() > deadline:
                raise SystemExit("the featured run did not complete")
            time.sleep(0.05)
        server = uvicorn.Server(
            uvicorn.Config(create_app(db), host="127.0.0.1", port=_free_port(), log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        base = f"http://127.0.0.1:{server.config.port}"
        target: dict[str, tuple[str, str]] = {
            "run": (f"{base}/runs/{featured}", "svg.dag g.node"),
            "runs": (f"{base}/", "#runs-table tbody tr"),
        }
        try:
            url, ready = target[args.page]
            photograph(url, out, ready)
        finally:
            server.should_exit = True
            thread.join(10)
            hatchet.close()
            os.chdir(home)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
