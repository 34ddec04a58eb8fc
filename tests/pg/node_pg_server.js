#!/usr/bin/env node
// SPDX-License-Identifier: GPL-2.0-only
/*
 * node_pg_server - node 20 HTTP test server whose requests run a known number
 * of PostgreSQL round trips through `pg` (node-postgres, pinned in
 * tests/pg/node/package-lock.json; installed by tests/pg/nodepg.py).
 *
 * Usage: node node_pg_server.js --port N [--truth FILE] [--pg-port P] [--pool N]
 *
 * One thread runs every request (the event loop); a handler that awaits the
 * database lets the others run meanwhile. A pg.Pool of --pool clients
 * (default 8) is opened at start-up, before agentprof traces, and none is
 * ever closed for idleness. How pg talks, as seen on the wire (strace):
 *   client.query(text)           a simple Query, one write(): 1 round trip
 *   client.query(text, values)   extended protocol, unnamed statement: Parse,
 *                                Bind, Describe, Execute, Sync in one corked
 *                                write: a writev() of five iovecs, one per
 *                                message: 1 round trip
 *   {name, text, values}         the same, Parse only the first time the
 *                                name is used on that connection
 *
 * Endpoints (<id> is any path segment):
 *   GET /npg/<id>?n=K     K x "SELECT $1::int + 1" (bound), a bound
 *                         'secret-..' string, one simple Query with literals
 *   GET /nnamed/<id>      a named prepared statement, twice
 *   GET /nfail/<id>       good, "SELECT $1::int / 0" (division by zero), good
 *   GET /nmany/<id>       generate_series($1::int, $2::int): 20000 rows
 *   GET /nmulti/<id>      "SELECT <lit>; SELECT <lit>": one Query, 1 round trip
 *   GET /nwait/<id>       SELECT pg_sleep(0.1): the loop serves others meanwhile
 *   GET /nburn/<id>?ms=N[&sleep=S]
 *                         a statement (bound: "SELECT $1::int + 1", or
 *                         pg_sleep(S)), N ms of this thread's CPU, a simple Query
 *   GET /nfresh/<id>      a new pg.Client connected inside the request (libuv's
 *                         non-blocking connect while traced), 2 statements, end
 *   GET /nnopg/<id>?ms=N  no PostgreSQL, N ms of CPU
 *
 * CPU: node runs JavaScript on its main thread, but process.cpuUsage() is the
 * whole process's (libuv's pool, V8's compiler and GC threads), and there is
 * no thread CPU clock in node 20. The truth is this thread's own
 * sum_exec_runtime, the first field of /proc/thread-self/schedstat, read
 * right after process.cpuUsage(): getrusage() brings the calling thread's
 * runtime up to date (thread_group_cputime() -> task_sched_runtime()), where
 * schedstat alone lags by up to a scheduler tick. Truth fields as
 * tests/servers/asyncio_server.py's:
 *   span_cpu_ns  the thread's CPU from the request event to the response
 *                written, whatever else ran on the loop meanwhile
 *   own_cpu_ns   only this handler's synchronous stretches (the meter is
 *                paused across every await)
 *   overlapped   another request was in flight at some point during this one
 *   cpu_ns       span_cpu_ns if not overlapped, else own_cpu_ns
 *   burn_cpu_ns  the CPU burnt on purpose (/nburn, /nnopg)
 *   process_cpu_ns  process.cpuUsage() over the span, every thread's (for
 *                the record: V8's GC and compiler threads, libuv's pool)
 * and as pg_server.py's: round_trips, rows, errors, statements
 * [{fingerprint, rows, error}] (fingerprint: what agentprof must report),
 * literals (every value sent, that must not appear in agentprof's output).
 * Responses carry X-PG-Round-Trips and echo X-Request-Id.
 */
'use strict';

const fs = require('fs');
const http = require('http');
const pg = require('pg');

const PG_HOST = '127.0.0.1';
const PG_USER = 'agentprof_test';
const PG_DB = 'agentprof_test';
const MANY_ROWS = 20000;
const MS_MAX = 5000;
const NAMED_SQL = 'SELECT $1::int * 2';

function args() {
  const a = { port: 0, truth: null, pgPort: 5432, pool: 8 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    if (v[i] === '--port') a.port = Number(v[i + 1]);
    else if (v[i] === '--truth') a.truth = v[i + 1];
    else if (v[i] === '--pg-port') a.pgPort = Number(v[i + 1]);
    else if (v[i] === '--pool') a.pool = Number(v[i + 1]);
    else throw new Error('usage: node_pg_server.js --port N [--truth FILE] [--pg-port P] [--pool N]');
  }
  return a;
}

// ---- this thread's CPU ----

