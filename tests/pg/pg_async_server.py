#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""pg_async_server - single-threaded aiohttp test server whose requests run a
known number of PostgreSQL round trips through asyncpg (its own protocol code:
extended protocol with named prepared statements, binary parameters).

Usage: pg_async_server.py --port N [--truth FILE] [--pg-port P]

One asyncpg connection is opened at start-up (before agentprof traces) and
shared; requests take it in turn (an asyncio.Lock). asyncpg round trips, as
seen on the wire (tests/pg/selftest.py checks this model against a
protocol-parsing proxy; asyncpg 0.27):
  conn.fetch*(sql, *args), first use of sql on the connection: 1 round trip
      in two turns: Parse "__asyncpg_stmt_N__" + Describe + Flush (no Sync:
      the server answers ParseComplete, ParameterDescription, RowDescription,
      no ReadyForQuery), then Bind + Execute + Sync -> ... ReadyForQuery.
      The statement cache keeps the name.
  the same sql again: 1 round trip (Bind + Execute + Sync) whose text only
      the earlier Parse (maybe in an earlier request) gave
  conn.execute(sql) without args: 1 simple Query (the text holds the literals)
Parameters are bound, so their values are not in any statement text.

Endpoints:
  GET /apg/<id>?n=K   K x fetchval("SELECT $1::int + 1", <lit>), a bound
                      'secret-..' string, and one simple Query with literals
  GET /afail/<id>     good, "SELECT $1::int / 0" (division by zero), good
  GET /amany/<id>     fetch(generate_series($1::int, $2::int), 1, 20000): 20000 rows
  GET /amulti/<id>    execute("SELECT <lit>; SELECT <lit>"): 1 round trip
  GET /awarm/<id>     a statement prepared at start-up, before tracing: 1 round
                      trip whose text agentprof cannot know (fingerprint null
                      in the truth: a "(...)" placeholder is expected)
  GET /await/<id>     execute("SELECT pg_sleep(0.1)"): the loop waits 100 ms on PG
  GET /anopg/<id>     no PostgreSQL
  GET /aburn/<id>?ms=N&sleep=S[&first=burn]
                      execute("SELECT pg_sleep(S)"), then N ms of CPU on the
                      loop (PBKDF2's place in a login), then execute("SELECT 1");
                      first=burn: the CPU first, then the two statements
  GET /ablock/<id>?ms=N
                      N ms of CPU on the loop at once, without the lock: the
                      loop reads nothing meanwhile, so what arrives queues up
                      and is read in one turn after
  GET /ahold/<id>?rounds=R&conns=C&n=K&ms=M&gap=G
                      from a pool of POOL_SIZE connections (not the shared
                      one), R times: acquire C connections at once, run K
                      fetchvals on each with M ms of asyncio.sleep between
                      statements (work while holding them), release them
                      (asyncpg's reset query, a round trip), then sleep G ms
                      holding none. The truth line's holds: per acquire, its
                      wait (acquire_wait_ns) and its hold (hold_ns, from
                      acquire() returning to release() returning); pg_hold_ns
                      sums the holds, as agentprof reports them
/aburn and /ablock add to their truth lines the CPU burnt (burn_cpu_ns) and,
as CLOCK_MONOTONIC ns, when the pg_sleep was sent (query_sent_ns) or the
block began and ended (block_start_ns, block_end_ns).
Responses carry X-PG-Round-Trips and echo X-Request-Id; truth lines as
pg_server.py's; "prepare": true marks the round trip that prepared its statement.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time

import asyncpg
from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgtest  # noqa: E402

MANY_ROWS = 20000
MS_MAX = 5000
POOL_SIZE = 2
WARM_SQL = "SELECT $1::int * 3"


class Ctx:
    def __init__(self, app):
        self.app = app
        self.conn = app["conn"]
        self.statements = []
        self.literals = []
        self.extra = {}  # endpoint-specific truth fields

    def _rt(self, fingerprint, rows=0, error=False, prepare=False):
        st = {"fingerprint": fingerprint, "rows": rows, "error": error}
        if prepare:
            st["prepare"] = True
        self.statements.append(st)
        return st

    async def bound(self, method, sql, *args, fingerprint=None, lits=()):
        """conn.<method>(sql, *args): extended protocol, prepared and cached."""
        self.literals += [str(x) for x in lits]
        fp = sql if fingerprint is None else fingerprint
        first = sql not in self.app["prepared"]
        self.app["prepared"].add(sql)
        st = self._rt(fp, prepare=first)
        try:
            res = await getattr(self.conn, method)(sql, *args)
        except asyncpg.PostgresError:
            st["error"] = True
            raise
        st["rows"] = len(res) if method == "fetch" else 1
        return res

    async def simple(self, sql, fingerprint, rows, lits=()):
        """conn.execute(sql) without args: one simple Query."""
        self.literals += [str(x) for x in lits]
        st = self._rt(fingerprint, rows=rows)
        try:
            await self.conn.execute(sql)
        except asyncpg.PostgresError:
            st["error"] = True
            raise


async def h_apg(ctx, q):
    n = max(0, min(int(q.get("n", "3")), 200))
    for _ in range(n):
        v = pgtest.literal()
        await ctx.bound("fetchval", "SELECT $1::int + 1", v, fingerprint="SELECT $1::int + $2",
                        lits=[v])
    s = pgtest.secret()
    await ctx.bound("fetchval", "SELECT $1::text AS s", s, lits=[s])
    a = pgtest.literal()
    await ctx.simple("SELECT %d + 1" % a, "SELECT $1 + $2", 1, lits=[a])


async def h_afail(ctx, q):
    v = pgtest.literal()
    await ctx.bound("fetchval", "SELECT $1::int + 1", v, fingerprint="SELECT $1::int + $2",
                    lits=[v])
    v = pgtest.literal()
    try:
        await ctx.bound("fetchval", "SELECT $1::int / 0", v, fingerprint="SELECT $1::int / $2",
                        lits=[v])
    except asyncpg.DivisionByZeroError:
        ctx.statements[-1]["rows"] = 0
    v = pgtest.literal()
    await ctx.bound("fetchval", "SELECT $1::int + 1", v, fingerprint="SELECT $1::int + $2",
                    lits=[v])


async def h_amany(ctx, q):
    await ctx.bound("fetch", "SELECT generate_series($1::int, $2::int)", 1, MANY_ROWS)


async def h_amulti(ctx, q):
    a, b = pgtest.literal(), pgtest.literal()
    await ctx.simple("SELECT %d; SELECT %d" % (a, b), "SELECT $1; SELECT $2", 2, lits=[a, b])


async def h_awarm(ctx, q):
    v = pgtest.literal()
    await ctx.bound("fetchval", WARM_SQL, v, fingerprint=None, lits=[v])
    ctx.statements[-1]["fingerprint"] = None  # prepared before tracing


async def h_await(ctx, q):
    await ctx.simple("SELECT pg_sleep(0.1)", "SELECT pg_sleep($1)", 1)


async def h_anopg(ctx, q):
    pass


def burn(ms):
    """Burns ms of this thread's CPU; returns the thread CPU ns it took."""
    t0 = time.thread_time_ns()
    end = t0 + ms * 1_000_000
    while time.thread_time_ns() < end:
        pass
    return time.thread_time_ns() - t0


def q_ms(q):
    return max(0, min(int(q.get("ms", "0")), MS_MAX))


async def h_aburn(ctx, q):
    sleep = max(0.0, min(float(q.get("sleep", "0")), 5.0))
    if q.get("first") == "burn":
        ctx.extra["burn_cpu_ns"] = burn(q_ms(q))
    ctx.extra["query_sent_ns"] = time.monotonic_ns()
    await ctx.simple("SELECT pg_sleep(%g)" % sleep, "SELECT pg_sleep($1)", 1)
    if q.get("first") != "burn":
        ctx.extra["burn_cpu_ns"] = burn(q_ms(q))
    await ctx.simple("SELECT 1", "SELECT $1", 1)


async def h_ablock(ctx, q):
    ctx.extra["block_start_ns"] = time.monotonic_ns()
    ctx.extra["burn_cpu_ns"] = burn(q_ms(q))
    ctx.extra["block_end_ns"] = time.monotonic_ns()


async def hold_one(pool, n, ms, holds):
    """One acquire of a pool connection: n statements with ms between, then release."""
    t0 = time.monotonic_ns()
    async with pool.acquire() as conn:
        t1 = time.monotonic_ns()
        for i in range(n):
            if i:
                await asyncio.sleep(ms / 1000)
            await conn.fetchval("SELECT $1::int + 1", i)
    t2 = time.monotonic_ns()
    holds.append({"acquire_wait_ns": t1 - t0, "hold_ns": t2 - t1})


async def h_ahold(ctx, q):
    rounds = max(1, min(int(q.get("rounds", "1")), 10))
    conns = max(1, min(int(q.get("conns", "1")), POOL_SIZE))
    n = max(1, min(int(q.get("n", "2")), 50))
    gap = q_ms({"ms": q.get("gap", "0")})
    holds = []
    for r in range(rounds):
        if r:
            await asyncio.sleep(gap / 1000)
        await asyncio.gather(*[hold_one(ctx.app["pool"], n, q_ms(q), holds)
                               for _ in range(conns)])
    ctx.extra["holds"] = holds
    ctx.extra["pg_hold_ns"] = sum(h["hold_ns"] for h in holds)


HANDLERS = {"apg": h_apg, "afail": h_afail, "amany": h_amany, "amulti": h_amulti,
            "awarm": h_awarm, "await": h_await, "anopg": h_anopg, "aburn": h_aburn,
            "ablock": h_ablock, "ahold": h_ahold}
# No PostgreSQL, or the pool's connections: need not wait for the shared one.
UNLOCKED = {h_ablock, h_ahold}


async def run_handler(fn, ctx, request):
    """Runs fn; returns the status to answer with."""
    try:
        await fn(ctx, request.query)
    except Exception as e:  # noqa: BLE001 - reported to the client
        sys.stderr.write("pg_async_server: %s: %s: %s\n" % (request.path_qs,
                                                            type(e).__name__, e))
        return 500
    return 200


async def handle(request):
    parts = request.path.split("/")
    fn = HANDLERS.get(parts[1]) if len(parts) == 3 and parts[2] else None
    ctx = Ctx(request.app)
    status = 200
    if fn is None:
        status = 404
    elif fn in UNLOCKED:
        status = await run_handler(fn, ctx, request)
    else:
        async with request.app["lock"]:
            status = await run_handler(fn, ctx, request)
    rid = request.headers.get("X-Request-Id")
    rts = len(ctx.statements)
    truth = {
        "request_id": rid, "method": request.method, "path": request.path_qs,
        "status": status, "tid": threading.get_native_id(), "pid": os.getpid(),
        "round_trips": rts, "rows": sum(s["rows"] for s in ctx.statements),
        "errors": sum(1 for s in ctx.statements if s["error"]),
        "statements": ctx.statements, "literals": ctx.literals, "died": False,
    }
    truth.update(ctx.extra)
    tf = request.app["truth"]
    if tf:
        tf.write(json.dumps(truth) + "\n")
        tf.flush()
    headers = {"X-PG-Round-Trips": str(rts)}
    if rid is not None:
        headers["X-Request-Id"] = rid
    return web.Response(status=status, text=json.dumps({"round_trips": rts}) + "\n",
                        content_type="application/json", headers=headers)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--truth")
    ap.add_argument("--pg-port", type=int, default=pgtest.PG_PORT)
    a = ap.parse_args()

    app = web.Application()
    app["truth"] = open(a.truth, "a") if a.truth else None
    app["lock"] = asyncio.Lock()
    app["conn"] = await asyncpg.connect(host=pgtest.PG_HOST, port=a.pg_port, user=pgtest.PG_USER,
                                        password=pgtest.PG_PASSWORD, database=pgtest.PG_DB,
                                        ssl=False)
    app["pool"] = await asyncpg.create_pool(host=pgtest.PG_HOST, port=a.pg_port,
                                            user=pgtest.PG_USER, password=pgtest.PG_PASSWORD,
                                            database=pgtest.PG_DB, ssl=False,
                                            min_size=POOL_SIZE, max_size=POOL_SIZE)
    # prepared (and cached by asyncpg) before anyone traces this process
    await app["conn"].fetchval(WARM_SQL, 1)
    app["prepared"] = {WARM_SQL}
    app.router.add_get("/{route}/{id}", handle)
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", a.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print("listening %d" % port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    await runner.cleanup()
    await app["pool"].close()
    await app["conn"].close()


if __name__ == "__main__":
    asyncio.run(main())
