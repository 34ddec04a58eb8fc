# SPDX-License-Identifier: GPL-2.0-only
"""Demo AI-agent API service (FastAPI on uvicorn, asyncpg, aiohttp).

The workload agentprof is built to profile: one uvicorn worker, async
endpoints, conversation state in PostgreSQL, a streamed upstream "model" call
per query (tools/fake-llm), extra tool round trips for complex queries.

Endpoints
    POST /auth/login                    {username, password} -> {token}
    POST /agent/conversation            {initial_query, _metadata:{complexity}}
                                        -> {conversation_id, response, ...}
    POST /agent/query                   {conversation_id, query, _metadata:{complexity}}
                                        -> {conversation_id, response, ...}
    POST /agent/conversation/{id}/end   -> {conversation_id, status}
    GET  /healthz

Run directly:   /usr/bin/python3 agent.py --port 0 --dsn ... --llm-url ...
or via uvicorn: AGENT_DSN=... AGENT_LLM_URL=... /usr/bin/python3 -m uvicorn agent:app
                (from this directory; settings then come from AGENT_* env vars).
"""

import argparse
import asyncio
import contextvars
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import sys
import time
import urllib.parse
from typing import Literal, Optional

import aiohttp
import asyncpg
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

DEFAULT_DSN = "postgresql://postgres@/agentdemo?host=/var/run/postgresql"

SETTINGS = {
    "dsn": os.environ.get("AGENT_DSN", DEFAULT_DSN),
    "llm_url": os.environ.get("AGENT_LLM_URL", "http://127.0.0.1:8100"),
    "model": os.environ.get("AGENT_MODEL", "fake-llm-1"),
    "pool_min": int(os.environ.get("AGENT_POOL_MIN", "2")),
    "pool_max": int(os.environ.get("AGENT_POOL_MAX", "10")),
    "llm_conns": int(os.environ.get("AGENT_LLM_CONNS", "100")),
    "pbkdf2_iterations": int(os.environ.get("AGENT_PBKDF2_ITERATIONS", "50000")),
    "history_limit": int(os.environ.get("AGENT_HISTORY_LIMIT", "40")),
    "context_tokens": int(os.environ.get("AGENT_CONTEXT_TOKENS", "3000")),
    "create_db": os.environ.get("AGENT_CREATE_DB", "") not in ("", "0"),
    "token_ttl_s": int(os.environ.get("AGENT_TOKEN_TTL", "86400")),
    # Server time added to each query turn while it holds its pool connection
    # (SELECT pg_sleep): a slow query, e.g. a vector search, so that a load
    # test can make the pool the bottleneck (tools/validate_plan.py).
    "db_hold_ms": float(os.environ.get("AGENT_DB_HOLD_MS", "0")),
    # CPU burnt on the event loop per query turn, as a real tokenizer or
    # prompt templating would (tools/validate_plan.py): a demand per request
    # that does not shrink when the loop batches under load.
    "cpu_ms": float(os.environ.get("AGENT_CPU_MS", "0")),
}

SYSTEM_PROMPT = (
    "You are a helpful assistant for a capacity-planning team. Answer concisely, "
    "cite tool results when you used tools, and say when you are unsure."
)

# --------------------------------------------------------------------------
# Schema (idempotent; serialized by an advisory lock so concurrent starts work)
# --------------------------------------------------------------------------

