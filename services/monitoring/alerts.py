"""Alert rules and their lifecycle, in the spirit of Prometheus: pure, no Kafka.

A rule watches one metric (a name, a label selector, a field of the point) and a condition.
Each series it selects gets its own alert, named by a fingerprint of the rule and the
series' labels. At every window's close ``step`` moves each alert through

    inactive -> pending (the condition holds, for less than ``for``)
             -> firing (it held ``for`` long; published)
             -> resolved (it stopped holding, and ``keep_firing_for`` has passed; published)

Time is the windows' event time, never the wall clock: replaying the same records gives the
same alerts, with the same timestamps and fingerprints.
"""

from __future__ import annotations

import hashlib
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.contracts.events import Alert, AlertState, MetricPoint
from shared.yamlfile import DeclaredFileError, items_with_lines, validated

OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_CONDITION = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TEMPLATES = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class NoData(StrEnum):
    """What a window without a point for the rule's series means."""

    OK = "ok"  # the condition does not hold
    ALERTING = "alerting"  # the condition holds ("nothing came" is the problem)
    KEEP_STATE = "keep_state"  # nothing changes


def seconds(v: Any) -> float:
    """A duration: a number of seconds, or Prometheus style ``90s``, ``5m``, ``1h``."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        if v < 0:
            raise ValueError("a duration cannot be negative")
        return float(v)
    m = _DURATION.match(str(v).strip())
    if not m:
        raise ValueError(f"{v!r} is not a duration (e.g. 90s, 5m, 1h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


class Rule(BaseModel):
    """One alert rule, as written in the rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,99}$", description="The alertname.")
    metric: str = Field(description="The metric's name, e.g. inference_error_rate.")
    select: dict[str, str] = Field(
        default_factory=dict, description="Labels a series must have (exact values)."
    )
    field: Literal["value", "count", "sum", "min", "max", "p50", "p95", "p99"] = "value"
    condition: str = Field(description="An operator and a threshold, e.g. '> 0.05'.")
    min_count: int = Field(
        default=0, ge=0, description="A window with fewer events than this is no data."
    )
    for_s: float = Field(default=0.0, alias="for", description="How long it must hold.")
    keep_firing_for_s: float = Field(
        default=0.0, alias="keep_firing_for", description="How long it keeps firing after."
    )
    repeat_interval_s: float = Field(
        default=4 * 3600.0, alias="repeat_interval", description="Re-send a firing alert."
    )
    no_data: NoData = NoData.OK
    severity: Literal["critical", "warning", "info"] = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("for_s", "keep_firing_for_s", "repeat_interval_s", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> float:
        return seconds(v)

    @field_validator("condition")
    @classmethod
    def _condition(cls, v: str) -> str:
        if not _CONDITION.match(v):
            raise ValueError(f"{v!r}: expected an operator and a number, e.g. '> 0.05'")
        return v

    @field_validator("annotations")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            try:
                _TEMPLATES.from_string(text)
            except TemplateSyntaxError as exc:
                raise ValueError(f"annotation {key}: {exc.message} (line {exc.lineno})") from None
        return v

    def holds(self, value: float) -> bool:
        """Whether the condition holds for ``value``."""
        m = _CONDITION.match(self.condition)
        assert m is not None
        return OPS[m.group(1)](value, float(m.group(2)))

    def selects(self, point: MetricPoint) -> bool:
        """Whether a point belongs to one of this rule's series."""
        return point.name == self.metric and all(
            point.labels.get(k) == v for k, v in self.select.items()
        )

    def figure(self, point: MetricPoint) -> float | None:
        """The field the condition reads, or None (no data) below ``min_count``."""
        if point.count < self.min_count:
            return None
        v = getattr(point, self.field)
        return None if v is None else float(v)


class RulesError(DeclaredFileError):
    """A rules file that cannot be used: names the file, the line and the reason."""


def load_rules(path: Path) -> list[Rule]:
    """The rules of a YAML file (``rules:`` then a list); RulesError says where it is wrong."""
    rules, seen = [], set()
    for item, line in items_with_lines(path, "rules", RulesError):
        rule = validated(Rule, item, path, line, RulesError)
        if rule.name in seen:
            raise RulesError(f"{path}:{line}: a second rule named {rule.name}")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """The alert's identity: the rule and its series' labels (Alertmanager dedupes by it)."""
    text = rule + "".join(f"\x00{k}\x00{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Lifecycle:
    """Where one alert is (what is kept): ``phase`` is inactive, pending or firing."""

    phase: Literal["inactive", "pending", "firing"] = "inactive"
    active_at: datetime | None = None  # when the condition began to hold
    fired_at: datetime | None = None
    last_true: datetime | None = None  # the last window in which it held
    quiet_since: datetime | None = None  # firing, but the condition stopped holding then
    last_sent: datetime | None = None
    value: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in self.__dict__.items()
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Lifecycle:
        dates = ("active_at", "fired_at", "last_true", "last_sent", "quiet_since")
        fields: dict[str, Any] = {
            k: (datetime.fromisoformat(v) if k in dates and v else v) for k, v in d.items()
        }
        return cls(**fields)


INACTIVE = Lifecycle()


@dataclass(frozen=True)
class Step:
    """The new state of an alert, and whether to publish it (firing or resolved)."""

    state: Lifecycle
    publish: AlertState | None = None


def step(state: Lifecycle, value: float | None, now: datetime, rule: Rule) -> Step:
    """One window's close for one alert. ``value`` None: no data in the window."""
    if value is None:
        if rule.no_data is NoData.KEEP_STATE:
            return Step(state)
        holds = rule.no_data is NoData.ALERTING
    else:
        holds = rule.holds(value)
    keep = timedelta(seconds=rule.keep_firing_for_s)
    if holds:
        if state.phase == "inactive":
            state = Lifecycle("pending", active_at=now, last_true=now, value=value)
        else:
            v = value if value is not None else state.value
            state = replace(state, last_true=now, quiet_since=None, value=v)
        if state.phase == "pending":
            assert state.active_at is not None
            if now - state.active_at >= timedelta(seconds=rule.for_s):
                firing = replace(state, phase="firing", fired_at=now, last_sent=now)
                return Step(firing, AlertState.FIRING)
            return Step(state)
        assert state.last_sent is not None
        if now - state.last_sent >= timedelta(seconds=rule.repeat_interval_s):
            return Step(replace(state, last_sent=now), AlertState.FIRING)
        return Step(state)
    if state.phase == "firing":
        # as Prometheus: keep firing for keep_firing_for after the first window it did not hold
        quiet = state.quiet_since or now
        if now - quiet < keep:
            return Step(replace(state, quiet_since=quiet))
        return Step(replace(state, phase="inactive"), AlertState.RESOLVED)
    return Step(INACTIVE)


def render(rule: Rule, labels: dict[str, str], value: float | None) -> dict[str, str]:
    """The rule's annotations with ``labels``, ``value`` and ``rule`` filled in."""
    shown = "n/a" if value is None else f"{value:.4g}"
    ctx = {"labels": labels, "value": shown, "rule": rule.name, "severity": rule.severity}
    return {k: _TEMPLATES.from_string(t).render(ctx) for k, t in rule.annotations.items()}


def alert_of(rule: Rule, series: dict[str, str], s: Step, now: datetime) -> Alert:
    """The record of a published step."""
    assert s.publish is not None and s.state.fired_at is not None
    labels = {**series, **rule.labels, "alertname": rule.name, "severity": rule.severity}
    fp = fingerprint(rule.name, series)
    ends = now if s.publish is AlertState.RESOLVED else None
    return Alert(
        # deterministic: the same transition replayed is the same event
        event_id=f"{fp}-{s.publish.value}-{now.isoformat()}",
        event_time=now,
        fingerprint=fp,
        rule=rule.name,
        state=s.publish,
        severity=rule.severity,
        labels=labels,
        annotations=render(rule, labels, s.state.value),
        value=s.state.value,
        starts_at=s.state.fired_at,
        ends_at=ends,
    )


Series = tuple[str, tuple[tuple[str, str], ...]]  # (rule name, series labels)


def evaluate(
    rules: Iterable[Rule],
    points: list[MetricPoint],
    states: dict[Series, Lifecycle],
    now: datetime,
) -> tuple[dict[Series, Lifecycle], list[Alert]]:
    """A closed window's points against every rule. ``states`` holds the alerts that are not
    inactive; the series a rule has state for but no point in this window get no data.
    Returns the states that changed (inactive ones included, to be forgotten) and the
    alerts to publish."""
    changed: dict[Series, Lifecycle] = {}
    alerts: list[Alert] = []
    for rule in rules:
        seen: dict[Series, float | None] = {}
        for p in points:
            if rule.selects(p):
                seen[(rule.name, tuple(sorted(p.labels.items())))] = rule.figure(p)
        known = [k for k in states if k[0] == rule.name]
        if not seen and not known and rule.no_data is NoData.ALERTING:
            seen[(rule.name, tuple(sorted(rule.select.items())))] = None  # nothing came at all
        for key in sorted(set(seen) | set(known)):
            before = states.get(key, INACTIVE)
            s = step(before, seen.get(key), now, rule)
            if s.state != before:
                changed[key] = s.state
            if s.publish is not None:
                alerts.append(alert_of(rule, dict(key[1]), s, now))
    return changed, alerts


def firing_now(history: Iterable[Alert]) -> list[Alert]:
    """The alerts whose latest transition is firing, most severe first."""
    latest: dict[str, Alert] = {}
    for a in history:
        latest[a.fingerprint] = a
    order = {"critical": 0, "warning": 1, "info": 2}
    firing = [a for a in latest.values() if a.state is AlertState.FIRING]
    return sorted(firing, key=lambda a: (order.get(a.severity, 3), a.starts_at, a.rule))
