"""Alerts to Alertmanager's v2 API, the way Prometheus sends them.

A firing alert is posted with an ``endsAt`` a few resend intervals ahead and posted again
while it fires (Alertmanager resolves an alert that is not renewed), a resolved one with its
``endsAt``. Routing, grouping, deduplication by labels, silences and inhibition are then
Alertmanager's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.contracts.events import Alert, AlertState

log = logging.getLogger(__name__)


def payload(alert: Alert, now: datetime, resend_s: float) -> dict[str, Any]:
    """One alert as Alertmanager's ``postableAlert``."""
    if alert.state is AlertState.FIRING:
        ends = now + timedelta(seconds=4 * resend_s)  # as Prometheus: renewed until resolved
    else:
        ends = alert.ends_at or now
    return {
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": alert.starts_at.isoformat(),
        "endsAt": ends.isoformat(),
        "generatorURL": f"llmops://monitoring/{alert.rule}",
    }


@dataclass
class AlertmanagerClient:
    """Posts alerts; what could not be posted is kept and tried again at the next resend."""

    url: str
    resend_s: float
    unsent: list[Alert] = field(default_factory=list)
    sent: int = 0

    async def transition(self, alert: Alert) -> None:
        """An alert fired or resolved: post it now."""
        await self._post([alert])

    async def resend(self, firing: list[Alert]) -> None:
        """Renew every firing alert, and retry the resolved ones that failed before."""
        retry, self.unsent = self.unsent, []
        await self._post([*retry, *firing])

    async def _post(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        now = datetime.now(UTC)
        body = [payload(a, now, self.resend_s) for a in alerts]
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                r = await client.post(f"{self.url.rstrip('/')}/api/v2/alerts", json=body)
                r.raise_for_status()
            self.sent += len(alerts)
        except httpx.HTTPError as exc:
            log.warning("Alertmanager at %s refused or is away (%s); will retry", self.url, exc)
            self.unsent = [a for a in alerts if a.state is AlertState.RESOLVED] + self.unsent
