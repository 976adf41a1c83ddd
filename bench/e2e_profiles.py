"""Profile-based delivery against event-based delivery, measured in the same run.

Baseline: the event-based delivery of `e2e_email.py` (events triggered over HTTP while the event
is paused, then resumed; sent per second until the last is `processed`). Figure: the same with a
profile-based event: each event reconciled with its own profile (`ctx.id` -> `profile_id`),
checked against typology rules and counted by a fatigue rule (high enough never to exclude), with
its unsubscribe link and List-Unsubscribe headers. The ratio is what profiles cost on the send path.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from _common import (
    ADMIN_KEY,
    LINE,
    TRIGGER_BODY,
    drain,
    engine_env,
    free_port,
    process,
    serve_args,
    setup_event,
    smtp_sink,
    wrk,
)

PROFILE_BODY = '{"ctx": {"firstName": "Ada", "id": "u%d"}}'


def _profile_event(admin: httpx.Client, profiles: int, rule: bool) -> None:
    rows = "".join(
        f'{{"profile_id": "u{i}", "email": "user{i}@example.org", "first_name": "Ada"}}\n'
        for i in range(1, profiles + 1)
    ).encode()
    r = admin.post(
        "/api/v1/profiles:import",
        content=rows,
        headers={"content-type": "application/x-ndjson"},
        timeout=600,
    )
    r.raise_for_status()
    assert r.json()["created"] == profiles, r.text
    admin.post(
        "/api/v1/event-configs",
        json={
            "eventId": "benchp",
            "channel": "email",
            "channel_config": "sink",
            "target": "profile",
            "reconciliation": {"from": "ctx.id", "to": "profile_id"},
            "fields": [{"name": "firstName", "type": "string", "required": True}],
        },
    ).raise_for_status()
    admin.post("/api/v1/event-configs/EVTbenchp/publish").raise_for_status()
    admin.put(
        "/api/v1/messages/EVTbenchp/draft",
        json={
            "subject": "Hello {{ profile.first_name }}",
            "html": ("<p>" + LINE + "</p>\n") * 10 + "<a href='{{ unsubscribe_url }}'>stop</a>",
            "text": (LINE + "\n") * 10 + "{{ unsubscribe_url }}",
        },
    ).raise_for_status()
    admin.post("/api/v1/messages/EVTbenchp/publish").raise_for_status()
    if rule:
        admin.post(
            "/api/v1/fatigue-rules",
            json={"name": "bench", "channel": "all", "max_messages": 1000, "period": "P1D"},
        ).raise_for_status()


def engine(smtp_port: int, seconds: int, *, profiles: int, rule: bool = True) -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        tempfile.TemporaryDirectory() as tmp,
        process(serve_args(port), env=engine_env(Path(tmp)), port=port),
    ):
        db = Path(tmp) / "txmsg.db"
        key = setup_event(base, smtp_port)
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        event, body = "EVTbench", TRIGGER_BODY
        if profiles:
            _profile_event(admin, profiles, rule)
            event, body = "EVTbenchp", PROFILE_BODY
        admin.post(f"/api/v1/event-configs/{event}/pause").raise_for_status()
        load = wrk(f"{base}/rest/mc/{event}", body, key, seconds)
        start = time.perf_counter()
        admin.post(f"/api/v1/event-configs/{event}/resume").raise_for_status()
        return {**drain(db, start), "trigger_rps": load["rps"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="how long wrk triggers events")
    parser.add_argument("--profiles", type=int, default=100_000, help="profiles imported")
    parser.add_argument(
        "--without-rule", action="store_true", help="no fatigue rule (no reservations)"
    )
    args = parser.parse_args()
    smtp_port = free_port()
    with smtp_sink(smtp_port):
        base = engine(smtp_port, args.seconds, profiles=0)
        profiled = engine(
            smtp_port, args.seconds, profiles=args.profiles, rule=not args.without_rule
        )
    print(f"event-based delivery (queued -> sent)     {base['rate']:8.0f} msg/s  (baseline)")
    print(
        f"profile-based delivery (queued -> sent)   {profiled['rate']:8.0f} msg/s  "
        f"ratio {profiled['rate'] / base['rate']:.2f}"
    )
    for name, result in (("event-based", base), ("profile-based", profiled)):
        print(
            f"  {name}: accepted {result['accepted']:.0f}, processed {result['processed']:.0f}, "
            f"pending {result['pending']:.0f}, failed {result['deliveryFailed']:.0f}"
        )


if __name__ == "__main__":
    main()
