"""`llmops run all`: every service in one process, wired only through topics; and the pages it
serves render in a real headless Chromium with no internet (no asset from a CDN)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.inference.auth import new_key
from shared.contracts.events import DocumentEvent
from shared.contracts.upstream import publish_documents
from shared.http import wait_ok
from shared.kafka.broker import free_port
from tests.browser import chromium

pytestmark = pytest.mark.e2e

PAGES = ("/docs", "/redoc")


def test_run_all_indexes_and_serves_and_its_pages_work_offline(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    key, record = new_key("pages", "acme", [])
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_service(
        "all",
        INFERENCE_PORT=str(port),
        INFERENCE_API_KEYS=json.dumps([record.model_dump()]),
        MONITORING_PORT=str(free_port()),
    )
    doc = DocumentEvent(
        tenant="acme",
        doc_id="kb/coffee.md",
        version=1,
        title="Coffee",
        content="The espresso machine on floor three is descaled every Friday.",
    )
    assert publish_documents([doc], kafka_bootstrap, topic_prefix).sent == 1
    assert wait_ok(f"{url}/readyz", 180), proc.log()[-3000:]
    deadline, cited = time.monotonic() + 120, []
    while time.monotonic() < deadline and "kb/coffee.md" not in cited:
        r = httpx.post(
            f"{url}/v1/retrieve",
            json={"question": "When is the espresso machine descaled?"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        cited = [c["doc_id"] for c in r.json()["chunks"]]
        time.sleep(0.5)
    assert "kb/coffee.md" in cited, proc.log()[-3000:]

    for page in PAGES:
        html = httpx.get(f"{url}{page}", timeout=10).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert assets and all(a.startswith("/") for a in assets), (page, assets)
        assert "cdn" not in html.lower(), page

    with chromium() as driver:
        driver.get(f"{url}/docs")
        WebDriverWait(driver, 30).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 4
        )
        paths = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        assert {"/v1/query", "/v1/retrieve", "/healthz", "/readyz"} <= paths, paths
        driver.save_screenshot(str(tmp_path / "docs.png"))
        driver.get(f"{url}/redoc")
        WebDriverWait(driver, 30).until(lambda d: "/v1/query" in d.page_source)
        WebDriverWait(driver, 30).until(
            lambda d: "Answer a question" in d.find_element(By.TAG_NAME, "body").text
        )
    assert proc.alive(), proc.log()[-3000:]
