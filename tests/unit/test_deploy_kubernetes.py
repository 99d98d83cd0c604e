"""deploy/kubernetes: settings the real parser accepts, probes on /healthy, one vCPU per worker,
a grace period that covers the drain, the shared Redis outbox and the path-mount Ingress."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tagserver.container.loader import load_container
from tagserver.settings import Settings
from tests.deploy_files import (
    KUBERNETES,
    REPO,
    Kubernetes,
    container_env,
    option,
    read_yaml_documents,
    settings_from,
)


@pytest.fixture(scope="module")
def cluster() -> Kubernetes:
    return Kubernetes.load()


@pytest.fixture(scope="module")
def secrets(cluster: Kubernetes) -> dict[str, dict[str, str]]:
    secret = cluster.get("Secret", "tagserver-secrets")
    values = secret["stringData"]
    assert all(isinstance(v, str) for v in values.values()), "quote every value"
    return {"tagserver-secrets": values}


def pod_spec(cluster: Kubernetes) -> dict[str, Any]:
    spec: dict[str, Any] = cluster.get("Deployment", "tagserver")["spec"]["template"]["spec"]
    return spec


def tagserver_container(cluster: Kubernetes) -> dict[str, Any]:
    [container] = pod_spec(cluster)["containers"]
    assert container["name"] == "tagserver"
    return dict(container)


@pytest.fixture(scope="module")
def env(cluster: Kubernetes, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    return container_env(tagserver_container(cluster), secrets)


@pytest.fixture(scope="module")
def settings(env: dict[str, str]) -> Settings:
    loaded, unknown = settings_from(env)
    assert unknown == set(), f"not tagserver settings: {sorted(unknown)}"
    return loaded


def port_number(container: dict[str, Any], name: str) -> int:
    [port] = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    return int(port)


def test_settings_and_shipped_container_accept_the_example_values(
    env: dict[str, str], settings: Settings
) -> None:
    assert not settings.uses_dev_key
    load_container(REPO / "tags", environ=env)


def test_two_or_more_replicas_spread_and_kept_during_disruptions(cluster: Kubernetes) -> None:
    deployment = cluster.get("Deployment", "tagserver")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    budget = cluster.get("PodDisruptionBudget", "tagserver")["spec"]
    assert budget["minAvailable"] >= 1
    for selector in (deployment["spec"]["selector"], budget["selector"]):
        assert selector["matchLabels"].items() <= labels.items()


def test_probes_ask_healthy_on_the_served_port(cluster: Kubernetes) -> None:
    container = tagserver_container(cluster)
    served = int(option(container["command"], "--port"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthy", probe
        assert port_number(container, get["port"]) == served, probe


def test_one_vcpu_per_worker(cluster: Kubernetes) -> None:
    container = tagserver_container(cluster)
    resources = container["resources"]
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"] == "1"
    assert option(container["command"], "--workers") == resources["requests"]["cpu"]


def test_grace_period_covers_pre_stop_requests_and_outbox_drain(
    cluster: Kubernetes, settings: Settings
) -> None:
    container = tagserver_container(cluster)
    sleep, seconds = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    grace = pod_spec(cluster)["terminationGracePeriodSeconds"]
    # uvicorn waits for requests in flight up to drain + 5 s (cli.py), then the sender drains
    assert grace >= int(seconds) + 2 * settings.drain_timeout_s + 5


def test_the_outbox_is_the_shared_redis_with_an_append_only_file(
    cluster: Kubernetes, settings: Settings, secrets: dict[str, dict[str, str]]
) -> None:
    url = urlsplit(settings.outbox)
    assert url.scheme == "redis"
    assert url.password == secrets["tagserver-secrets"]["REDIS_PASSWORD"]
    service = cluster.get("Service", url.hostname or "")
    assert url.port in [p["port"] for p in service["spec"]["ports"]]
    redis_pod = cluster.get("StatefulSet", "redis")["spec"]["template"]
    assert service["spec"]["selector"].items() <= redis_pod["metadata"]["labels"].items()
    [container] = redis_pod["spec"]["containers"]
    command = " ".join(container["command"])
    for flag in (
        "--appendonly yes",
        "--maxmemory-policy noeviction",
        '--requirepass "$REDIS_PASSWORD"',
    ):
        assert flag in command
    redis_env = container_env(container, secrets)
    assert redis_env["REDIS_PASSWORD"] == redis_env["REDISCLI_AUTH"] == url.password
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]


def test_metrics_port_matches_the_container_port_and_scrape_annotation(
    cluster: Kubernetes, settings: Settings
) -> None:
    container = tagserver_container(cluster)
    annotations = cluster.get("Deployment", "tagserver")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert settings.metrics_port == port_number(container, "metrics")
    assert annotations["prometheus.io/port"] == str(settings.metrics_port)
    assert settings.metrics_host == "0.0.0.0"


def test_writable_paths_are_volumes_under_a_read_only_root(
    cluster: Kubernetes, settings: Settings
) -> None:
    container = tagserver_container(cluster)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounted, "prometheus-client's multiprocess folder"
    assert str(settings.keys_path.parent) in mounted


def test_service_and_ingress_mount_tagserver_under_the_configured_paths(
    cluster: Kubernetes, settings: Settings
) -> None:
    service = cluster.get("Service", "tagserver")["spec"]
    container = tagserver_container(cluster)
    labels = cluster.get("Deployment", "tagserver")["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    [http] = [p for p in service["ports"] if p["name"] == "http"]
    assert port_number(container, http["targetPort"]) == int(option(container["command"], "--port"))

    ingress = cluster.get("Ingress", "shop")["spec"]
    [rule] = ingress["rules"]
    assert rule["host"] in settings.site_domains
    assert any(rule["host"] in tls["hosts"] for tls in ingress["tls"])
    [mount] = [p for p in rule["http"]["paths"] if p["backend"]["service"]["name"] == "tagserver"]
    assert mount["pathType"] == "Prefix"
    assert settings.script_path.startswith(mount["path"])
    assert settings.collect_path.startswith(mount["path"])
    assert mount["backend"]["service"]["port"]["name"] == http["name"]


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    [kustomization] = read_yaml_documents(KUBERNETES / "kustomization.yaml")
    manifests = {p.name for p in KUBERNETES.glob("*.yaml")}
    assert set(kustomization["resources"]) == manifests - {
        "kustomization.yaml",
        "secret.example.yaml",
    }