SCHEMA_LOCK_KEY = 0x61676e74  # "agnt"

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    password_hash bytea NOT NULL,
    salt          bytea NOT NULL,
    iterations    integer NOT NULL CHECK (iterations > 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sessions (
    token_hash  bytea PRIMARY KEY,              -- sha256(token); the token itself is never stored
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user_id_idx ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE IF NOT EXISTS conversations (
    id             bigserial PRIMARY KEY,
    user_id        bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title          text NOT NULL,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended')),
    message_count  integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    ended_at       timestamptz
);
CREATE INDEX IF NOT EXISTS conversations_user_id_created_at_idx
    ON conversations (user_id, created_at);

CREATE TABLE IF NOT EXISTS messages (
    id               bigserial PRIMARY KEY,
    conversation_id  bigint NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content          text NOT NULL,
    token_count      integer NOT NULL DEFAULT 0,
    complexity       text CHECK (complexity IN ('simple', 'moderate', 'complex')),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS messages_conversation_id_created_at_idx
    ON messages (conversation_id, created_at, id);
CREATE INDEX IF NOT EXISTS messages_content_fts_idx
    ON messages USING gin (to_tsvector('english', content));

CREATE TABLE IF NOT EXISTS tool_results (
    id               bigserial PRIMARY KEY,
    conversation_id  bigint NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    message_id       bigint REFERENCES messages(id) ON DELETE SET NULL,
    tool_name        text NOT NULL,
    call_id          text NOT NULL,
    arguments        jsonb NOT NULL,
    result           jsonb NOT NULL,
    duration_ms      double precision NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tool_results_conversation_id_created_at_idx
    ON tool_results (conversation_id, created_at);
CREATE INDEX IF NOT EXISTS tool_results_message_id_idx ON tool_results (message_id);
"""

# --------------------------------------------------------------------------
# Per-request timing (reported in a Server-Timing response header)
# --------------------------------------------------------------------------

_timing = contextvars.ContextVar("agent_timing", default=None)


class Timing:
    __slots__ = ("db_s", "db_n", "llm_s", "llm_n", "hash_cpu_ns")

    def __init__(self):
        self.hash_cpu_ns = 0
        self.db_s = 0.0
        self.db_n = 0
        self.llm_s = 0.0
        self.llm_n = 0


class _Clock:
    def __init__(self, kind):
        self.kind = kind

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        t = _timing.get()
        if t is not None:
            dt = time.perf_counter() - self.t0
            if self.kind == "db":
                t.db_s += dt
                t.db_n += 1
            else:
                t.llm_s += dt
                t.llm_n += 1
        return False


def db_clock():
    return _Clock("db")


def llm_clock():
    return _Clock("llm")


class RequestContextMiddleware:
    """Pure ASGI middleware: echo X-Request-Id, add Server-Timing."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = None
        for k, v in scope.get("headers") or ():
            if k == b"x-request-id":
                rid = v
                break
        timing = Timing()
        token = _timing.set(timing)
        t0 = time.perf_counter()

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                if rid is not None:
                    headers.append((b"x-request-id", rid))
                total = (time.perf_counter() - t0) * 1000
                st = (f'db;dur={timing.db_s * 1000:.2f};desc="{timing.db_n} queries", '
                      f'llm;dur={timing.llm_s * 1000:.2f};desc="{timing.llm_n} calls", '
                      f'hash;dur={timing.hash_cpu_ns / 1e6:.2f};desc="PBKDF2 thread CPU", '
                      f"total;dur={total:.2f}")
                headers.append((b"server-timing", st.encode()))
                message = dict(message, headers=headers)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            _timing.reset(token)


# --------------------------------------------------------------------------
# App state
# --------------------------------------------------------------------------

app = FastAPI(title="agentprof demo agent", version="1.0")
app.add_middleware(RequestContextMiddleware)


class State:
    pool: Optional[asyncpg.Pool] = None
    http: Optional[aiohttp.ClientSession] = None


STATE = State()


def _dsn_database(dsn):
    u = urllib.parse.urlsplit(dsn)
    q = urllib.parse.parse_qs(u.query)
    for key in ("dbname", "database"):
        if key in q:
            return q[key][0]
    db = urllib.parse.unquote(u.path.lstrip("/"))
    return db or None


async def ensure_database(dsn):
    dbname = _dsn_database(dsn)
    if not dbname:
        return
    try:
        conn = await asyncpg.connect(dsn)
        await conn.close()
        return
    except asyncpg.InvalidCatalogNameError:
        pass
    conn = await asyncpg.connect(dsn, database="postgres")
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname)
        if not exists:
            quoted = '"' + dbname.replace('"', '""') + '"'
            try:
                await conn.execute(f"CREATE DATABASE {quoted}")
                print(f"agent: created database {dbname}", file=sys.stderr, flush=True)
            except asyncpg.DuplicateDatabaseError:
                pass
    finally:
        await conn.close()


@app.on_event("startup")
async def startup():
    dsn = SETTINGS["dsn"]
    if SETTINGS["create_db"]:
        await ensure_database(dsn)
    try:
        STATE.pool = await asyncpg.create_pool(
            dsn, min_size=SETTINGS["pool_min"], max_size=SETTINGS["pool_max"])
    except asyncpg.InvalidCatalogNameError as e:
        raise SystemExit(f"agent: {e} (pass --create-db to create it)")
    async with STATE.pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_KEY)
            await conn.execute(SCHEMA)
    connector = aiohttp.TCPConnector(limit=SETTINGS["llm_conns"], keepalive_timeout=60)
    STATE.http = aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=120, sock_connect=5))


