"""Consumer lag of the platform's consumer groups, polled from the broker."""

from __future__ import annotations

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient

GROUP_INFIX = "llmops-"  # every service's group is <prefix>llmops-<service> (shared.faust_app)


def consumer_lag(bootstrap: str, prefix: str) -> dict[str, dict[str, int]]:
    """Records not yet processed, per platform group (by service name) and topic: the end
    offsets minus the group's committed offsets."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="llmops-lag")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        start = f"{prefix}{GROUP_INFIX}"
        groups = sorted(str(g.get("group_id") or g.get("group")) for g in admin.list_groups())
        groups = [g for g in groups if g.startswith(start)]
        if not groups:
            return {}
        committed = admin.list_group_offsets(groups)
        out: dict[str, dict[str, int]] = {}
        for group, offsets in sorted(committed.items()):
            # the group's own input topics, not faust's changelogs or its assignor's topic
            mine = {tp: om for tp, om in offsets.items() if not tp.topic.startswith(start)}
            ends = consumer.end_offsets(list(mine)) if mine else {}
            per_topic: dict[str, int] = {}
            for tp, om in mine.items():
                behind = max(ends.get(tp, 0) - max(om.offset, 0), 0)
                name = tp.topic.removeprefix(prefix)
                per_topic[name] = per_topic.get(name, 0) + behind
            out[group.removeprefix(start)] = per_topic
        return out
    finally:
        consumer.close()
        admin.close()
