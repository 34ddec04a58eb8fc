#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""An AI-agent-like FastAPI service, for agentprof's CPython task tests (issue 15).

Usage: fastapi_agent_app.py --port N --truth FILE --upstream-port U
                            [--pg-port P] [--pool N]

uvicorn + FastAPI on one asyncio event loop; asyncpg for `async def`
endpoints, psycopg2 (libpq) for `def` endpoints, aiohttp towards an upstream
(tests/upstream/upstream_server.py, which answers /delay?ms=N after N ms).

  GET /agent/<id>?a=MS&b=MS&c=MS&q=N&d=MS      async def, on the loop:
      burn a ms; acquire an asyncpg pool connection, N x fetchval(), release
      it; burn b ms; aiohttp GET upstream /delay?ms=d; burn c ms
  GET /sync/<id>?a=MS&q=N                      def, in anyio's thread pool:
      burn a ms; N x SELECT on the pool thread's own psycopg2 connection
      (threading.local, autocommit, connected on the thread's first job)

PostgreSQL round trips, as on the wire (tests/integration/test_python_tasks.py
checks the model against pgtest.CountingProxy before it traces):
  asyncpg fetchval(sql, arg): 1 (Bind/Execute/Sync; its first use on a
      connection sends Parse/Describe/Flush ahead, in the same round trip)
  asyncpg pool release: 1. Pool.release() runs Connection.reset() in a task
      of its own (asyncio.shield), whose execute() of "SELECT
      pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;" is one
      simple Query, answered by one ReadyForQuery. It is the request's: the
      request awaits it before answering.
  psycopg2 execute() in autocommit: 1 simple Query; connecting: none (the
      start-up's ReadyForQuery answers no query; the server's DateStyle is
      ISO, so psycopg2 sends no SET).

One truth line per request (JSON) to --truth, keyed by X-Request-Id; each
CPU figure from time.thread_time_ns() on the thread that ran it:
  task_cpu_ns  the request's own asyncio task (uvicorn's, which runs the
               ASGI app: routing, validation, the handler, the drivers' code
               inside its awaits, the response), step by step (TimedApp)
  job_cpu_ns   def: the pool thread's job (its clock around the function)
  head_ns      the loop callback that read and parsed the request's head,
               before its task existed (TimedH11)
  reply_reads_ns  the loop callbacks that read its upstream reply
  helpers_ns   the tasks the drivers start for it: asyncpg's release
               (asyncio.shield), aiohttp's request writer (timed_helper)
  handler_ns   the handler's own lines alone: the loop thread's clock
               between two awaits (async), or job_cpu_ns (def)
  segments_ns  the async handler's parts one by one
  round_trips  PostgreSQL round trips, per the model above
  upstream_wait_ns  time.monotonic_ns() around the upstream call's await
  upstream_rx_ns    from the request's last bytes written to the upstream
               socket to the last reply bytes the loop read from it:
               agentprof's wait_ns (last byte sent -> last byte read) does
               not hold the loop's time between that read and the task
               running again, which upstream_wait_ns does
  tids         threads the request's task and job ran on (loop first)
Not in any truth: the event loop's own turns (epoll, its ready queue),
asyncpg's protocol callbacks (compiled code) and the start of a task;
measured untraced: 0.6-1.4 ms a request on a 2-vCPU VM.
Prints "listening PORT" once it accepts connections.
"""

import argparse
import contextvars
import functools
import json
import os
import sys
import threading
import time

import aiohttp
import aiohttp.client_proto
import aiohttp.client_reqrep
import asyncpg
import asyncpg.pool
import psycopg2
import uvicorn
from fastapi import FastAPI, Header
from fastapi.responses import PlainTextResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

from uvicorn_listening import Server

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "pg"))
import pgtest  # noqa: E402

MS_MAX = 5000
Q_MAX = 50
# One statement, bound: prepared once per pool connection (asyncpg's cache).
ASYNC_SQL = "SELECT $1::int + 1"
SYNC_SQL = "SELECT %s::int + 1"

app = FastAPI()
cfg = argparse.Namespace()
state = {}
truth_lock = threading.Lock()
local = threading.local()


def burn(ms):
    """Burns ms of this thread's CPU."""
    end = time.thread_time_ns() + ms * 1_000_000
    while time.thread_time_ns() < end:
        pass


def write_truth(line):
    with truth_lock:
        state["truth"].write(json.dumps(line) + "\n")
        state["truth"].flush()


# The truth line of the request the current task serves (set by TimedApp).
truth_var = contextvars.ContextVar("truth")


