"""Renders messages in a few worker processes (`worker.py`), off the event loop.

Each worker process has a thread here that takes the renders waiting (all of them at once, up
to `MAX_BATCH`: one write and a few reads for many messages on the send path), writes them to
its worker, and hands each answer to its caller's event loop as it comes. Waiting renders are
taken by rank, lowest first (a transactional send's before any bulk one's, then in order of
arrival): a bulk backlog holds a transactional render back by one batch at most. The event
loop never waits on a worker. A worker that does not answer a render within its deadline (the
worker's own timer, plus a grace) is killed and started again; the renders after it in its
batch go to the new worker. Whatever a template does, it costs at most that long, and the CPU
is free again after it. A message whose render ran out of time is slow for a minute: its renders
wait behind every other, one at a time, and the renders written after it to its worker go back
to the queue (a template whose loops a trigger's ctx can make long holds up no other event).

The workers also DKIM-sign built emails (`sign`): a millisecond of CPU a message that the event
loop would otherwise spend. A key is written to a worker once, named by its fingerprint after.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import queue
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from txmsg.core.dkim import DkimSettings, fingerprint
from txmsg.core.render_limits import RenderLimits
from txmsg.core.templates import MessageSource, TemplateProblem, TemplateProblems
from txmsg.sandbox.worker import MAX_CACHED, MAX_SIGNERS, decode, encode, timeout_reason

_log = logging.getLogger(__name__)

# Time a worker has past its own timer to answer before it is killed (a slow start, a busy
# machine); the timer itself stops a render at once.
GRACE_SECONDS = 2.0
# Renders written to a worker at once.
MAX_BATCH = 64
# Signing setups whose fingerprint is kept.
_MAX_FINGERPRINTS = 100
# The rank of a stop request: after every render waiting.
_STOP_RANK = sys.maxsize
# A message whose render ran out of time is slow for a while: its renders then wait behind
# every other (a template whose loops a trigger's ctx can make long holds up no other event's).
SLOW_SECONDS = 60.0
_SLOW_RANK = 1 << 40


class SigningFailed(Exception):
    """A message could not be signed; `permanent` when its key cannot sign (else the worker
    failed: try again later)."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class _Signing:
    dkim: DkimSettings = field(repr=False)
    fingerprint: str
    data: bytes = field(repr=False)


@dataclass(slots=True)
class _Job:
    message: MessageSource | None  # None: a signing
    variables: dict[str, Any] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[dict[str, Any]] = field(repr=False)
    signing: _Signing | None = None
    rank: int = 0

    def answer(self, answer: dict[str, Any]) -> None:
        if self.loop.is_closed():
            return  # its caller's loop ended before the answer: nobody waits for it
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, answer)
        except RuntimeError:
            if not self.loop.is_closed():  # closed since the check above: the same case
                raise


def _settle(future: asyncio.Future[dict[str, Any]], answer: dict[str, Any]) -> None:
    if not future.done():  # its caller may have been cancelled meanwhile
        future.set_result(answer)


def _settle_all(settled: list[tuple[asyncio.Future[dict[str, Any]], dict[str, Any]]]) -> None:
    for future, answer in settled:
        _settle(future, answer)


def _answer_all(jobs: list[_Job], answers: list[dict[str, Any]]) -> None:
    """Each job its answer: one call into each of their loops."""
    if len(jobs) == 1:
        jobs[0].answer(answers[0])
        return
    by_loop: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[dict[str, Any]], dict[str, Any]]]
    ] = {}
    for job, answer in zip(jobs, answers, strict=True):
        by_loop.setdefault(job.loop, []).append((job.future, answer))
    for loop, settled in by_loop.items():
        if loop.is_closed():
            continue  # its caller's loop ended before the answers: nobody waits for them
        try:
            loop.call_soon_threadsafe(_settle_all, settled)
        except RuntimeError:
            if not loop.is_closed():  # closed since the check above: the same case
                raise


