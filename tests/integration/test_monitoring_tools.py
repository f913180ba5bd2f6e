"""The monitoring service plugged into the on-call's real tools: Debian's Prometheus scrapes
/metrics and answers PromQL over it; Debian's Alertmanager receives the alert, holds a
silence on it, and sees it resolve."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.contracts.events import MetricPoint
from shared.contracts.topics import MONITORING_METRICS
from shared.http import wait_ok
from shared.kafka.broker import free_port
from shared.kafka.reader import read_to_end
from tests.browser import chromium
from tests.integration.test_monitoring_service import (
    CALM_RESOLVE,
    ERRORS_FIRE,
    alerts,
    monitoring_env,
    send,
    wait_for,
)

pytestmark = pytest.mark.integration


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (make test installs Debian's package)")
    return path


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "route:\n  receiver: 'null'\n  group_wait: 1s\n  group_interval: 1s\n"
        "  repeat_interval: 1h\nreceivers:\n  - name: 'null'\n"
    )
    proc = subprocess.Popen(
        [
            tool("prometheus-alertmanager"),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "alertmanager.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_ok(f"{url}/-/ready", 30), (tmp_path / "alertmanager.log").read_text()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A Prometheus server scraping 127.0.0.1:<the port it yields> every second."""
    target, port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: llmops-monitoring\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
    )
    proc = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert wait_ok(f"{url}/-/ready", 60), (tmp_path / "prometheus.log").read_text()
        yield url, target
    finally:
        proc.terminate()
        proc.wait(10)


def promql(url: str, query: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=10)
    r.raise_for_status()
    return r.json()["data"]["result"]  # type: ignore[no-any-return]


def am_alerts(url: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v2/alerts", params={"filter": "alertname=HighErrorRate"}, timeout=10)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def test_prometheus_scrapes_it_and_alertmanager_fires_silences_and_resolves(
    kafka_bootstrap: str,
    topic_prefix: str,
    start_service: Any,
    tmp_path: Path,
    prometheus: tuple[str, int],
    alertmanager: str,
) -> None:
    b, p = kafka_bootstrap, topic_prefix
    prom, port = prometheus
    svc = start_service(
        "monitoring",
        MONITORING_PORT=str(port),
        ALERTMANAGER_URL=alertmanager,
        MONITORING_ALERTMANAGER_RESEND_S="2",
        **monitoring_env(tmp_path),
    )
    send(b, p, ERRORS_FIRE)
    assert wait_for(lambda: alerts(b, p)), svc.log()[-3000:]

    # Prometheus scraped the last windows: five failed requests, the alert firing
    failed = 'llmops_inference_requests{status="error",tenant="acme"}'
    got = wait_for(lambda: promql(prom, failed), 60)
    assert got and float(got[0]["value"][1]) == 5, got
    firing = wait_for(lambda: promql(prom, 'llmops_alerts_firing{alertname="HighErrorRate"}'))
    assert firing and float(firing[0]["value"][1]) == 1
    histogram = promql(prom, 'llmops_request_latency_seconds_count{stage="total"}')
    assert histogram and float(histogram[0]["value"][1]) == len(ERRORS_FIRE)

    # Alertmanager has it, with its labels and annotations
    (alert,) = wait_for(lambda: am_alerts(alertmanager), 30)
    assert alert["labels"]["tenant"] == "acme" and alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["runbook_url"] == "docs/operations.md#higherrorrate"
    assert alert["status"]["state"] == "active"

    # a silence holds across the resends
    now = datetime.now(UTC)
    silence = httpx.post(
        f"{alertmanager}/api/v2/silences",
        json={
            "matchers": [{"name": "alertname", "value": "HighErrorRate", "isRegex": False}],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "on-call",
            "comment": "known: failing upstream",
        },
        timeout=10,
    )
    assert silence.status_code == 200, silence.text
    silence_id = silence.json()["silenceID"]
    time.sleep(5)  # over two resends (and under a window and its grace without input)
    (held,) = am_alerts(alertmanager)
    assert held["status"]["state"] == "suppressed"
    assert held["status"]["silencedBy"] == [silence_id]

    # calm again: resolved on the topic, and in Alertmanager
    send(b, p, CALM_RESOLVE)

    def resolved_there() -> bool:
        return not [a for a in am_alerts(alertmanager) if a["status"]["state"] != "resolved"]

    assert wait_for(resolved_there, 60), am_alerts(alertmanager)
    assert [a.state.value for a in alerts(b, p)] == ["firing", "resolved"]
    # and Prometheus no longer sees it firing
    gone = 'llmops_alerts_firing{alertname="HighErrorRate"}'
    assert wait_for(lambda: promql(prom, gone) == [], 30), promql(prom, gone)


def test_the_dashboard_draws_the_windows_and_alerts_in_a_real_browser(
    kafka_bootstrap: str, topic_prefix: str, start_service: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    b, p = kafka_bootstrap, topic_prefix
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    svc = start_service("monitoring", MONITORING_PORT=str(port), **monitoring_env(tmp_path))
    send(b, p, [*ERRORS_FIRE, *CALM_RESOLVE])
    assert wait_for(lambda: len(alerts(b, p)) >= 2), svc.log()[-3000:]
    html = httpx.get(f"{url}/dashboard", timeout=10).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets and all(a.startswith(("/", "data:")) for a in assets), assets
    assert "cdn" not in html.lower()
    # what monitoring.metrics holds for requests, window by window, summed over series
    produced = sum(
        pt.count
        for r in read_to_end(b, MONITORING_METRICS.name(p))
        if (pt := MetricPoint.from_bytes(r.value)).name == "inference_requests"
    )
    with chromium() as driver:
        driver.get(f"{url}/dashboard")
        WebDriverWait(driver, 30).until(
            lambda d: d.execute_script("return window.dashboard.refreshes") >= 1
        )
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
        drawn = driver.execute_script(
            "return document.getElementById('chart-requests').data"
            ".reduce((n, t) => n + t.y.reduce((a, b) => a + b, 0), 0)"
        )
        # every closed window (the last record's window is still open)
        assert drawn == produced == len(ERRORS_FIRE) + len(CALM_RESOLVE) - 1
        states = [
            e.text
            for e in driver.find_elements("css selector", "#transitions tbody td:first-child")
        ]
        assert states == ["RESOLVED", "FIRING"], states
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