const schedstat = fs.openSync('/proc/thread-self/schedstat', 'r');
const statBuf = Buffer.alloc(128);

function threadCpuNs() {
  process.cpuUsage(); // getrusage(): updates this thread's sum_exec_runtime
  const n = fs.readSync(schedstat, statBuf, 0, statBuf.length, 0);
  return Number(statBuf.toString('latin1', 0, n).split(' ')[0]);
}

/* Burns ms of this thread's CPU; returns the thread CPU ns it took. */
function burn(ms) {
  const t0 = threadCpuNs();
  const end = t0 + ms * 1e6;
  let t = t0;
  while (t < end) {
    for (let i = 0; i < 20000; i++) burn.sink = (burn.sink * 31 + i) | 0;
    t = threadCpuNs();
  }
  return t - t0;
}
burn.sink = 0;

// ---- literals ----

let nextLiteral = 31337000;
const literal = () => ++nextLiteral;
const secret = () => 'secret-' + require('crypto').randomBytes(6).toString('hex');

// ---- what one request did ----

const inflight = new Set();

class Ctx {
  constructor(pool) {
    this.pool = pool;
    this.statements = [];
    this.literals = [];
    this.extra = {};
    this.ownNs = 0;
    this.segStart = threadCpuNs();
    this.spanStart = this.segStart;
    this.procStart = process.cpuUsage();
    this.overlapped = inflight.size > 0;
    for (const o of inflight) o.overlapped = true;
    inflight.add(this);
  }

  pause() {
    this.ownNs += threadCpuNs() - this.segStart;
  }

  resume() {
    this.segStart = threadCpuNs();
  }

  /* Awaits p with the meter paused: what runs meanwhile is not this handler's. */
  async wait(p) {
    this.pause();
    try {
      return await p;
    } finally {
      this.resume();
    }
  }

  /* One round trip on client c; records it. q: text or a query config. */
  async run(c, q, values, fingerprint, lits = []) {
    this.literals.push(...lits.map(String));
    const st = { fingerprint, rows: 0, error: false };
    this.statements.push(st);
    try {
      const res = await this.wait(values ? c.query(q, values) : c.query(q));
      const all = Array.isArray(res) ? res : [res];
      st.rows = all.reduce((n, r) => n + (r.rows ? r.rows.length : 0), 0);
      return res;
    } catch (e) {
      if (e instanceof Error && e.code) st.error = true;
      throw e;
    }
  }

  async client() {
    return this.wait(this.pool.connect());
  }

  finish() {
    this.pause();
    inflight.delete(this);
    const span = threadCpuNs() - this.spanStart;
    const proc = process.cpuUsage(this.procStart);
    return { span_cpu_ns: span, own_cpu_ns: this.ownNs, overlapped: this.overlapped,
             cpu_ns: this.overlapped ? this.ownNs : span,
             process_cpu_ns: (proc.user + proc.system) * 1000 };
  }
}

function qInt(q, name, dflt, max) {
  const v = Number(q.get(name) ?? dflt);
  return Number.isFinite(v) ? Math.max(0, Math.min(v, max)) : dflt;
}

// ---- endpoints ----

async function withClient(ctx, fn) {
  const c = await ctx.client();
  try {
    await fn(c);
  } finally {
    c.release();
  }
}

