"""A closed-loop HTTP load generator: C keep-alive connections, N requests.

    python bench/loadgen.py --port 8000 --path '/bench/work?log=1' \\
        --requests 2000 --concurrency 16 --records 50 --out result.json

Each connection sends its next request as soon as the previous answer is
read (closed loop), or, with ``--rate``, at the time the schedule of ``--rate``
requests per second gives it (open loop: the load does not slow down when
the server does). Every request carries ``--records`` records with a trace id of its own.
While it runs it prints, one a line, the first record id of each answered
request (the benchmark watches when those rows become visible); at the end
it writes to ``--out``: latencies, statuses, errors, and the ``log()``
timings the bench route returned (wall and CPU). A separate process, so that its CPU does
not share the server's interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any


def request_bytes(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def make_body(run: str, n: int, records: int) -> bytes:
    trace = f"{run}-{n}"
    return json.dumps({"records": [
        {"trace_id": trace, "level": "info", "category": "tool", "agent_name": "curriculum",
         "step": "design", "message": f"catalog searched ({i})",
         "details": {"tool_name": "catalog.search", "query": "python basics", "hits": i}}
        for i in range(records)
    ]}).encode()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, await reader.readexactly(length)


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.next = 0
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []
        self.log_ns: list[int] = []
        self.log_cpu_ns: list[int] = []
        #: The CPU of each timed request's first log() call (the one that
        #: runs with the request's own work in the caches), and of the others.
        self.log_cpu_first_ns: list[int] = []
        #: Per request, when the route counts them (bench/log_waits.py):
        #: each call's voluntary context switches, and its CPU.
        self.log_waits: list[list[int]] = []
        self.log_cpu_by_request: list[list[int]] = []

    def take(self) -> int | None:
        if self.next >= self.args.requests:
            return None
        self.next += 1
        return self.next - 1

    async def wait_turn(self, n: int) -> None:
        if self.args.rate:
            delay = self.started + n / self.args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    async def connection(self) -> None:
        args = self.args
        reader = writer = None
        while (n := self.take()) is not None:
            payload = request_bytes(args.host, args.port, args.path, make_body(args.run, n, args.records))
            await self.wait_turn(n)
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(args.host, args.port)
                writer.write(payload)
                status, body = await read_response(reader)
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            self.latencies.append(time.perf_counter() - started)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 200:
                answer = json.loads(body)
                self.log_ns.extend(answer["log_ns"])
                self.log_cpu_ns.extend(answer["log_cpu_ns"])
                self.log_cpu_first_ns.extend(answer["log_cpu_ns"][:1])
                if "log_waits" in answer:
                    self.log_waits.append(answer["log_waits"])
                    self.log_cpu_by_request.append(answer["log_cpu_ns"])
                if answer.get("first_id"):
                    print(answer["first_id"], flush=True)
        if writer is not None:
            writer.close()

    async def run(self) -> dict[str, Any]:
        started = self.started = time.perf_counter()
        await asyncio.gather(*(self.connection() for _ in range(self.args.concurrency)))
        return {
            "elapsed": time.perf_counter() - started,
            "latencies": self.latencies,
            "statuses": self.statuses,
            "errors": self.errors,
            "log_ns": self.log_ns,
            "log_cpu_ns": self.log_cpu_ns,
            "log_cpu_first_ns": self.log_cpu_first_ns,
            "log_waits": self.log_waits,
            "log_cpu_by_request": self.log_cpu_by_request,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/bench/work?log=1")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument("--rate", type=float, default=0, help="requests/s (open loop); 0: closed loop")
    parser.add_argument("--run", default=f"bench-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = asyncio.run(Load(args).run())
    with open(args.out, "w") as stream:
        json.dump(result, stream)
    print("done", file=sys.stderr)


if __name__ == "__main__":
    main()
