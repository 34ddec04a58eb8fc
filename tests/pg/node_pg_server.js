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
 * CPU, two clocks. node runs JavaScript on one thread, the event loop's,
 * and node 20 has no thread CPU clock (process.threadCpuUsage() came later);
 * process.cpuUsage() is every thread's, and process.hrtime() is no CPU
 * clock at all. The loop thread's CPU is its own sum_exec_runtime, the
 * first field of /proc/thread-self/schedstat, read right after
 * process.cpuUsage(): getrusage() brings the calling thread's runtime up to
 * date (thread_group_cputime() -> task_sched_runtime()), where schedstat
 * alone lags by up to a scheduler tick (4 ms at HZ=250). That clock times
 * the CPU burnt on purpose. But the process works for a request on other
 * threads too: V8's helpers mark, scavenge and compile in parallel with
 * the loop (20000 rows: about as much CPU on four helpers as on the loop),
 * and libuv's pool runs crypto (pg's SCRAM). The loop wakes them, so
 * agentprof charges them to the request the loop works for, and the
 * process's CPU (process.cpuUsage(), same getrusage()) over the request is
 * its whole cost. Truth fields, as tests/servers/asyncio_server.py's:
 *   overlapped   another request was in flight at some point during this one
 *   span_cpu_ns, span_process_cpu_ns
 *                the loop thread's / the process's CPU from the request
 *                event (or its connection's, for its first request) to
 *                the response written, whatever ran meanwhile
 *   own_cpu_ns, own_process_cpu_ns
 *                the same over this handler's synchronous stretches and
 *                pg's parsing of its replies only (the meters pause across
 *                every await)
 *   cpu_ns, process_cpu_ns
 *                span_* if not overlapped (the process worked for this
 *                request alone), else own_*
 *   process_cpu_at_start_ns, process_cpu_at_end_ns
 *                the process's CPU so far at the span's ends (for the CPU
 *                of a stretch of concurrent requests as a whole)
 *   burn_cpu_ns  the loop thread's CPU burnt on purpose (/nburn, /nnopg)
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

// ---- CPU: this thread's, and the process's ----

const schedstat = fs.openSync('/proc/thread-self/schedstat', 'r');
const statBuf = Buffer.alloc(128);

/*
 * [this thread's CPU ns, the process's CPU ns]. getrusage() first: it
 * brings the calling thread's sum_exec_runtime up to date, which schedstat
 * alone shows as of the last tick or switch.
 */
function cpuNow() {
  const u = process.cpuUsage();
  const n = fs.readSync(schedstat, statBuf, 0, statBuf.length, 0);
  let v = 0;
  for (let i = 0; i < n && statBuf[i] >= 48 && statBuf[i] <= 57; i++) v = v * 10 + statBuf[i] - 48;
  return [v, (u.user + u.system) * 1000];
}

const threadCpuNs = () => cpuNow()[0];

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
let requestsSeen = 0;

/*
 * A new connection: the loop accepts it and sets it up before it reads the
 * first request's head, and agentprof charges that CPU to the request (the
 * CPU before a socket read is the read's request's). The first request's
 * span starts here if no other request began or ended in between.
 */
function onConnection(sock) {
  sock.agentprofConn = { cpu: cpuNow(), seen: requestsSeen };
}

class Ctx {
  constructor(pool, sock) {
    const conn = sock.agentprofConn;
    sock.agentprofConn = null;
    this.pool = pool;
    this.statements = [];
    this.literals = [];
    this.extra = {};
    this.own = [0, 0];
    this.seg = cpuNow();
    this.span = conn && conn.seen === requestsSeen && !inflight.size ? conn.cpu : this.seg;
    requestsSeen++;
    this.overlapped = inflight.size > 0;
    for (const o of inflight) o.overlapped = true;
    inflight.add(this);
  }

  pause() {
    this.addOwn(this.seg);
  }

  addOwn(since) {
    const now = cpuNow();
    this.own = [0, 1].map((i) => this.own[i] + now[i] - since[i]);
  }

  /*
   * pg parses a reply in its socket's 'data' event, before the handler that
   * awaits it resumes: that is this handler's work too, and the meters run
   * across it (a listener before pg's and one after).
   */
  watch(c) {
    const s = c.connection.stream;
    if (!s.agentprofCtx) {
      s.prependListener('data', () => { s.agentprofData = cpuNow(); });
      s.on('data', () => {
        if (s.agentprofCtx && s.agentprofData) s.agentprofCtx.addOwn(s.agentprofData);
        s.agentprofData = null;
      });
    }
    s.agentprofCtx = this;
  }

  resume() {
    this.seg = cpuNow();
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
    this.watch(c);
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
    requestsSeen++;
    const now = cpuNow();
    const span = [0, 1].map((i) => now[i] - this.span[i]);
    return { span_cpu_ns: span[0], own_cpu_ns: this.own[0], overlapped: this.overlapped,
             cpu_ns: this.overlapped ? this.own[0] : span[0],
             span_process_cpu_ns: span[1], own_process_cpu_ns: this.own[1],
             process_cpu_ns: this.overlapped ? this.own[1] : span[1],
             process_cpu_at_start_ns: this.span[1], process_cpu_at_end_ns: now[1] };
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
  const ctx = new Ctx(state.pool, req.socket);
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
  const state = { pool, truth: null };
  const server = http.createServer((req, res) => {
    handle(req, res, state).catch((e) => {
      process.stderr.write(`node_pg_server: ${e.stack || e}\n`);
      res.destroy();
    });
  });
  server.keepAliveTimeout = 60000;
  server.on('connection', onConnection);
  await new Promise((resolve) => server.listen(a.port, '127.0.0.1', resolve));
  const port = server.address().port;
  // The first request compiles node's HTTP path and pg's, the burn loop too:
  // before tracing, and without a truth line.
  for (const path of ['/npg/warm?n=1', '/nnopg/warm?ms=20']) {
    await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
  }
  state.truth = a.truth ? fs.openSync(a.truth, 'a') : null;
  process.stdout.write(`listening ${port}\n`);
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