const HANDLERS = {
  async npg(ctx, q) {
    const n = qInt(q, 'n', 3, 200);
    await withClient(ctx, async (c) => {
      for (let i = 0; i < n; i++) {
        const v = literal();
        await ctx.run(c, 'SELECT $1::int + 1', [v], 'SELECT $1::int + $2', [v]);
      }
      const s = secret();
      await ctx.run(c, 'SELECT $1::text AS s', [s], 'SELECT $1::text AS s', [s]);
      const a = literal();
      await ctx.run(c, `SELECT ${a} + 1`, null, 'SELECT $1 + $2', [a]);
    });
  },

  async nnamed(ctx, q) {
    await withClient(ctx, async (c) => {
      for (let i = 0; i < 2; i++) {
        const v = literal();
        await ctx.run(c, { name: 'agentprof_named', text: NAMED_SQL, values: [v] }, null,
                      'SELECT $1::int * $2', [v]);
      }
    });
  },

  async nfail(ctx, q) {
    await withClient(ctx, async (c) => {
      let v = literal();
      await ctx.run(c, 'SELECT $1::int + 1', [v], 'SELECT $1::int + $2', [v]);
      v = literal();
      try {
        await ctx.run(c, 'SELECT $1::int / 0', [v], 'SELECT $1::int / $2', [v]);
      } catch (e) {
        if (e.code !== '22012') throw e; // division_by_zero
      }
      v = literal();
      await ctx.run(c, 'SELECT $1::int + 1', [v], 'SELECT $1::int + $2', [v]);
    });
  },

  async nmany(ctx, q) {
    await withClient(ctx, async (c) => {
      await ctx.run(c, 'SELECT generate_series($1::int, $2::int)', [1, MANY_ROWS],
                    'SELECT generate_series($1::int, $2::int)');
    });
  },

  async nmulti(ctx, q) {
    const a = literal(), b = literal();
    await withClient(ctx, async (c) => {
      await ctx.run(c, `SELECT ${a}; SELECT ${b}`, null, 'SELECT $1; SELECT $2', [a, b]);
    });
  },

  async nwait(ctx, q) {
    await withClient(ctx, async (c) => {
      await ctx.run(c, 'SELECT pg_sleep(0.1)', null, 'SELECT pg_sleep($1)');
    });
  },

  async nburn(ctx, q) {
    const ms = qInt(q, 'ms', 0, MS_MAX);
    const sleep = qInt(q, 'sleep', 0, 5);
    await withClient(ctx, async (c) => {
      if (sleep) {
        await ctx.run(c, 'SELECT pg_sleep($1)', [sleep], 'SELECT pg_sleep($1)');
      } else {
        const v = literal();
        await ctx.run(c, 'SELECT $1::int + 1', [v], 'SELECT $1::int + $2', [v]);
      }
      ctx.extra.burn_cpu_ns = burn(ms);
      const v = literal();
      await ctx.run(c, `SELECT ${v} + 1`, null, 'SELECT $1 + $2', [v]);
    });
  },

  async nfresh(ctx, q) {
    const c = new pg.Client(ctx.pool.options);
    await ctx.wait(c.connect());
    try {
      const v = literal();
      await ctx.run(c, 'SELECT $1::int + 1', [v], 'SELECT $1::int + $2', [v]);
      const a = literal();
      await ctx.run(c, `SELECT ${a} + 1`, null, 'SELECT $1 + $2', [a]);
    } finally {
      await ctx.wait(c.end());
    }
  },

  async nnopg(ctx, q) {
    ctx.extra.burn_cpu_ns = burn(qInt(q, 'ms', 0, MS_MAX));
  },
};

async function handle(req, res, state) {
  const u = new URL(req.url, 'http://x');
  const parts = u.pathname.split('/');
  const fn = parts.length === 3 && parts[2] ? HANDLERS[parts[1]] : undefined;
  const ctx = new Ctx(state.pool);
  let status = 200;
  if (!fn) {
    status = 404;
  } else {
    try {
      await fn(ctx, u.searchParams);
    } catch (e) {
      status = 500;
      process.stderr.write(`node_pg_server: ${req.url}: ${e.stack || e}\n`);
    }
  }
  const rid = req.headers['x-request-id'];
  const st = ctx.statements;
  const body = JSON.stringify({ round_trips: st.length }) + '\n';
  const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
                    'X-PG-Round-Trips': String(st.length) };
  if (rid !== undefined) headers['X-Request-Id'] = rid;
  res.writeHead(status, headers);
  // The response's write returns inside end(): the span ends after it.
  res.end(body);
  const cpu = ctx.finish();
  const truth = Object.assign({
    request_id: rid ?? null, method: req.method, path: req.url, status,
    tid: process.pid, pid: process.pid, round_trips: st.length,
    rows: st.reduce((n, s) => n + s.rows, 0), errors: st.filter((s) => s.error).length,
    statements: st, literals: ctx.literals, died: false,
  }, cpu, ctx.extra);
  if (state.truth !== null) fs.writeSync(state.truth, JSON.stringify(truth) + '\n');
}

async function main() {
  const a = args();
  const pool = new pg.Pool({
    host: PG_HOST, port: a.pgPort, user: PG_USER, password: PG_USER, database: PG_DB,
    ssl: false, max: a.pool, idleTimeoutMillis: 0, application_name: 'agentprof_test',
  });
  // Every client connected (and the burn loop compiled) before anyone traces.
  const clients = await Promise.all(Array.from({ length: a.pool }, () => pool.connect()));
  await Promise.all(clients.map((c) => c.query('SELECT 1')));
  clients.forEach((c) => c.release());
  burn(20);
  const state = { pool, truth: a.truth ? fs.openSync(a.truth, 'a') : null };
  const server = http.createServer((req, res) => {
    handle(req, res, state).catch((e) => {
      process.stderr.write(`node_pg_server: ${e.stack || e}\n`);
      res.destroy();
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(a.port, '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });
  const stop = () => {
    server.close();
    server.closeAllConnections();
    pool.end().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  process.stderr.write(`node_pg_server: ${e.stack || e}\n`);
  process.exit(1);
});
