"""deploy/: the Grafana dashboard and the alert rules query only metrics the project
exports, with labels those metrics have; the Prometheus and docker-compose files are
well-formed and point at each other. (No Docker engine here: the files are checked, not run.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from qbsync import metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "qbsync-dashboard.json"

METRIC_TOKEN = re.compile(r"\b(?:qbsync|kafka)_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b((?:qbsync|kafka)_[a-z0-9_]+)\s*\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
LABEL_IN_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
PROMETHEUS_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series


def exported_series() -> dict[str, set[str]]:
    """Every series name a qbsync process exports, with its labels."""
    series: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            labels = set(value._labelnames)
            for family in value.describe():
                if family.type == "counter":
                    series[family.name + "_total"] = labels
                elif family.type == "histogram":
                    for suffix in ("_bucket", "_sum", "_count"):
                        series[family.name + suffix] = labels | (
                            {"le"} if suffix == "_bucket" else set()
                        )
                else:
                    series[family.name] = labels
    for gauge in metrics.LAG_EXPORTER_GAUGES:
        series[gauge.name] = set(gauge.labels)
    return series


def dashboard_expressions() -> list[str]:
    def walk(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["expr"]] if isinstance(node.get("expr"), str) else []
            return found + [e for value in node.values() for e in walk(value)]
        if isinstance(node, list):
            return [e for item in node for e in walk(item)]
        return []

    return walk(json.loads(DASHBOARD.read_text()))


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def problems_in(expression: str, series: dict[str, set[str]]) -> list[str]:
    problems = []
    names = set(METRIC_TOKEN.findall(expression))
    problems += [f"{name} is not exported" for name in sorted(names - series.keys())]
    known = names & series.keys()
    for name, matchers in SELECTOR.findall(expression):
        for label in LABEL_IN_MATCHER.findall(matchers):
            if name in series and label not in series[name] | PROMETHEUS_LABELS:
                problems.append(f"{name} has no label {label}")
    available = set().union(*(series[n] for n in known)) | PROMETHEUS_LABELS if known else set()
    for grouping in GROUPING.findall(expression):
        for label in (part.strip() for part in grouping.split(",") if part.strip()):
            if label not in available:
                problems.append(f"no metric of the expression has the label {label}")
    return problems


def test_the_checker_catches_unknown_metrics_and_labels() -> None:
    series = exported_series()
    assert problems_in("rate(qbsync_messages_consumed_total[5m])", series) == []
    assert problems_in("rate(qbsync_messages_eaten_total[5m])", series) == [
        "qbsync_messages_eaten_total is not exported"
    ]
    assert problems_in('kafka_consumergroup_lag{group="x"}', series) == [
        "kafka_consumergroup_lag has no label group"
    ]
    assert problems_in("sum by (realm) (qbsync_quickbooks_throttled_total)", series) == [
        "no metric of the expression has the label realm"
    ]


def test_every_dashboard_query_uses_exported_metrics_and_their_labels() -> None:
    series = exported_series()
    expressions = dashboard_expressions()
    assert len(expressions) >= 20
    problems = {e: p for e in expressions if (p := problems_in(e, series))}
    assert problems == {}


def test_the_dashboard_shows_lag_throughput_quickbooks_dead_letters_and_sync_runs() -> None:
    used = {name for e in dashboard_expressions() for name in METRIC_TOKEN.findall(e)}
    assert {
        "kafka_consumergroup_lag",
        "qbsync_messages_consumed_total",
        "qbsync_messages_produced_total",
        "qbsync_quickbooks_requests_total",
        "qbsync_quickbooks_throttled_total",
        "qbsync_dlq_pending_messages",
        "qbsync_sync_run_steps_total",
        "qbsync_links_changed_total",
    } <= used


def test_alerts_cover_growing_lag_waiting_dead_letters_and_reconnects() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    by_name = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert "kafka_consumergroup_lag" in by_name["ConsumerLagGrowing"]["expr"]
    assert by_name["ConsumerLagGrowing"]["for"] == "15m"
    assert "qbsync_dlq_pending_messages > 0" in by_name["DeadLetterTopicNotEmpty"]["expr"]
    assert (
        "qbsync_connections_needing_reconnect"
        in by_name["QuickBooksConnectionNeedsReconnect"]["expr"]
    )
    series = exported_series()
    # The `metered` label of QuickBooks requests comes with the quota issue (its helper
    # adds it); until it lands, that one label is the only thing allowed to be missing.
    series["qbsync_quickbooks_requests_total"] = series["qbsync_quickbooks_requests_total"] | {
        "metered"
    }
    assert {e: p for e in alert_expressions() if (p := problems_in(e, series))} == {}


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_does_not_and_a_runbook() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    checks = [
        check
        for path in sorted((DEPLOY / "prometheus").glob("alerts*_test.yml"))
        for test in yaml.safe_load(path.read_text())["tests"]
        for check in test["alert_rule_test"]
    ]
    operations = (DEPLOY.parent / "docs" / "operations.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in operations.splitlines()
        if line.startswith("#")
    }
    for alert in alerts:
        name = alert["alert"]
        mine = [check for check in checks if check["alertname"] == name]
        assert any(check["exp_alerts"] for check in mine), f"{name}: no test fires it"
        assert any(not check["exp_alerts"] for check in mine), f"{name}: no test keeps it quiet"
        url = alert["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/operations.md" and anchor in anchors, f"{name}: {url}"


def test_prometheus_scrapes_every_service_and_the_exporter_where_compose_serves_them() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    (alertmanager,) = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager == "alertmanager:9093" and "alertmanager" in compose["services"]
    routes = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {receiver["name"] for receiver in routes["receivers"]}
    assert routes["route"]["receiver"] in receivers
    assert {route["receiver"] for route in routes["route"]["routes"]} <= receivers
    targets = {
        job["job_name"]: target
        for job in prometheus["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert set(targets) == {"importer", "matcher", "pusher", "lag-exporter"}
    services = compose["services"]
    for job, target in targets.items():
        host, port = target.split(":")
        assert host == job and host in services
        assert services[host]["environment"]["QBSYNC_HTTP_PORT"] == port


def test_compose_brings_up_the_system_and_its_monitoring_with_files_that_exist() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {
        "kafka",
        "postgres",
        "importer",
        "matcher",
        "pusher",
        "lag-exporter",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    assert services["kafka"]["image"].startswith("apache/kafka:4.1")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"] == "postgres:15"
    for name, module in (
        ("importer", "services.importer"),
        ("matcher", "services.matcher"),
        ("pusher", "services.pusher"),
        ("lag-exporter", "qbsync.lag_exporter"),
    ):
        assert services[name]["command"] == ["python", "-m", module]
        assert services[name]["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert (DEPLOY / services["importer"]["build"]["dockerfile"].removeprefix("deploy/")).exists()
    for name in ("prometheus", "alertmanager", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), volume
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "qbsync.yml").read_text()
    )
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert any(
        volume.startswith("./grafana/qbsync-dashboard.json:" + dashboards_dir + "/")
        for volume in services["grafana"]["volumes"]
    )
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
