"""The Helm chart (infra/helm/llmops) through the real helm v4 (`make test` builds it once from
the Go module proxy): it lints, and what it renders runs every service of the host's registry
with its probes, takes every setting the README lists, keeps secrets in a Secret, ships the
prompts and alert rules the repository has, and never runs an image tagged `latest`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.host import SERVICES
from tests.unit.test_readme_settings import SETTINGS, env_names

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "infra" / "helm" / "llmops"
# the settings that are secrets go to the Secret, never to a ConfigMap
SECRETS = {
    "INFERENCE_API_KEYS",
    "LLMOPS_TRACE_SECRET",
    "QDRANT_API_KEY",
    "INFERENCE_OPENAI_API_KEY",
    "S3_SECRET_ACCESS_KEY",
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    binary = os.environ.get("LLMOPS_HELM", "")
    # never a skip: `make test` builds it, and a test run without it has failed to set up
    assert binary and Path(binary).exists(), f"no helm at LLMOPS_HELM={binary!r}: run make test"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def render(tmp_path: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    args = ["template", "rel", str(CHART)]
    if values is not None:
        file = tmp_path / "values.yaml"
        file.write_text(yaml.safe_dump(values))
        args += ["-f", str(file)]
    out = helm(*args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_the_chart_lints() -> None:
    out = helm("lint", "--strict", str(CHART))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_service_runs_as_a_deployment_with_its_probes_and_a_pinned_image(
    tmp_path: Path,
) -> None:
    docs = render(tmp_path)
    deployments = of_kind(docs, "Deployment")
    assert set(deployments) == {f"rel-{name}" for name in SERVICES}
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    for name in SERVICES:
        pod = deployments[f"rel-{name}"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == ["run", name]
        assert container["image"] == f"llmops:{app_version}"
        assert container["resources"]["requests"]["memory"], name
    inference = deployments["rel-inference"]["spec"]["template"]["spec"]["containers"][0]
    assert inference["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert inference["livenessProbe"]["httpGet"]["path"] == "/healthz"
    monitoring = deployments["rel-monitoring"]["spec"]["template"]["spec"]["containers"][0]
    assert monitoring["readinessProbe"]["httpGet"]["path"] == "/metrics"
    # monitoring's windows need every partition: one replica, no autoscaler
    assert deployments["rel-monitoring"]["spec"]["replicas"] == 1
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert "rel-monitoring" not in hpas and "rel-inference" in hpas
    assert hpas["rel-ingestion"]["spec"]["maxReplicas"] <= 4, "ingest.documents' partitions"
    pdbs = of_kind(docs, "PodDisruptionBudget")
    assert {"rel-ingestion", "rel-embedding", "rel-inference", "rel-kafka"} <= set(pdbs)
    # the chart's own Kafka: replicated, topics made only by the platform
    kafka = of_kind(docs, "StatefulSet")["rel-kafka"]
    env = {e["name"]: e["value"] for e in kafka["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert kafka["spec"]["replicas"] == 3
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    images = [
        c["image"]
        for d in docs
        if "template" in d.get("spec", {})
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert not [i for i in images if i.endswith(":latest") or ":" not in i], images


def test_latest_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "v.yaml"
    file.write_text("image: {tag: latest}\n")
    out = helm("template", "rel", str(CHART), "-f", str(file))
    assert out.returncode != 0 and "image.tag=latest is refused" in out.stderr


def test_every_readme_setting_reaches_the_services_and_secrets_stay_secret(
    tmp_path: Path,
) -> None:
    names = {n for cls in SETTINGS for n in env_names(cls)} | {"LLMOPS_TRACE_SECRET"}
    plain = {n: f"v-{n.lower()}" for n in sorted(names - SECRETS)}
    secret = {n: f"s-{n.lower()}" for n in sorted(SECRETS)}
    docs = render(tmp_path, {"config": plain, "secrets": secret})
    config = of_kind(docs, "ConfigMap")["rel-config"]["data"]
    stored = of_kind(docs, "Secret")["rel-secrets"]["stringData"]
    for n, v in plain.items():
        assert config.get(n) == v, n
    for n, v in secret.items():
        assert stored.get(n) == v, n
        assert n not in config, f"{n} in a ConfigMap"
    for d in of_kind(docs, "Deployment").values():
        sources = d["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "rel-config"}} in sources
        assert {"secretRef": {"name": "rel-secrets"}} in sources


def test_an_existing_kafka_and_qdrant_replace_the_charts_own(tmp_path: Path) -> None:
    strimzi = "my-cluster-kafka-bootstrap.kafka:9092"
    docs = render(
        tmp_path,
        {
            "kafka": {"bootstrapServers": strimzi, "replicationFactor": 3},
            "qdrant": {"url": "http://qdrant.vectors:6333"},
        },
    )
    assert not of_kind(docs, "StatefulSet"), "no Kafka and no Qdrant of the chart's own"
    config = of_kind(docs, "ConfigMap")["rel-config"]["data"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == strimzi
    assert config["KAFKA_REPLICATION_FACTOR"] == "3"
    assert config["QDRANT_URL"] == "http://qdrant.vectors:6333"
    # the trace secret every pod shares is made when not given
    assert len(of_kind(docs, "Secret")["rel-secrets"]["stringData"]["LLMOPS_TRACE_SECRET"]) == 48


@pytest.mark.parametrize("folder", ["prompts", "rules"])
def test_the_prompts_and_rules_are_the_repositorys_own(tmp_path: Path, folder: str) -> None:
    docs = render(tmp_path)
    data = of_kind(docs, "ConfigMap")[f"rel-{folder}"]["data"]
    files = {
        str(p.relative_to(ROOT / folder)): p.read_text()
        for p in (ROOT / folder).rglob("*")
        if p.is_file()
    }
    assert files and {k.replace("__", "/"): v.strip() for k, v in data.items()} == {
        k: v.strip() for k, v in files.items()
    }
    if folder == "prompts":
        volumes = of_kind(docs, "Deployment")["rel-inference"]["spec"]["template"]["spec"][
            "volumes"
        ]
        (prompts,) = [v for v in volumes if v["name"] == "prompts"]
        assert {i["path"] for i in prompts["configMap"]["items"]} == set(files)
