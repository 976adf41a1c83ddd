"""The process's Prometheus metrics (prometheus-client), one registry per engine.

Each process counts what it does and serves its own figures (`GET /metrics`, or the ops port
of `txmsg serve --metrics-port` and `txmsg worker --health-port`): Prometheus scrapes every
process and sums. On the hot path only counters and histograms are touched (a lock-free
increment each); the queue depth is read from the database when scraped, not kept up to date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from txmsg.core.rate_limit import WindowUse

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Trigger to sent: a transactional send takes tens of milliseconds, a retried one minutes.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


class Metrics:
    """The metrics one process records; `exposition()` is the text Prometheus reads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[object, ...], Any] = {}
        r = self.registry
        # The process's CPU, memory and open files (process_*), read from /proc when scraped.
        ProcessCollector(registry=r)
        self.queue_depth = Gauge(
            "txmsg_queue_depth",
            "Events in the queue by lane and status (read from the database when scraped)",
            ["lane", "status"],
            registry=r,
        )
        # The `<name>_up` convention of exporters (pg_up, mysql_up): 0 when the scrape could
        # not read the database, the queue depth then left out rather than stale.
        self.database_up = Gauge(
            "txmsg_database_up",
            "Whether this scrape read the database (1) or could not (0: txmsg_queue_depth absent)",
            registry=r,
        )
        # A channel cap's counters, read when scraped like the depth: `used` at `limit`
        # means the cap binds (its due events wait), rather than a stuck queue.
        self.cap_used = Gauge(
            "txmsg_channel_cap_used",
            "Sends counted in the current window of a channel configuration's rate_limit"
            " (window: second, day; share: all, or bulk for the bulk share)",
            ["channel_config", "window", "share"],
            registry=r,
        )
        self.cap_limit = Gauge(
            "txmsg_channel_cap_limit",
            "The limit of each window of a channel configuration's rate_limit (as cap_used)",
            ["channel_config", "window", "share"],
            registry=r,
        )
        self.cap_held = Gauge(
            "txmsg_channel_cap_held",
            "Due pending events a spent channel cap holds, by channel configuration and lane"
            " (read from the database when scraped)",
            ["channel_config", "lane"],
            registry=r,
        )
        self.trigger_to_sent = Histogram(
            "txmsg_trigger_to_sent_seconds",
            "Time from a trigger (or its scheduled time) to the provider's acceptance",
            ["channel", "priority"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sends = Counter(
            "txmsg_sends_total",
            "Send attempts by channel and outcome (the event's status after it)",
            ["channel", "outcome"],
            registry=r,
        )
        self.provider_errors = Counter(
            "txmsg_provider_errors_total",
            "Provider errors by channel and kind (transient: retried; permanent; bounce;"
            " opt_out: the recipient opted out at the provider, an SMS STOP)",
            ["channel", "kind"],
            registry=r,
        )
        self.provider_sends = Counter(
            "txmsg_provider_sends_total",
            "Messages sent by each provider of a configuration with fallbacks (relay host:port,"
            " or Twilio account/sender)",
            ["channel", "provider"],
            registry=r,
        )
        self.provider_failures = Counter(
            "txmsg_provider_failures_total",
            "Failures of a provider itself, by channel, provider (relay host:port, or Twilio"
            " account/sender) and kind (auth, tls, connect, timeout, sender, protocol, 4xx,"
            " 5xx); a refusal of one message is not one",
            ["channel", "provider", "kind"],
            registry=r,
        )
        self.write_batch = Histogram(
            "txmsg_write_batch_size",
            "Items (triggers, outcomes, log entries) committed by one write cycle",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.write_commit = Histogram(
            "txmsg_write_commit_seconds",
            "Duration of one write cycle's transaction, commit included",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.export_runs = Counter(
            "txmsg_export_runs_total",
            "Export flow runs by flow and result",
            ["flow", "status"],
            registry=r,
        )

    def count_outcome(
        self, channel: str, outcome: str, error: str | None, provider: str | None = None
    ) -> None:
        """A recorded send outcome, its provider error's kind when it is one, and the provider
        that sent it when the configuration has several."""
        self._child(self.sends, channel, outcome).inc()
        if error is not None:
            self._child(self.provider_errors, channel, error).inc()
        if provider is not None:
            self._child(self.provider_sends, channel, provider).inc()

    def count_provider_failure(self, channel: str, provider: str, kind: str) -> None:
        """A provider failed a send for a reason of its own (`kind`: one of
        `core.delivery.FAULT_KINDS`)."""
        self._child(self.provider_failures, channel, provider, kind).inc()

    def observe_sent(self, channel: str, priority: str, seconds: float) -> None:
        self._child(self.trigger_to_sent, channel, priority).observe(seconds)

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        # `labels()` takes a lock and builds a key on each call: keep the children found.
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def set_queue_depth(self, rows: Iterable[tuple[str, str, int]] | None) -> None:
        """(lane, status, count) rows: the whole queue, replacing the last scrape's figures;
        None: the database could not be read (the depth is left out, `txmsg_database_up` 0)."""
        self.queue_depth.clear()
        self.database_up.set(0 if rows is None else 1)
        for lane, status, count in rows or ():
            self.queue_depth.labels(lane, status).set(count)

    def set_channel_caps(
        self, uses: Mapping[str, list[WindowUse]], held: Iterable[tuple[str, str, int]]
    ) -> None:
        """Each capped channel configuration's windows and the events its spent ones hold,
        replacing the last scrape's (a cap removed since is gone)."""
        for gauge in (self.cap_used, self.cap_limit, self.cap_held):
            gauge.clear()
        for name, windows in uses.items():
            for use in windows:
                self.cap_used.labels(name, use.window, "all").set(use.used)
                self.cap_limit.labels(name, use.window, "all").set(use.limit)
                if use.bulk_limit is not None:
                    self.cap_used.labels(name, use.window, "bulk").set(use.bulk_used)
                    self.cap_limit.labels(name, use.window, "bulk").set(use.bulk_limit)
        for name, lane, count in held:
            self.cap_held.labels(name, lane).set(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