class _Process:
    """One worker process and the messages it has compiled."""

    def __init__(self, limits: RenderLimits) -> None:
        args = [str(limits.timeout_seconds), str(limits.max_bytes), str(limits.max_memory)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "txmsg.sandbox.worker", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.keys: set[str] = set()
        self.signers: set[str] = set()
        self._buffer = b""
        # Requests written, not yet taken by the pipe: `read` writes them while it reads, so
        # that neither side waits on a full pipe for the other (a batch's requests and its
        # answers are each often more than a pipe holds).
        self._unsent = memoryview(b"")
        assert self.proc.stdin is not None
        self._stdin = self.proc.stdin.fileno()
        os.set_blocking(self._stdin, False)

    def write(self, jobs: list[_Job]) -> None:
        """Queues the renders (a message's sources only the first time) and signings (a key
        only the first time); `read` sends them as the worker takes them."""
        lines = []
        for job in jobs:
            request: dict[str, Any]
            if job.signing is not None:
                signing = job.signing
                dkim = signing.dkim
                if signing.fingerprint not in self.signers and len(self.signers) >= MAX_SIGNERS:
                    self.signers.clear()  # as the worker does: it gets the keys again
                request = {
                    "sign": signing.fingerprint,
                    "dkim": None
                    if signing.fingerprint in self.signers
                    else [dkim.algorithm, dkim.domain, dkim.selector, dkim.private_key.decode()],
                    "message": signing.data.decode("latin-1"),
                }
                self.signers.add(signing.fingerprint)
            else:
                assert job.message is not None
                key = job.message.key
                if key not in self.keys and len(self.keys) >= MAX_CACHED:
                    self.keys.clear()  # as the worker does: it gets the sources again
                request = {
                    "key": key,
                    "sources": None if key in self.keys else job.message.sources,
                    "variables": job.variables,
                }
                self.keys.add(key)
            lines.append(encode(request))
        self._unsent = memoryview(bytes(self._unsent) + b"".join(lines))
        self._send()

    def _send(self) -> None:
        """Writes what the pipe takes now of the requests not yet sent. A worker that ended
        is killed (its answers then end at once: `EOFError`)."""
        try:
            sent = os.write(self._stdin, self._unsent)
        except BlockingIOError:
            return
        except OSError:  # the worker ended (broken pipe)
            self._unsent = memoryview(b"")
            self.proc.kill()
            return
        self._unsent = self._unsent[sent:]

    def read(self, deadline: float) -> dict[str, Any] | None:
        """The next answer; None if it did not come by `deadline` (monotonic). Raises
        `EOFError` when the worker has ended."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            writing = [self._stdin] if self._unsent else []
            readable, writable, _ = select.select([fd], writing, [], left)
            if writable:
                self._send()
            if not readable:
                if writable:
                    continue
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = decode(line)
        return answer

    def read_ready(self, deadline: float, most: int) -> list[dict[str, Any]]:
        """The next answer and those already read with it, `most` at most; none if the next
        did not come by `deadline`. Raises `EOFError` when the worker has ended."""
        first = self.read(deadline)
        if first is None:
            return []
        answers = [first]
        while len(answers) < most and b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            answers.append(decode(line))
        return answers

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def _problem(job: _Job, reason: str) -> dict[str, Any]:
    if job.message is None:
        return {"problems": [["dkim", None, reason]]}
    names = job.message.part_names
    return {"problems": [[names[0] if names else "message", None, reason]]}


class Renderer:
    """Renders `MessageSource`s with their variables; raises `TemplateProblems`."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        # (rank, arrival, render or None: stop), lowest first.
        self._jobs: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._arrivals = itertools.count()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._workers: set[_Process] = set()
        self._fingerprints: dict[DkimSettings, str] = {}
        # Messages (by key) whose renders wait behind every other, until when (monotonic).
        self._slow: dict[str, float] = {}

    async def check(self, message: MessageSource) -> None:
        """Compiles the message in a worker: raises `TemplateProblems` (syntax errors with
        their line, unknown filters, bounds)."""
        await self.render(message, None)

    async def render(
        self, message: MessageSource, variables: dict[str, Any] | None, rank: int = 0
    ) -> dict[str, str]:
        """The rendered parts; `rank` orders waiting renders, lowest first (an event's
        `priority`: the transactional lane's 0 before bulk)."""
        self._start()
        loop = asyncio.get_running_loop()
        job = _Job(message, variables, loop, loop.create_future(), rank=rank)
        self._put(job)
        answer = await job.future
        if "parts" in answer:
            parts: dict[str, str] = answer["parts"]
            return parts
        raise TemplateProblems([TemplateProblem(*p) for p in answer["problems"]])

    async def sign(self, dkim: DkimSettings, data: bytes, rank: int = 0) -> bytes:
        """The `DKIM-Signature:` header line of the built email `data`, signed in a worker;
        raises `SigningFailed`. `rank` orders it among the waiting renders."""
        self._start()
        loop = asyncio.get_running_loop()
        found = self._fingerprints.get(dkim)
        if found is None:
            if len(self._fingerprints) >= _MAX_FINGERPRINTS:
                self._fingerprints.clear()
            found = self._fingerprints[dkim] = fingerprint(dkim)
        job = _Job(None, None, loop, loop.create_future(), _Signing(dkim, found, data), rank)
        self._put(job)
        answer = await job.future
        if "signature" in answer:
            signature: str = answer["signature"]
            return signature.encode("latin-1")
        raise SigningFailed(answer["problems"][0][2], bool(answer.get("permanent")))

    def _put(self, job: _Job) -> None:
        """Queue the job by its rank, behind every other render when its message is slow."""
        rank = job.rank
        if self._slow and job.message is not None:  # nearly always empty: one check
            until = self._slow.get(job.message.key)
            if until is not None:
                if until > time.monotonic():
                    rank += _SLOW_RANK
                else:
                    self._slow.pop(job.message.key, None)
        self._jobs.put((rank, next(self._arrivals), job))

    def _slowed(self, job: _Job) -> None:
        if job.message is not None:
            self._slow[job.message.key] = time.monotonic() + SLOW_SECONDS

    def _requeue(self, jobs: list[_Job]) -> bool:
        """After a render ran out of time: whether the renders written after it go back to
        the queue, so that the others are taken ahead of the slow ones: when they include one
        of another message, or another waits in the queue (True: the worker, which holds
        them, is stopped)."""
        now = time.monotonic()
        all_slow = all(
            j.message is not None and self._slow.get(j.message.key, 0.0) > now for j in jobs
        )
        with self._jobs.mutex:  # the heap's first entry is the next job taken
            others_wait = bool(self._jobs.queue) and self._jobs.queue[0][0] < _SLOW_RANK
        if all_slow and not others_wait:
            return False
        for job in jobs:
            self._put(job)
        return True

    def _start(self) -> None:
        if self._threads:
            return
        with self._lock:
            while len(self._threads) < self.limits.workers:
                thread = threading.Thread(target=self._serve, name="txmsg-render", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _serve(self) -> None:
        """One worker's thread: renders batches until `close`."""
        worker: _Process | None = None
        batch: list[_Job] = []
        slow = False
        while True:
            if not batch:
                rank, _, first = self._jobs.get()
                if first is None:
                    break
                batch = [first]
                # A slow message's render goes alone: the thread is back at the queue after it.
                slow = rank >= _SLOW_RANK
            while len(batch) < MAX_BATCH and not slow:
                try:
                    waiting = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if waiting[2] is None or waiting[0] >= _SLOW_RANK:
                    self._jobs.put(waiting)  # a stop (the next thread stops too), or slow
                    break
                batch.append(waiting[2])
            try:
                if worker is None:
                    worker = self._spawn()
                batch, healthy = self._run(worker, batch)
            except (OSError, ValueError, TypeError):  # cannot start, or garbage: never hang
                _log.exception("render worker failed")
                for job in batch:
                    job.answer(_problem(job, "the render worker failed"))
                batch, healthy = [], False
            if not healthy and worker is not None:
                self._stop(worker)  # ended, or stuck: the rest of its batch goes to a new one
                worker = None
        if worker is not None:
            self._stop(worker)

    def _spawn(self) -> _Process:
        worker = _Process(self.limits)
        with self._lock:
            self._workers.add(worker)
        return worker

    def _stop(self, worker: _Process) -> None:
        with self._lock:
            self._workers.discard(worker)
        worker.stop()

    def worker_pids(self) -> list[int]:
        with self._lock:
            return [worker.proc.pid for worker in self._workers]

    def _run(self, worker: _Process, batch: list[_Job]) -> tuple[list[_Job], bool]:
        """Renders the batch; when the worker ended or did not answer a render in time (that
        render has its problem), returns the rest of the batch and False: stop the worker.
        The answers read together are handed to their loops together (one wake-up)."""
        timeout = self.limits.timeout_seconds
        late = timeout_reason(timeout)
        worker.write(batch)
        index = 0
        while index < len(batch):
            job = batch[index]
            # Compiling a new message has a timer of its own in the worker.
            deadline = time.monotonic() + 2 * timeout + GRACE_SECONDS
            try:
                answers = worker.read_ready(deadline, len(batch) - index)
            except EOFError:
                job.answer(_problem(job, f"the render worker ended ({worker.proc.wait()})"))
                return batch[index + 1 :], False
            if not answers:
                job.answer(_problem(job, late))
                self._slowed(job)
                rest = batch[index + 1 :]
                return ([] if self._requeue(rest) else rest), False
            ran_late = False
            for done, answer in zip(batch[index:], answers, strict=False):
                if answer.get("forget") and done.message is not None:
                    worker.keys.discard(done.message.key)
                if any(p[2] == late for p in answer.get("problems", ())):
                    self._slowed(done)
                    ran_late = True
            _answer_all(batch[index : index + len(answers)], answers)
            index += len(answers)
            if ran_late and index < len(batch) and self._requeue(batch[index:]):
                return [], False  # the worker holds the renders given back: a new one
        return [], True

    def close(self) -> None:
        """Stops the threads and their workers (which also stop when this process ends)."""
        for _ in self._threads:
            self._jobs.put((_STOP_RANK, next(self._arrivals), None))
        for thread in self._threads:
            thread.join()
        self._threads = []


_SHARED: dict[RenderLimits, Renderer] = {}
_SHARED_LOCK = threading.Lock()


def shared_renderer(limits: RenderLimits) -> Renderer:
    """The process's renderer for these limits: the API and the engine of one process share
    its workers."""
    with _SHARED_LOCK:
        renderer = _SHARED.get(limits)
        if renderer is None:
            renderer = _SHARED[limits] = Renderer(limits)
        return renderer
