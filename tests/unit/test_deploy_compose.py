"""deploy/docker-compose.yml and its nginx: settings the real parser accepts, the path mount,
the shared Redis outbox, health checks and stop times (no Docker needed; ``nginx -t`` when
nginx is installed)."""

from __future__ import annotations

import inspect
import ipaddress
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn

from tagserver.container.loader import load_container
from tagserver.settings import Settings
from tagserver.snippet import QUEUE_STUB, render_snippets, script_tag, script_urls
from tests.deploy_files import (
    COMPOSE_FILE,
    DEPLOY,
    ENV_EXAMPLE,
    NGINX_CONF,
    REPO,
    Directive,
    duration_s,
    option,
    parse_nginx,
    read_env_file,
    read_yaml_documents,
    settings_from,
)

INSTANCES = ("tagserver-1", "tagserver-2")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    [doc] = read_yaml_documents(COMPOSE_FILE)
    return doc


@pytest.fixture(scope="module")
def nginx() -> Directive:
    return parse_nginx(NGINX_CONF.read_text())


def instance_env(compose: dict[str, Any], name: str) -> dict[str, str]:
    """What the instance's process sees: its ``env_file`` (the example), then ``environment``."""
    service = compose["services"][name]
    assert service["env_file"] == [".env"]
    environment = service["environment"]
    assert all(isinstance(v, str) for v in environment.values()), "quote every value"
    return {**read_env_file(ENV_EXAMPLE), **environment}


@pytest.fixture(scope="module")
def settings(compose: dict[str, Any]) -> Settings:
    loaded, unknown = settings_from(instance_env(compose, INSTANCES[0]))
    assert unknown == set(), f"not tagserver settings: {sorted(unknown)}"
    return loaded


def ssl_server(nginx: Directive) -> Directive:
    [server] = [s for s in nginx.all("server") if ["443", "ssl"] in s.values("listen")]
    return server