@app.on_event("shutdown")
async def shutdown():
    if STATE.http is not None:
        await STATE.http.close()
    if STATE.pool is not None:
        await STATE.pool.close()


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

Complexity = Literal["simple", "moderate", "complex"]


class Metadata(BaseModel):
    complexity: Optional[Complexity] = None

    class Config:
        extra = "allow"


class LoginIn(BaseModel):
    username: str = Field(..., min_length=1, max_length=128)
    password: str = Field(..., min_length=1, max_length=1024)


class ConversationIn(BaseModel):
    initial_query: str = Field(..., min_length=1, max_length=20000)
    metadata: Metadata = Field(default_factory=Metadata, alias="_metadata")


class QueryIn(BaseModel):
    conversation_id: int
    query: str = Field(..., min_length=1, max_length=20000)
    metadata: Metadata = Field(default_factory=Metadata, alias="_metadata")


# --------------------------------------------------------------------------
# Auth
# --------------------------------------------------------------------------

def hash_password(password, salt, iterations):
    # Timed in thread CPU: the ground truth a profiler's per-request CPU is
    # checked against (a login costs at least its hashes).
    t0 = time.thread_time_ns()
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    t = _timing.get()
    if t is not None:
        t.hash_cpu_ns += time.thread_time_ns() - t0
    return digest


def token_digest(token):
    return hashlib.sha256(token.encode()).digest()


@app.post("/auth/login")
async def login(body: LoginIn):
    pool = STATE.pool
    with db_clock():
        row = await pool.fetchrow(
            "SELECT id, password_hash, salt, iterations FROM users WHERE username = $1",
            body.username)
    if row is None:
        # Demo behaviour: the first login creates the user.
        salt = secrets.token_bytes(16)
        iterations = SETTINGS["pbkdf2_iterations"]
        pw_hash = hash_password(body.password, salt, iterations)
        with db_clock():
            user_id = await pool.fetchval(
                "INSERT INTO users (username, password_hash, salt, iterations) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING RETURNING id",
                body.username, pw_hash, salt, iterations)
        if user_id is None:  # lost a race with a concurrent first login
            with db_clock():
                row = await pool.fetchrow(
                    "SELECT id, password_hash, salt, iterations FROM users "
                    "WHERE username = $1", body.username)
    else:
        user_id = None
    if user_id is None:
        if row is None or not hmac.compare_digest(
                hash_password(body.password, bytes(row["salt"]), row["iterations"]),
                bytes(row["password_hash"])):
            raise HTTPException(status_code=401, detail="invalid username or password")
        user_id = row["id"]
        if row["iterations"] != SETTINGS["pbkdf2_iterations"]:
            # The work factor changed since this hash was stored (a run with
            # other settings shares the database): rehash, as services do on
            # login, so every login costs the configured PBKDF2.
            salt = secrets.token_bytes(16)
            iterations = SETTINGS["pbkdf2_iterations"]
            with db_clock():
                await pool.execute(
                    "UPDATE users SET password_hash = $1, salt = $2, iterations = $3 "
                    "WHERE id = $4",
                    hash_password(body.password, salt, iterations), salt, iterations, user_id)
    token = secrets.token_urlsafe(32)
    with db_clock():
        await pool.execute(
            "INSERT INTO sessions (token_hash, user_id, expires_at) "
            "VALUES ($1, $2, now() + make_interval(secs => $3))",
            token_digest(token), user_id, float(SETTINGS["token_ttl_s"]))
    t = _timing.get()
    if t is not None:
        print(f"login hash_cpu_ns {t.hash_cpu_ns}", flush=True)
    return {"token": token, "token_type": "bearer", "user_id": user_id}


