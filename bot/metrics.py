"""`GET /metrics`: what an operator watches, in Prometheus's text format (prometheus-client).

Two kinds of figures. What the store holds (the newest snapshot's and refresh's age, model skill, alerts by rule and
state, the outbox by kind and status and its oldest waiting message, the scheduler leader) is read from the store
when scraped, so every replica and worker reports the same numbers and none has to be scraped in particular. What
happens inside processes (requests answered, by command, with their latency; Slack API calls) is counted by each;
with `run --workers N` the workers share their counts through files, so a scrape of any worker gives the service's
totals (see `ServiceMetrics`). Replicas on other machines are scraped each, and summed in Prometheus.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from salesintel.engine.store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 10.0)
"""Seconds; 3.0 is Slack's deadline for an answer."""


class StoreCollector(Collector):
    """Gauges read from the store at scrape time."""

    def __init__(
        self,
        store: Callable[[], Store],
        now: Callable[[], datetime],
        leader: Callable[[], str | None],
        leading: Callable[[], bool],
    ):
        self._store, self._now, self._leader, self._leading = store, now, leader, leading

    def collect(self) -> Iterator:
        store, now = self._store(), self._now()
        snapshot, refresh = store.latest_snapshot(), store.latest_refresh()
        age = GaugeMetricFamily("salesintel_snapshot_age_seconds", "Age of the newest promoted CRM snapshot")
        if snapshot:
            age.add_metric([], (now - snapshot.taken_at).total_seconds())
        yield age
        computed = GaugeMetricFamily("salesintel_refresh_age_seconds", "Time since the newest refresh was computed")
        auc = GaugeMetricFamily("salesintel_model_holdout_auc", "The model's AUC on its time-ordered holdout")
        skill = GaugeMetricFamily("salesintel_model_has_skill", "1 when the model beats the base rate on its holdout")
        if refresh:
            computed.add_metric([], (now - refresh.computed_at).total_seconds())
            model = refresh.metrics.model or {}
            evaluation = (model.get("evaluation") or {}).get("auc") or {}
            if evaluation.get("auc") is not None:
                auc.add_metric([], float(evaluation["auc"]))
            if "has_skill" in model:
                skill.add_metric([], 1.0 if model["has_skill"] else 0.0)
        yield from (computed, auc, skill)
        alerts = GaugeMetricFamily(
            "salesintel_alerts", "Alert episodes by rule and state", labels=["rule", "state", "group"]
        )
        for (rule, state, control), n in sorted(store.alerts.counts().items()):
            alerts.add_metric([rule, state, "control" if control else "treated"], n)
        yield alerts
        outbox = GaugeMetricFamily(
            "salesintel_outbox_messages", "Outbox messages by kind and status", labels=["kind", "status"]
        )
        for (kind, status), n in sorted(store.outbox.counts().items()):
            outbox.add_metric([kind, status], n)
        yield outbox
        oldest = store.outbox.oldest_pending_created_at()
        waiting = GaugeMetricFamily(
            "salesintel_outbox_oldest_pending_age_seconds", "Age of the oldest message not yet sent (0 when none waits)"
        )
        waiting.add_metric([], (now - oldest).total_seconds() if oldest else 0.0)
        yield waiting
        leader = InfoMetricFamily("salesintel_scheduler_leader", "The process holding the scheduler lease")
        leader.add_metric([], {"holder": self._leader() or ""})
        yield leader
        runs = store.job_runs.latest_finished()
        took = GaugeMetricFamily(
            "salesintel_job_last_duration_seconds", "How long each job's newest finished run took", labels=["job"]
        )
        since = GaugeMetricFamily(
            "salesintel_job_last_finished_age_seconds", "Time since each job's newest run finished", labels=["job"]
        )
        failed = GaugeMetricFamily("salesintel_job_last_failed", "1 when a job's newest run failed", labels=["job"])
        for job, (status, claimed, finished) in sorted(runs.items()):
            took.add_metric([job], (finished - claimed).total_seconds())
            since.add_metric([job], (now - finished).total_seconds())
            failed.add_metric([job], 1.0 if status == "failed" else 0.0)
        yield from (took, since, failed)
        this = GaugeMetricFamily("salesintel_leading", "1 when the scraped process leads", labels=["process"])
        this.add_metric([str(os.getpid())], 1.0 if self._leading() else 0.0)
        yield this


class ServiceMetrics:
    """The service's registry: the store's gauges, and request and Slack API latency.

    One process counts in memory. With `run --workers N`, the first process sets PROMETHEUS_MULTIPROC_DIR before
    anything imports prometheus-client (`bot.cli`), so every worker writes its counts to files there and a scrape of
    any of them reports the sum over all of them (prometheus-client's multiprocess mode), workers restarted after a
    crash included."""

    def __init__(self, store_state: StoreCollector):
        self.registry = CollectorRegistry()  # no describe at registration: the store is read only when scraped
        self.registry.register(store_state)
        shared = os.environ.get(MULTIPROCESS_DIR)
        if shared:
            MultiProcessCollector(self.registry, shared)
        counted_in = CollectorRegistry() if shared else self.registry  # in multiprocess mode the files are the truth
        self.requests = Histogram(
            "salesintel_request_seconds",
            "Slack requests answered (by every worker of the service), by command, with their latency",
            ["command"],
            buckets=REQUEST_BUCKETS,
            registry=counted_in,
        )
        self.slack_calls = Histogram(
            "salesintel_slack_api_seconds",
            "Slack Web API calls made (by every worker of the service), by method and outcome (ok, Slack's error code,"
            " http_<status>, timeout, connection)",
            ["method", "outcome"],
            buckets=REQUEST_BUCKETS,
            registry=counted_in,
        )

    def observe_slack(self, method: str, seconds: float, outcome: str) -> None:
        self.slack_calls.labels(method, outcome).observe(seconds)

    def observe(self, command: str, seconds: float) -> None:
        self.requests.labels(command).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's switch to multiprocess mode: read when it is first imported."""
