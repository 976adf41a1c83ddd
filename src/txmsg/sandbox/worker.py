"""A render worker: one process, rendering one message at a time, read from stdin.

Run as `python -m txmsg.sandbox.worker TIMEOUT MAX_BYTES MAX_MEMORY`. Each request is a JSON
line `{"key", "sources" (null when this worker already has the key), "variables"}`; each answer
a JSON line `{"parts": {...}}` or `{"problems": [[part, line, reason], ...]}`. Null variables:
compile only (Jinja's code generator folds constant expressions, such as `'x'|center(10**9)`,
while compiling: compiling is bounded like rendering).

A request `{"sign": fingerprint, "dkim": [algorithm, domain, selector, key] (null when this
worker already has the fingerprint), "message"}` DKIM-signs a built email (bytes as Latin-1
text) instead; its answer is `{"signature": header line}` or `{"problems": ..., "permanent":
true}` when the key cannot sign. Signing costs about a millisecond of CPU: here it runs on
another core than the event loop's.

Lines are encoded by orjson (several times faster than `json` both ways); a line that orjson
cannot encode (a lone surrogate, an integer past 64 bits, which orjson would also read back as
a float) goes as `json` text behind a `~`, and is read back by `json`.

The bounds, and why they hold:
- time: an interval timer raises `RenderTimeout` (a BaseException, which no `except
  Exception` of Jinja or of a filter swallows) between two bytecodes of the render: every
  template loop, filter and macro runs as Python code, so it stops there at once. Only a
  single C-level operation can outlast it, and those are bounded by memory (below) or, at
  worst, by the parent, which kills the process past its own, longer deadline.
- memory: the address space is capped (RLIMIT_AS): `'x' * 10**9` or `|center(10**9)` fail to
  allocate (MemoryError) instead of growing the process.
- output: each part is generated chunk by chunk and stops past its byte bound.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson

from txmsg.core.templates import CompiledMessage, TemplateProblem, TemplateProblems

if TYPE_CHECKING:
    from txmsg.core.dkim_signer import DkimSigner, SigningError

# Compiled messages kept at most by one worker.
MAX_CACHED = 1000
# Signers (loaded keys) kept at most by one worker.
MAX_SIGNERS = 100
# Marks a line encoded by `json` (see the module's text).
JSON_MARK = b"~"


class RenderTimeout(BaseException):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise RenderTimeout


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class Worker:
    def __init__(self, timeout: float, max_bytes: int, max_memory: int) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_memory = max_memory
        self._cache: dict[str, CompiledMessage | TemplateProblems] = {}
        self._signers: dict[str, DkimSigner | SigningError] = {}

    def _compiled(self, key: str, sources: dict[str, str] | None) -> CompiledMessage:
        found = self._cache.get(key)
        if found is None:
            if sources is None:
                raise TemplateProblems([TemplateProblem("message", None, "unknown message")])
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            try:
                found = CompiledMessage(sources)
            except TemplateProblems as exc:
                found = exc
            self._cache[key] = found
        if isinstance(found, TemplateProblems):
            raise found
        return found

    def _signer(self, fingerprint: str, dkim: list[str] | None) -> DkimSigner:
        from txmsg.core.dkim import DkimSettings
        from txmsg.core.dkim_signer import DkimSigner, SigningError

        found = self._signers.get(fingerprint)
        if found is None:
            if dkim is None:
                raise SigningError("unknown DKIM key")
            if len(self._signers) >= MAX_SIGNERS:
                self._signers.clear()
            algorithm, domain, selector, key = dkim
            try:
                found = DkimSigner(DkimSettings(domain, selector, algorithm, key.encode("ascii")))
            except (ValueError, TypeError, UnicodeEncodeError) as exc:
                # Kept too: the pool counts the keys it sent as this cache does.
                found = SigningError(f"DKIM key cannot sign ({type(exc).__name__})")
            self._signers[fingerprint] = found
        if isinstance(found, SigningError):
            raise SigningError(str(found))
        return found

    def handle_sign(self, request: dict[str, Any]) -> dict[str, Any]:
        # Imported at the first signing, outside its timer: workers that only render start
        # without dkimpy.
        from txmsg.core.dkim_signer import SigningError, sign

        try:
            with _deadline(self.timeout):
                signer = self._signer(request["sign"], request.get("dkim"))
                header = sign(signer, request["message"].encode("latin-1"))
            return {"signature": header.decode("latin-1")}
        except SigningError as exc:
            return {"problems": [["dkim", None, str(exc)]], "permanent": True}
        except RenderTimeout:
            reason = f"DKIM signing took longer than {self.timeout:g} s"
        except MemoryError:
            reason = "DKIM signing ran out of memory"
        return {"problems": [["dkim", None, reason]]}

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        if "sign" in request:
            return self.handle_sign(request)
        part = "message"
        try:
            with _deadline(self.timeout):
                message = self._compiled(request["key"], request.get("sources"))
                out: dict[str, str] = {}
                if request["variables"] is None:  # a check: compiling is all
                    return {"parts": out}
                for part in message.parts:
                    out[part] = message.render_part(part, request["variables"], self.max_bytes)
            return {"parts": out}
        except TemplateProblems as exc:
            problems = exc.problems
        except RenderTimeout:
            problems = [TemplateProblem(part, None, timeout_reason(self.timeout))]
        except MemoryError:
            problems = [TemplateProblem(part, None, memory_reason(self.max_memory))]
        answer: dict[str, Any] = {"problems": [[p.part, p.line, p.reason] for p in problems]}
        if request["key"] not in self._cache:
            # Stopped while compiling: nothing kept, so the pool must send the sources again.
            answer["forget"] = True
        return answer


def timeout_reason(seconds: float) -> str:
    return f"rendering took longer than the {seconds:g} s a message may take"


def memory_reason(max_memory: int) -> str:
    mib = max_memory // (1024 * 1024)
    return f"rendering needed more than the {mib} MiB of memory a render may use"


def _cap_memory(extra: int) -> None:
    """The address space: what the process uses now, plus `extra`."""
    with open("/proc/self/statm") as statm:
        size = int(statm.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, size + extra))


def main(argv: list[str]) -> None:
    worker = Worker(float(argv[0]), int(argv[1]), int(argv[2]))
    signal.signal(signal.SIGALRM, _alarm)
    # The parent ends it (its stdin closes): a SIGTERM or Ctrl-C sent to the whole process
    # group must not end it while its parent finishes the sends under way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _cap_memory(worker.max_memory)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        out.write(encode(worker.handle(decode(line))))
        out.flush()


def encode(value: dict[str, Any]) -> bytes:
    """One protocol line, newline-terminated."""
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # a lone surrogate, an integer past 64 bits: exact through `json`
        text = json.dumps(value, ensure_ascii=False)
        return JSON_MARK + text.encode("utf-8", "surrogatepass") + b"\n"


def decode(line: bytes) -> Any:
    if line.startswith(JSON_MARK):
        return json.loads(line[1:].decode("utf-8", "surrogatepass"))
    return orjson.loads(line)


if __name__ == "__main__":
    main(sys.argv[1:])
