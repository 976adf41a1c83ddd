"""What bounded rendering costs: renders/s through the sandbox's worker processes against
in-process rendering of the same compiled message, same run.

The message is the engine benchmarks' (bench/_common.py: a subject, 10 lines of text and of
HTML, each line with two variables), with the variables the engine passes (ctx, event). 256
tasks on uvloop await the renders, as the dispatcher's sends do. Figures:

- in-process: `CompiledMessage.render` on the event loop (unbounded: the baseline);
- workers: `Renderer.render` (2 worker processes, the default), the loop only hands the
  variables over and settles the answers;
- loop CPU per render through the workers: the CPU time of this process (loop + the pool's
  threads) divided by the renders: what the workers leave to the process that sends.

Run it from another checkout to compare two versions of the pool side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "src"))

from _common import LINE
from txmsg.core.render_limits import RenderLimits
from txmsg.core.templates import CompiledMessage, MessageSource
from txmsg.sandbox.pool import Renderer

CONCURRENCY = 256
SOURCES = {
    "subject": "Hello {{ ctx.firstName }}",
    "text": (LINE + "\n") * 10,
    "html": ("<p>" + LINE + "</p>\n") * 10,
}


def _variables(n: int) -> dict[str, object]:
    return {
        "ctx": {"firstName": "Ada", "n": n},
        "event": {"PKey": f"pk{n:012d}", "eventId": "EVTbench", "email": "ada@example.org"},
    }


async def _in_process(count: int) -> float:
    compiled = CompiledMessage(SOURCES)
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            compiled.render(_variables(n), RenderLimits().max_bytes)
            await asyncio.sleep(0)  # as a send would yield between renders

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return count / (time.perf_counter() - start)


async def _workers(renderer: Renderer, count: int) -> tuple[float, float]:
    message = MessageSource(SOURCES)
    await renderer.render(message, _variables(0))  # started, compiled: not measured
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            await renderer.render(message, _variables(n))

    cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed, used = time.perf_counter() - start, time.process_time() - cpu
    return count / elapsed, used / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000, help="renders per figure")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    renderer = Renderer(RenderLimits())
    inline: list[float] = []
    pooled: list[float] = []
    cpu: list[float] = []
    for _ in range(args.rounds):  # interleaved: the machine's noise hits both
        inline.append(uvloop.run(_in_process(args.count)))
        rate, per = uvloop.run(_workers(renderer, args.count))
        pooled.append(rate)
        cpu.append(per)
    renderer.close()
    mean_inline, mean_pooled = sum(inline) / len(inline), sum(pooled) / len(pooled)
    each = " ".join(f"{r:,.0f}" for r in inline)
    print(f"in-process render       {mean_inline:9,.0f} renders/s  ({each})")
    each = " ".join(f"{r:,.0f}" for r in pooled)
    ratio = mean_pooled / mean_inline
    print(f"workers (2 processes)   {mean_pooled:9,.0f} renders/s  ratio {ratio:.2f}  ({each})")
    print(f"this process's CPU per render through the workers: {sum(cpu) / len(cpu):.0f} us")


if __name__ == "__main__":
    main()
