"""Renders run in worker processes, bounded in time, output and memory (txmsg.sandbox)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from txmsg.core.render_limits import RenderLimits
from txmsg.core.templates import MessageSource, TemplateProblems
from txmsg.sandbox.pool import GRACE_SECONDS, MAX_BATCH, Renderer

TIMEOUT = 0.5
MAX_BYTES = 64 * 1024
# Room for a loaded machine in the elapsed-time checks (a render's bound is TIMEOUT).
SLACK = 3.0


@pytest.fixture
async def renderer() -> AsyncIterator[Renderer]:
    renderer = Renderer(RenderLimits(timeout_seconds=TIMEOUT, max_bytes=MAX_BYTES))
    yield renderer
    await asyncio.to_thread(renderer.close)


async def _problem(renderer: Renderer, template: str, part: str = "html") -> str:
    with pytest.raises(TemplateProblems) as caught:
        await renderer.render(MessageSource({"subject": "ok", part: template}), {"ctx": {}})
    problem = caught.value.problems[0]
    assert problem.part == part
    return problem.reason


async def test_a_render_answers_its_parts(renderer: Renderer) -> None:
    message = MessageSource({"subject": "Hi {{ ctx.name }}", "text": "{{ ctx.n * 2 }}"})
    out = await renderer.render(message, {"ctx": {"name": "Ann", "n": 21}})
    assert out == {"subject": "Hi Ann", "text": "42"}


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'x' * 10**9 }}",
        "{{ 'x'|center(10**9) }}",
        "{{ '%999999999d'|format(1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ range(100000)|join('x' * 100000) }}",
        "{% set ns = namespace(s='xx') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    ],
)
async def test_huge_values_fail_fast_on_memory(renderer: Renderer, template: str) -> None:
    started = time.monotonic()
    reason = await _problem(renderer, template)
    # The doubling string is copied so often that time may run out first: bounded either way.
    assert "MiB of memory" in reason or "longer than" in reason, reason
    assert time.monotonic() - started < TIMEOUT + SLACK


@pytest.mark.parametrize(
    "template",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{{ lipsum(n=100000) }}",
        "{% for i in range(100000) %}{{ range(100000)|join(',')|length }}{% endfor %}",
    ],
)
async def test_long_renders_stop_at_their_time_bound(renderer: Renderer, template: str) -> None:
    started = time.monotonic()
    reason = await _problem(renderer, template, "text")
    assert reason == f"rendering took longer than the {TIMEOUT:g} s a message may take"
    assert time.monotonic() - started < TIMEOUT + SLACK
    # The worker stopped the render itself, and renders the next message at once.
    started = time.monotonic()
    assert await renderer.render(MessageSource({"text": "fine"}), {}) == {"text": "fine"}
    assert time.monotonic() - started < SLACK  # (may start the other worker)


async def test_output_past_its_bound_stops(renderer: Renderer) -> None:
    reason = await _problem(renderer, "{% for i in range(100000) %}{{ 'y' * 100 }}{% endfor %}")
    assert reason == "the rendered HTML is larger than 64 KB"
    ok = "é" * (MAX_BYTES // 2)
    assert await renderer.render(MessageSource({"text": ok}), {}) == {"text": ok}
    reason = await _problem(renderer, ok + "é", "text")
    assert reason == "the rendered text is larger than 64 KB"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ ''.__class__.__mro__ }}", "may not use (__class__)"),
        ("{{ lipsum.__globals__ }}", "may not use (__globals__)"),
        ("{{ range(10**9)|length }}", "MAX_RANGE"),
        ("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", "recurses"),
    ],
)
async def test_the_sandbox_still_refuses_escapes(
    renderer: Renderer, template: str, expected: str
) -> None:
    assert expected in await _problem(renderer, template)


async def test_a_long_render_blocks_neither_the_loop_nor_other_renders() -> None:
    renderer = Renderer(RenderLimits(timeout_seconds=4.0))
    spin = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    await asyncio.gather(*(renderer.render(MessageSource({"text": "up"}), {}) for _ in range(4)))
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    slow = asyncio.create_task(_problem(renderer, spin, "text"))
    await asyncio.sleep(0.2)
    assert await renderer.render(MessageSource({"text": "{{ 6 * 7 }}"}), {}) == {"text": "42"}
    assert not slow.done()  # the other worker answered while this one still spins
    assert "longer than" in await slow
    ticker.cancel()
    assert max(gaps) < 0.4, max(gaps)  # the loop ticked all along (every 10 ms asked)
    await asyncio.to_thread(renderer.close)


async def test_a_worker_that_does_not_answer_is_killed_and_replaced() -> None:
    renderer = Renderer(RenderLimits(timeout_seconds=TIMEOUT, workers=1))
    await renderer.render(MessageSource({"text": "warm"}), {})
    pids = renderer.worker_pids()
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGSTOP)  # as stuck as a C call that ignores the worker's timer
    started = time.monotonic()
    # A worker killed by the pool cannot say which part it was at: the first part is named.
    reason = await _problem(renderer, "fine", "subject")
    assert "longer than" in reason
    assert time.monotonic() - started < 2 * TIMEOUT + GRACE_SECONDS + SLACK
    assert await renderer.render(MessageSource({"text": "again"}), {}) == {"text": "again"}
    assert not set(pids) & set(renderer.worker_pids())
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    await asyncio.to_thread(renderer.close)


async def test_variables_that_cannot_be_sent_fail_that_render_only(renderer: Renderer) -> None:
    with pytest.raises(TemplateProblems) as caught:
        await renderer.render(MessageSource({"text": "{{ ctx }}"}), {"ctx": {1, 2}})
    assert caught.value.problems[0].reason == "the render worker failed"
    assert await renderer.render(MessageSource({"text": "ok"}), {}) == {"text": "ok"}


async def test_workers_outlive_a_sigterm_to_their_process_group(renderer: Renderer) -> None:
    """A supervisor stopping the process group (systemd's default) must not end the renders
    its txmsg process still has to finish: workers end when their parent does."""
    await renderer.render(MessageSource({"text": "up"}), {})
    pids = renderer.worker_pids()
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
    await asyncio.sleep(0.2)
    assert await renderer.render(MessageSource({"text": "still"}), {}) == {"text": "still"}
    assert set(pids) <= set(renderer.worker_pids())


async def test_waiting_renders_are_taken_by_rank() -> None:
    """A transactional render (rank 0) queued behind many bulk ones (rank 10) is taken before
    them: at most the batches already taken go first."""
    one = Renderer(RenderLimits(timeout_seconds=TIMEOUT, max_bytes=MAX_BYTES, workers=1))
    try:
        message = MessageSource({"subject": "Hi {{ ctx.n }}"})
        await one.render(message, {"ctx": {"n": 0}})  # the worker is up and has compiled it
        done: list[str] = []

        async def render(name: str, rank: int) -> None:
            await one.render(message, {"ctx": {"n": 1}}, rank)
            done.append(name)

        # A slow render keeps the one worker busy while the backlog and the urgent render are
        # queued: on a busy machine the worker would otherwise drain part of the backlog while
        # this loop is still queueing it.
        loops = "{% for i in range(100000) %}{% for j in range(3) %}{% endfor %}{% endfor %}"
        blocker = asyncio.create_task(one.render(MessageSource({"subject": loops}), {}))
        await asyncio.sleep(0.05)
        backlog = [asyncio.create_task(render(f"bulk{i}", 10)) for i in range(600)]
        await asyncio.sleep(0)  # every bulk render is queued
        await render("urgent", 0)
        await asyncio.gather(blocker, return_exceptions=True)
        await asyncio.gather(*backlog)
        assert done.index("urgent") <= 2 * MAX_BATCH, done.index("urgent")
    finally:
        await asyncio.to_thread(one.close)


async def test_a_batch_larger_than_a_pipe_both_ways_is_answered() -> None:
    """Renders whose requests and answers are each more than a pipe holds (64 KiB), taken in
    one batch: the pool sends the requests while it reads the answers, so neither it nor the
    worker waits for ever on a full pipe (the sends behind them stayed leased, unsent)."""
    one = Renderer(RenderLimits(timeout_seconds=TIMEOUT, workers=1))
    message = MessageSource({"text": "{{ ctx.s }}"})
    try:
        await one.render(message, {"ctx": {"s": "warm"}})  # up, and the message compiled
        # A slow render keeps the worker busy while the large ones queue: one batch.
        loops = "{% for i in range(100000) %}{% for j in range(3) %}{% endfor %}{% endfor %}"
        blocker = asyncio.create_task(one.render(MessageSource({"subject": loops}), {}))
        await asyncio.sleep(0.05)
        values = [str(i) * 300_000 for i in range(4)]
        large = [one.render(message, {"ctx": {"s": value}}) for value in values]
        answers = await asyncio.wait_for(asyncio.gather(*large), 20)
        assert [answer["text"] for answer in answers] == values
        await asyncio.gather(blocker, return_exceptions=True)
    finally:
        await _close_even_if_stuck(one)


async def _close_even_if_stuck(renderer: Renderer) -> None:
    """Close `renderer`; a pool stuck on a full pipe would never close: its workers are
    killed (again, as each is replaced) until it does, so that a failure ends the test."""
    closing = asyncio.ensure_future(asyncio.to_thread(renderer.close))
    while not (await asyncio.wait([closing], timeout=1.0))[0]:
        for pid in renderer.worker_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    await closing


async def test_a_message_that_ran_out_of_time_waits_behind_the_others(
    renderer: Renderer,
) -> None:
    """Once a message's render has run out of time, its renders wait behind every other: a
    render asked for after 20 of them waits for a slow render or two, not for all 20 (10 s
    over the 2 workers)."""
    bomb = MessageSource({"text": "{% for i in range(ctx.n) %}{% for j in range(ctx.n) %}"
                          "{% endfor %}{% endfor %}"})  # fmt: skip
    slow = []
    for _ in range(2):  # a batch of 10 taken by each worker's thread
        slow += [
            asyncio.create_task(renderer.render(bomb, {"ctx": {"n": 99_999}})) for _ in range(10)
        ]
        await asyncio.sleep(0.1)
    started = time.monotonic()
    out = await renderer.render(MessageSource({"text": "quick"}), {"ctx": {}})
    assert out == {"text": "quick"}
    assert time.monotonic() - started < 2 * TIMEOUT + 2.0
    for task in slow:
        with pytest.raises(TemplateProblems):
            await task
