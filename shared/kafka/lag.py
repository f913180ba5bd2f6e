"""Consumer lag of the platform's consumer groups, polled from the broker."""

from __future__ import annotations

from kafka.admin import KafkaAdminClient, OffsetSpec

GROUP_INFIX = (
    "llmops-"  # every service's group is <prefix>llmops-<service> (shared.kafka.faust_app)
)


def consumer_lag(
    bootstrap: str, prefix: str, timeout_ms: int = 10_000
) -> dict[str, dict[str, int]]:
    """Records not yet processed, per platform group (by service name) and topic: the end
    offsets minus the group's committed offsets.

    End offsets come from the admin client's ListOffsets, sent to each partition's leader
    after a metadata lookup of its own: the consumer's ``end_offsets`` dropped the partitions
    of topics whose leader it did not know yet when known and unknown topics were asked for
    together, then raised KeyError (every poll of a stack like ``make run``'s failed).
    Raises a KafkaError when the broker cannot tell.
    """
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="llmops-lag", request_timeout_ms=timeout_ms
    )
    try:
        start = f"{prefix}{GROUP_INFIX}"
        groups = sorted(str(g.get("group_id") or g.get("group")) for g in admin.list_groups())
        groups = [g for g in groups if g.startswith(start)]
        if not groups:
            return {}
        committed = admin.list_group_offsets(groups)
        # the groups' own input topics, not faust's changelogs or its assignor's topic
        mine = {
            group: {tp: om for tp, om in offsets.items() if not tp.topic.startswith(start)}
            for group, offsets in committed.items()
        }
        every = {tp for offsets in mine.values() for tp in offsets}
        ends = admin.list_partition_offsets(
            {tp: OffsetSpec.LATEST for tp in every}, timeout_ms=timeout_ms
        )
        out: dict[str, dict[str, int]] = {}
        for group, offsets in sorted(mine.items()):
            per_topic: dict[str, int] = {}
            for tp, om in offsets.items():
                behind = max(ends[tp].offset - max(om.offset, 0), 0)
                name = tp.topic.removeprefix(prefix)
                per_topic[name] = per_topic.get(name, 0) + behind
            out[group.removeprefix(start)] = per_topic
        return out
    finally:
        admin.close()