async def current_user(request: Request) -> int:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(status_code=401, detail="missing bearer token",
                            headers={"WWW-Authenticate": "Bearer"})
    with db_clock():
        user_id = await STATE.pool.fetchval(
            "SELECT user_id FROM sessions WHERE token_hash = $1 AND expires_at > now()",
            token_digest(token.strip()))
    if user_id is None:
        raise HTTPException(status_code=401, detail="invalid or expired token",
                            headers={"WWW-Authenticate": "Bearer"})
    return user_id


# --------------------------------------------------------------------------
# Prompt assembly, LLM call, tools
# --------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def count_tokens(text):
    return len(_TOKEN_RE.findall(text))


def build_prompt(history, query, complexity):
    """History is oldest first. Keep the newest messages that fit the budget."""
    budget = SETTINGS["context_tokens"]
    sys_msg = {"role": "system",
               "content": SYSTEM_PROMPT + f"\nRequest class: {complexity}."}
    used = count_tokens(sys_msg["content"]) + count_tokens(query)
    kept = []
    for role, content in reversed(history):
        n = count_tokens(content) + 4
        if used + n > budget:
            break
        used += n
        kept.append({"role": role, "content": content})
    kept.reverse()
    messages = [sys_msg] + kept + [{"role": "user", "content": query}]
    return messages, used