class CpuTimed:
    """Awaits a coroutine, adding up the thread CPU of its steps in this task.

    Each send() into the coroutine runs it from one suspension to the next
    on this thread; what other tasks run in between is not counted."""

    def __init__(self, coro):
        self.coro = coro
        self.ns = 0

    def __await__(self):
        it = self.coro.__await__()
        value, exc = None, None
        while True:
            t0 = time.thread_time_ns()
            try:
                out = it.send(value) if exc is None else it.throw(exc)
            except StopIteration as e:
                return e.value
            finally:
                self.ns += time.thread_time_ns() - t0
            value, exc = None, None
            try:
                value = yield out
            except BaseException as e:  # noqa: BLE001 - thrown into the coroutine
                exc = e


class TimedApp:
    """ASGI wrapper: times the request task's CPU and writes its truth line."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        rid = dict(scope["headers"]).get(b"x-request-id", b"").decode()
        line = {"request_id": rid, "path": scope["path"], "job_cpu_ns": 0,
                "head_ns": scope.get(HEAD_NS, 0), "reply_reads_ns": 0, "helpers_ns": 0,
                "tids": [threading.get_native_id()]}
        truth_var.set(line)
        timed = CpuTimed(self.inner(scope, receive, send))
        await timed
        line["task_cpu_ns"] = timed.ns
        write_truth(line)


# Where TimedH11 leaves the CPU of the read and parse of a request's head
# for TimedApp, in the ASGI scope it made.
HEAD_NS = "agentprof_test.head_ns"


class TimedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, timing the loop callback that reads and
    parses a request head (before the request's task exists)."""

    def data_received(self, data):
        t0 = time.thread_time_ns()
        cycle = self.cycle
        super().data_received(data)
        if self.cycle is not None and self.cycle is not cycle:
            self.cycle.scope[HEAD_NS] = time.thread_time_ns() - t0


def timed_helper(method):
    """Wraps a coroutine method that the drivers run as a task of its own
    for the caller (asyncpg's release under asyncio.shield(), aiohttp's
    request writer): its steps' CPU goes to the truth line of the request
    whose context the task copied."""

    @functools.wraps(method)
    async def timed(*args, **kw):
        run = CpuTimed(method(*args, **kw))
        try:
            return await run
        finally:
            line = truth_var.get(None)
            if line is not None:
                line["helpers_ns"] += run.ns

    return timed


asyncpg.pool.PoolConnectionHolder.release = timed_helper(
    asyncpg.pool.PoolConnectionHolder.release)
aiohttp.client_reqrep.ClientRequest.write_bytes = timed_helper(
    aiohttp.client_reqrep.ClientRequest.write_bytes)


class Segments:
    """The handler's own CPU on the loop thread: the clock runs between awaits only."""

    def __init__(self):
        self.done = []
        self.t0 = time.thread_time_ns()

    def stop(self):
        self.done.append(time.thread_time_ns() - self.t0)

    def start(self):
        self.t0 = time.thread_time_ns()

    async def wait(self, aw):
        """await aw with the clock stopped: other tasks run meanwhile."""
        self.stop()
        try:
            return await aw
        finally:
            self.start()


class StampedHandler(aiohttp.client_proto.ResponseHandler):
    """aiohttp's protocol, noting when the request's bytes were last written
    to the socket (the clock read just before the send(): the return from a
    send that wakes the upstream is where this busy host most often
    preempts the loop, tens of ms at times, and that is part of the wait)
    and when the loop last read reply bytes from it (just after the recv())."""

    last_tx_ns = 0
    last_rx_ns = 0
    line = None  # the truth line of the request whose call this is

    def connection_made(self, transport):
        super().connection_made(transport)
        write = transport.write

        def stamped_write(data):
            if data:
                self.last_tx_ns = time.monotonic_ns()
            write(data)

        transport.write = stamped_write

    def data_received(self, data):
        self.last_rx_ns = time.monotonic_ns()
        t0 = time.thread_time_ns()
        super().data_received(data)
        if self.line is not None:
            self.line["reply_reads_ns"] += time.thread_time_ns() - t0


# The protocol of the task's last upstream call (a response may hand its
# connection back to the pool before the caller sees it).
call_proto = contextvars.ContextVar("call_proto")