def test_two_instances_of_the_repository_image_with_one_configuration(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {*INSTANCES, "redis", "proxy"}
    first = services[INSTANCES[0]]
    assert all(services[name] == first for name in INSTANCES), "the instances must not differ"
    build = first["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == REPO / "Dockerfile"
    assert not first.get("ports"), "instances are reached through the proxy only"


def test_settings_and_shipped_container_accept_the_example_values(
    compose: dict[str, Any], settings: Settings
) -> None:
    env = instance_env(compose, INSTANCES[0])
    assert not settings.uses_dev_key
    load_container(REPO / "tags", environ=env)  # META_PIXEL_ID and META_ACCESS_TOKEN are there
    assert settings.drain_timeout_s == 10


def test_the_outbox_is_the_shared_redis_with_an_append_only_file(
    compose: dict[str, Any], settings: Settings
) -> None:
    url = urlsplit(settings.outbox)
    assert url.scheme == "redis"
    assert (url.hostname, url.port) == ("redis", 6379)
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert option(command, "--appendonly") == "yes"
    assert option(command, "--maxmemory-policy") == "noeviction"
    assert any(v.endswith(":/data") for v in redis["volumes"]), "the append-only file on a volume"
    assert not redis.get("ports")
    for name in INSTANCES:
        assert set(compose["services"][name]["networks"]) >= set(redis["networks"])
        assert compose["services"][name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_health_checks_ask_healthy_on_the_served_port(compose: dict[str, Any]) -> None:
    service = compose["services"][INSTANCES[0]]
    port = option(service["command"], "--port")
    kind, *command = service["healthcheck"]["test"]
    assert kind == "CMD" and command[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{port}/healthy" in command[2]
    for name in INSTANCES:
        assert compose["services"]["proxy"]["depends_on"][name]["condition"] == "service_healthy"


def test_stop_grace_period_covers_requests_and_outbox_drain(
    compose: dict[str, Any], settings: Settings
) -> None:
    grace = duration_s(compose["services"][INSTANCES[0]]["stop_grace_period"])
    # uvicorn waits for requests in flight up to drain + 5 s (cli.py), then the sender drains
    assert grace >= 2 * settings.drain_timeout_s + 5


def test_only_the_proxy_is_trusted_for_the_visitor_ip(
    compose: dict[str, Any], settings: Settings
) -> None:
    proxy = compose["services"]["proxy"]
    [(network, attached)] = proxy["networks"].items()
    address = ipaddress.ip_address(attached["ipv4_address"])
    assert settings.trusted_proxies == (ipaddress.ip_network(address),)
    [subnet] = compose["networks"][network]["ipam"]["config"]
    assert address in ipaddress.ip_network(subnet["subnet"])
    for name in INSTANCES:
        assert network in compose["services"][name]["networks"]


def test_proxy_mounts_tagserver_under_the_configured_paths(
    nginx: Directive, settings: Settings
) -> None:
    server = ssl_server(nginx)
    assert set(server.one("server_name").args) <= set(settings.site_domains)
    mounts = [d for d in server.all("location") if d.all("proxy_pass")]
    assert len(mounts) == 1
    [prefix] = mounts[0].args
    assert prefix.endswith("/")
    assert settings.script_path.startswith(prefix) and settings.collect_path.startswith(prefix)
    target = urlsplit(mounts[0].one("proxy_pass").args[0])
    assert target.path == "", "a URI in proxy_pass would rewrite the path tagserver routes on"
    headers = {args[0].lower(): args[1] for args in mounts[0].values("proxy_set_header")}
    assert headers["host"] == "$host", "tagserver sets cookies only for a site domain's Host"
    assert headers["x-forwarded-for"] == "$proxy_add_x_forwarded_for", "append, never replace"


def test_proxy_balances_both_instances_on_their_port(
    nginx: Directive, compose: dict[str, Any]
) -> None:
    [mount] = [d for d in ssl_server(nginx).all("location") if d.all("proxy_pass")]
    name = urlsplit(mount.one("proxy_pass").args[0]).hostname
    [block] = [u for u in nginx.all("upstream") if u.args == [name]]  # the file is http context
    servers = {args[0] for args in block.values("server")}
    port = option(compose["services"][INSTANCES[0]]["command"], "--port")
    assert servers == {f"{instance}:{port}" for instance in INSTANCES}
    # nginx must drop an idle connection before uvicorn does (tagserver keeps its default)
    assert "timeout_keep_alive" not in (REPO / "tagserver" / "cli.py").read_text()
    uvicorn_idle_s = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default
    [[idle]] = block.values("keepalive_timeout")
    assert duration_s(idle) < uvicorn_idle_s


def test_proxy_files_are_mounted(compose: dict[str, Any], nginx: Directive) -> None:
    mounts = {}
    for volume in compose["services"]["proxy"]["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    assert (DEPLOY / mounts["/etc/nginx/conf.d/default.conf"]).resolve() == NGINX_CONF
    server = ssl_server(nginx)
    for directive in ("ssl_certificate", "ssl_certificate_key"):
        path = server.one(directive).args[0]
        assert any(path.startswith(target + "/") for target in mounts), path
    [root] = server.one("location", "/").one("root").args
    assert (DEPLOY / mounts[root] / "index.html").is_file()


def test_the_shop_page_carries_the_snippet_of_these_settings(settings: Settings) -> None:
    page = (DEPLOY / "shop" / "index.html").read_text()
    [url] = script_urls(site_domains=settings.site_domains, script_path=settings.script_path)
    assert f"<script>{QUEUE_STUB}</script>" in page
    assert script_tag(url) in page
    assert script_tag(url) in render_snippets(
        site_domains=settings.site_domains,
        allowed_origins=settings.allowed_origins,
        script_path=settings.script_path,
    )


def test_secrets_stay_out_of_git_and_of_the_image_build() -> None:
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert "/deploy/.env" in ignored and "/deploy/certs/" in ignored
    docker_ignored = {
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }  # fmt: skip
    assert {"deploy/.env", "deploy/certs"} <= docker_ignored
    copied = {
        word.rstrip("/")
        for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")
        for word in line.split()[1:-1]
    }  # fmt: skip
    assert copied == {"pyproject.toml", "README.md", "tagserver", "tags"}
    assert not copied & docker_ignored, "the image needs these in its build context"


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    """``nginx -t`` on the shop's configuration, with the instances' names replaced by an address
    (nginx resolves upstream names when it loads) and a throwaway certificate."""
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed (Debian package nginx); the parse tests above ran")
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is needed for a throwaway certificate"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=www.shop.example", "-keyout", str(tmp_path / "privkey.pem"),
         "-out", str(tmp_path / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    text = NGINX_CONF.read_text().replace("/etc/nginx/certs/", f"{tmp_path}/")
    text = text.replace("/usr/share/nginx/html", str(DEPLOY / "shop"))
    for number, instance in enumerate(INSTANCES, start=1):
        text = text.replace(f"{instance}:", f"127.0.0.{number}:")
    (tmp_path / "shop.conf").write_text(text)
    temp = " ".join(f"{kind}_temp_path {tmp_path}/{kind};" for kind in ("client_body", "proxy"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log {tmp_path}/access.log; {temp} include {tmp_path}/shop.conf; }}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
