"""The AsyncAPI 3 document of the platform's topics, generated from their declarations.

Every declared topic is a channel (its address, partitions, cleanup, retention and record
size as Kafka bindings), carrying one message (its event's JSON Schema, its key); every
sender and receiver the declaration names is an operation. Nothing here is written by hand:
a topic or an event changed in ``topics.py`` or ``events.py`` changes the document.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from shared.contracts.topics import DEFAULT_MAX_MESSAGE_BYTES, TOPICS, Topic

ASYNCAPI_VERSION = "3.1.0"
KAFKA_BINDING_VERSION = "0.5.0"
REF = "#/components/schemas/{model}"


def channel_id(topic: Topic) -> str:
    """``ingest.documents`` -> ``ingestDocuments``."""
    first, *rest = re.split(r"[._-]", topic.base_name)
    return first + "".join(p.title() for p in rest)


def operation_id(party: str, action: str, topic: Topic) -> str:
    """``ingestion`` receives ``ingest.documents`` -> ``ingestionReceivesIngestDocuments``."""
    words = re.split(r"[^A-Za-z0-9]+", party)
    name = words[0].lower() + "".join(w.title() for w in words[1:])
    cid = channel_id(topic)
    return f"{name}{action.title()}s{cid[0].upper()}{cid[1:]}"


def _topic_configuration(topic: Topic, max_message_bytes: int) -> dict[str, Any]:
    config = topic.config(max_message_bytes)
    out: dict[str, Any] = {
        "cleanup.policy": config["cleanup.policy"].split(","),
        "retention.ms": int(config["retention.ms"]),
        "max.message.bytes": int(config["max.message.bytes"]),
    }
    return out


def _asyncapi_schema(node: Any) -> Any:
    """pydantic's JSON Schema in AsyncAPI's dialect: a discriminator is the name of the
    property (OpenAPI's object, with its mapping, is not allowed there)."""
    if isinstance(node, dict):
        out = {k: _asyncapi_schema(v) for k, v in node.items()}
        if isinstance(out.get("discriminator"), dict):
            out["discriminator"] = out["discriminator"]["propertyName"]
        return out
    if isinstance(node, list):
        return [_asyncapi_schema(v) for v in node]
    return node


def asyncapi_document(
    version: str,
    prefix: str = "",
    bootstrap: str = "localhost:9092",
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> dict[str, Any]:
    """The document for topics under ``prefix`` on the cluster at ``bootstrap``."""
    models = sorted({t.value_model for t in TOPICS}, key=lambda m: m.__name__)
    refs, defs = models_json_schema(
        [(m, "validation") for m in models], ref_template=REF, title="events"
    )
    schemas: dict[str, Any] = _asyncapi_schema(dict(defs.get("$defs", {})))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for model in models:
        name = model.__name__
        messages[name] = {
            "name": name,
            "title": name,
            "summary": (model.__doc__ or name).strip().splitlines()[0],
            "contentType": "application/json",
            "payload": {"$ref": refs[(model, "validation")]["$ref"]},
        }
    for topic in TOPICS:
        cid = channel_id(topic)
        name = topic.value_model.__name__
        channels[cid] = {
            "address": topic.name(prefix),
            "description": topic.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "kafka": {
                    "topic": topic.name(prefix),
                    "partitions": topic.partitions,
                    "topicConfiguration": _topic_configuration(topic, max_message_bytes),
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        # the key of each record of this topic (a message binding is per message, and one
        # event model may travel on several topics with different keys: the DLQs)
        channels[cid]["x-kafka-key"] = topic.key
        for action, parties in (("send", topic.senders), ("receive", topic.receivers)):
            for party in parties:
                operations[operation_id(party, action, topic)] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{cid}"},
                    "summary": f"{party} {action}s {topic.name(prefix)} (key: {topic.key})",
                    "messages": [{"$ref": f"#/channels/{cid}/messages/{name}"}],
                    "x-llmops-party": party,
                }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "LLMOps platform topics",
            "version": version,
            "description": "Every topic of the platform: what it carries (one JSON event per "
            "record), its key, partitions, cleanup and retention, and which services and tools "
            "send and receive it. Generated from shared/contracts/topics.py and events.py.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": bootstrap,
                "protocol": "kafka",
                "description": "The platform's Kafka cluster (KAFKA_BOOTSTRAP_SERVERS).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def export_asyncapi(directory: Path, version: str) -> Path:
    """Write ``asyncapi.json`` into ``directory``; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "asyncapi.json"
    path.write_text(json.dumps(asyncapi_document(version), indent=2, sort_keys=False) + "\n")
    return path