class StampedConnector(aiohttp.TCPConnector):
    """Makes StampedHandlers, and tells the calling task which one it got."""

    def __init__(self, **kw):
        super().__init__(**kw)
        if not isinstance(getattr(self, "_factory", None), functools.partial):
            raise RuntimeError("aiohttp %s: TCPConnector._factory is not the partial this "
                               "app replaces to time reads" % aiohttp.__version__)
        self._factory = functools.partial(StampedHandler, loop=self._loop)

    async def connect(self, *args, **kw):
        conn = await super().connect(*args, **kw)
        call_proto.set(conn.protocol)
        conn.protocol.line = truth_var.get(None)
        return conn


def clamp(v, hi):
    return max(0, min(v, hi))


async def upstream_call(seg, delay_ms):
    """GET /delay on the upstream; returns (wait around the await, wait to the last read)."""
    url = "http://127.0.0.1:%d/delay?ms=%d" % (cfg.upstream_port, delay_ms)
    seg.stop()
    t0 = time.monotonic_ns()
    try:
        async with state["http"].get(url) as resp:
            await resp.read()
            if resp.status != 200:
                raise RuntimeError("upstream answered %d" % resp.status)
        t1 = time.monotonic_ns()
    finally:
        seg.start()
    proto = call_proto.get()
    return t1 - t0, proto.last_rx_ns - proto.last_tx_ns


@app.get("/agent/{rid}")
async def agent(rid: str, a: int = 0, b: int = 0, c: int = 0, q: int = 1, d: int = 0,
                x_request_id: str = Header(default="")):
    seg = Segments()
    burn(clamp(a, MS_MAX))
    q = clamp(q, Q_MAX)
    pool = state["pool"]
    conn = await seg.wait(pool.acquire())
    try:
        for i in range(q):
            await seg.wait(conn.fetchval(ASYNC_SQL, i))
    finally:
        await seg.wait(pool.release(conn))
    burn(clamp(b, MS_MAX))
    wait_ns, rx_ns = await upstream_call(seg, clamp(d, MS_MAX))
    burn(clamp(c, MS_MAX))
    seg.stop()
    truth_var.get().update(kind="async", handler_ns=sum(seg.done), segments_ns=seg.done,
                           round_trips=q + 1, upstream_wait_ns=wait_ns,
                           upstream_rx_ns=rx_ns)
    return PlainTextResponse("ok %s\n" % rid, headers={"X-Request-Id": x_request_id})


def thread_conn():
    """This pool thread's own connection (the sync SQLAlchemy/psycopg pattern)."""
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = psycopg2.connect(pgtest.dsn(port=cfg.pg_port))
        conn.autocommit = True
        local.conn = conn
    return conn


@app.get("/sync/{rid}")
def sync(rid: str, a: int = 0, q: int = 1, x_request_id: str = Header(default="")):
    t0 = time.thread_time_ns()
    burn(clamp(a, MS_MAX))
    q = clamp(q, Q_MAX)
    new = getattr(local, "conn", None) is None
    with thread_conn().cursor() as cur:
        for i in range(q):
            cur.execute(SYNC_SQL, (i,))
            cur.fetchone()
    cpu_ns = time.thread_time_ns() - t0
    line = truth_var.get()  # the job runs in a copy of the task's context
    line.update(kind="def", job_cpu_ns=cpu_ns, handler_ns=cpu_ns, round_trips=q,
                connected=new)
    line["tids"].append(threading.get_native_id())
    return PlainTextResponse("ok %s\n" % rid, headers={"X-Request-Id": x_request_id})


@app.on_event("startup")
async def startup():
    state["pool"] = await asyncpg.create_pool(
        host=pgtest.PG_HOST, port=cfg.pg_port, user=pgtest.PG_USER,
        password=pgtest.PG_PASSWORD, database=pgtest.PG_DB, ssl=False,
        min_size=cfg.pool, max_size=cfg.pool)
    state["http"] = aiohttp.ClientSession(
        connector=StampedConnector(limit=0, keepalive_timeout=600))


@app.on_event("shutdown")
async def shutdown():
    await state["http"].close()
    await state["pool"].close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--truth", required=True)
    p.add_argument("--upstream-port", type=int, required=True)
    p.add_argument("--pg-port", type=int, default=pgtest.PG_PORT)
    p.add_argument("--pool", type=int, default=4, help="asyncpg pool size")
    p.parse_args(namespace=cfg)
    state["truth"] = open(cfg.truth, "a", encoding="utf-8")
    Server(uvicorn.Config(TimedApp(app), http=TimedH11, host="127.0.0.1", port=cfg.port,
                          log_level="warning",
                          timeout_keep_alive=60)).run()


if __name__ == "__main__":
    main()