def burn_cpu(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class UpstreamError(Exception):
    pass


async def call_llm(messages, complexity, request_id=None):
    """Streamed chat completion. Returns (content, tool_calls, usage)."""
    url = SETTINGS["llm_url"].rstrip("/") + "/v1/chat/completions"
    payload = {"model": SETTINGS["model"], "messages": messages, "stream": True,
               "complexity": complexity}
    headers = {"Accept": "text/event-stream"}
    if request_id:
        headers["X-Request-Id"] = request_id
    parts = []
    tool_calls = {}
    usage = {}
    with llm_clock():
        try:
            async with STATE.http.post(url, json=payload, headers=headers) as resp:
                if resp.status != 200:
                    body = await resp.text()
                    raise UpstreamError(f"upstream status {resp.status}: {body[:200]}")
                done = False
                async for raw in resp.content:
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        done = True
                        break
                    chunk = json.loads(data)
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        if delta.get("content"):
                            parts.append(delta["content"])
                        for tc in delta.get("tool_calls") or ():
                            tool_calls[tc.get("index", len(tool_calls))] = tc
                if not done:
                    raise UpstreamError("upstream stream ended without [DONE]")
        except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as e:
            raise UpstreamError(f"upstream error: {e!r}") from e
    return "".join(parts), [tool_calls[k] for k in sorted(tool_calls)], usage


async def tool_search_history(conn, user_id, conversation_id, args):
    query = str(args.get("query") or "")[:200]
    limit = max(1, min(int(args.get("limit") or 5), 20))
    with db_clock():
        rows = await conn.fetch(
            """
            SELECT m.id, m.conversation_id, m.role, left(m.content, 160) AS snippet
            FROM messages m
            JOIN conversations c ON c.id = m.conversation_id
            WHERE c.user_id = $1
              AND to_tsvector('english', m.content) @@ plainto_tsquery('english', $2)
            ORDER BY m.created_at DESC
            LIMIT $3
            """, user_id, query, limit)
    return {"query": query,
            "hits": [{"message_id": r["id"], "conversation_id": r["conversation_id"],
                      "role": r["role"], "snippet": r["snippet"]} for r in rows]}


async def tool_conversation_stats(conn, user_id, conversation_id, args):
    with db_clock():
        rows = await conn.fetch(
            "SELECT role, count(*) AS n, coalesce(sum(token_count), 0) AS tokens "
            "FROM messages WHERE conversation_id = $1 GROUP BY role ORDER BY role",
            conversation_id)
    return {"conversation_id": conversation_id,
            "by_role": {r["role"]: {"messages": r["n"], "tokens": int(r["tokens"])}
                        for r in rows}}


TOOLS = {
    "search_history": tool_search_history,
    "conversation_stats": tool_conversation_stats,
}


async def run_tools(conn, user_id, conversation_id, user_message_id, tool_calls):
    """Run the tool calls, store them in tool_results, return tool messages."""
    out = []
    for tc in tool_calls:
        fn = tc.get("function") or {}
        name = fn.get("name", "")
        call_id = tc.get("id") or ""
        try:
            args = json.loads(fn.get("arguments") or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be an object")
        except ValueError as e:
            args, result, dt = {}, {"error": f"bad arguments: {e}"}, 0.0
        else:
            impl = TOOLS.get(name)
            t0 = time.perf_counter()
            result = (await impl(conn, user_id, conversation_id, args)) if impl else \
                {"error": f"unknown tool {name!r}"}
            dt = (time.perf_counter() - t0) * 1000
        result_json = json.dumps(result)
        with db_clock():
            await conn.execute(
                "INSERT INTO tool_results (conversation_id, message_id, tool_name, call_id, "
                "arguments, result, duration_ms) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7)",
                conversation_id, user_message_id, name, call_id, json.dumps(args),
                result_json, dt)
        out.append({"role": "tool", "tool_call_id": call_id, "name": name,
                    "content": result_json})
    return out


# --------------------------------------------------------------------------
# The agent turn
# --------------------------------------------------------------------------

async def agent_turn(request, user_id, conversation_id, query, complexity, new):
    pool = STATE.pool
    rid = request.headers.get("x-request-id")
    async with pool.acquire() as conn:
        if new:
            history = []
        else:
            with db_clock():
                conv = await conn.fetchrow(
                    "SELECT status FROM conversations WHERE id = $1 AND user_id = $2",
                    conversation_id, user_id)
            if conv is None:
                raise HTTPException(status_code=404, detail="conversation not found")
            if conv["status"] != "active":
                raise HTTPException(status_code=409, detail="conversation has ended")
            with db_clock():
                rows = await conn.fetch(
                    "SELECT role, content FROM messages WHERE conversation_id = $1 "
                    "AND role IN ('user', 'assistant') "
                    "ORDER BY created_at DESC, id DESC LIMIT $2",
                    conversation_id, SETTINGS["history_limit"])
            history = [(r["role"], r["content"]) for r in reversed(rows)]
        q_tokens = count_tokens(query)
        with db_clock():
            user_msg_id = await conn.fetchval(
                "INSERT INTO messages (conversation_id, role, content, token_count, complexity) "
                "VALUES ($1, 'user', $2, $3, $4) RETURNING id",
                conversation_id, query, q_tokens, complexity)
        if SETTINGS["db_hold_ms"] > 0:
            with db_clock():
                await conn.execute("SELECT pg_sleep($1)", SETTINGS["db_hold_ms"] / 1000)

    # Do not hold a pool connection while waiting on the model.
    messages, prompt_tokens = build_prompt(history, query, complexity)
    if SETTINGS["cpu_ms"] > 0:
        burn_cpu(SETTINGS["cpu_ms"] / 1000)
    content, tool_calls, usage = await call_llm(messages, complexity, rid)
    n_tools = 0
    if tool_calls:
        async with pool.acquire() as conn:
            tool_msgs = await run_tools(conn, user_id, conversation_id, user_msg_id,
                                        tool_calls)
        n_tools = len(tool_msgs)
        messages.append({"role": "assistant", "content": content or "",
                         "tool_calls": tool_calls})
        messages.extend(tool_msgs)
        content, _, usage2 = await call_llm(messages, complexity, rid)
        usage = {k: usage.get(k, 0) + usage2.get(k, 0) for k in set(usage) | set(usage2)}

    a_tokens = count_tokens(content)
    async with pool.acquire() as conn:
        async with conn.transaction():
            with db_clock():
                msg_id = await conn.fetchval(
                    "INSERT INTO messages (conversation_id, role, content, token_count, "
                    "complexity) VALUES ($1, 'assistant', $2, $3, $4) RETURNING id",
                    conversation_id, content, a_tokens, complexity)
            with db_clock():
                await conn.execute(
                    "UPDATE conversations SET message_count = message_count + 2, "
                    "updated_at = now() WHERE id = $1", conversation_id)
    return {
        "conversation_id": conversation_id,
        "message_id": msg_id,
        "response": content,
        "complexity": complexity,
        "tool_calls": n_tools,
        "tokens": {"prompt_estimate": prompt_tokens, "completion": a_tokens,
                   "upstream_usage": usage},
    }


def _complexity(meta, request):
    c = meta.complexity or request.headers.get("x-request-class") or "simple"
    if c not in ("simple", "moderate", "complex"):
        c = "simple"
    return c


@app.post("/agent/conversation")
async def start_conversation(body: ConversationIn, request: Request,
                             user_id: int = Depends(current_user)):
    complexity = _complexity(body.metadata, request)
    title = body.initial_query.strip().splitlines()[0][:80] if body.initial_query.strip() \
        else "untitled"
    with db_clock():
        conv_id = await STATE.pool.fetchval(
            "INSERT INTO conversations (user_id, title) VALUES ($1, $2) RETURNING id",
            user_id, title)
    return await agent_turn(request, user_id, conv_id, body.initial_query, complexity,
                            new=True)


@app.post("/agent/query")
async def continue_conversation(body: QueryIn, request: Request,
                                user_id: int = Depends(current_user)):
    complexity = _complexity(body.metadata, request)
    return await agent_turn(request, user_id, body.conversation_id, body.query, complexity,
                            new=False)


@app.post("/agent/conversation/{conversation_id}/end")
async def end_conversation(conversation_id: int, user_id: int = Depends(current_user)):
    with db_clock():
        row = await STATE.pool.fetchrow(
            "UPDATE conversations SET status = 'ended', "
            "ended_at = coalesce(ended_at, now()), updated_at = now() "
            "WHERE id = $1 AND user_id = $2 RETURNING status, message_count",
            conversation_id, user_id)
    if row is None:
        raise HTTPException(status_code=404, detail="conversation not found")
    return {"conversation_id": conversation_id, "status": row["status"],
            "messages": row["message_count"]}


@app.get("/healthz")
async def healthz():
    try:
        with db_clock():
            await STATE.pool.fetchval("SELECT 1")
    except Exception as e:  # noqa: BLE001 - report any DB failure
        return JSONResponse({"status": "error", "db": repr(e)}, status_code=503)
    return {"status": "ok"}


@app.exception_handler(UpstreamError)
async def upstream_error_handler(request, exc):
    return JSONResponse({"detail": str(exc)}, status_code=502)


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description="Demo AI-agent API (FastAPI/uvicorn).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 = pick a free port")
    p.add_argument("--dsn", default=SETTINGS["dsn"],
                   help="PostgreSQL DSN (default: %(default)s; e.g. "
                        "postgresql://agentdemo:agentdemo@127.0.0.1:5432/agentdemo)")
    p.add_argument("--llm-url", default=SETTINGS["llm_url"],
                   help="base URL of the (fake) LLM upstream")
    p.add_argument("--create-db", action="store_true", default=SETTINGS["create_db"],
                   help="create the database if it does not exist")
    p.add_argument("--pool-min", type=int, default=SETTINGS["pool_min"])
    p.add_argument("--pool-max", type=int, default=SETTINGS["pool_max"])
    p.add_argument("--pbkdf2-iterations", type=int, default=SETTINGS["pbkdf2_iterations"])
    p.add_argument("--log-level", default="warning")
    p.add_argument("--access-log", action="store_true")
    args = p.parse_args(argv)

    SETTINGS.update(dsn=args.dsn, llm_url=args.llm_url, create_db=args.create_db,
                    pool_min=args.pool_min, pool_max=args.pool_max,
                    pbkdf2_iterations=args.pbkdf2_iterations)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        print(f"agent: cannot bind {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    sock.listen(2048)
    port = sock.getsockname()[1]

    config = uvicorn.Config(app, log_level=args.log_level, access_log=args.access_log,
                            lifespan="on", timeout_keep_alive=30)
    server = uvicorn.Server(config)

    async def run():
        # Print the port only once startup (DB connect, schema) has succeeded.
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            print(f"listening {port}", flush=True)
        await task

    asyncio.run(run())
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
