# SPDX-License-Identifier: GPL-2.0-only
"""Fake LLM upstream for the agentprof demo stack.

Speaks a small subset of the OpenAI chat-completions protocol:

    POST /v1/chat/completions
        {"model": "...", "messages": [{"role": ..., "content": ...}, ...],
         "stream": true|false, "complexity": "simple"|"moderate"|"complex"}

stream=true  -> text/event-stream, one `data: {chunk}\\n\\n` per token and a
                final `data: [DONE]\\n\\n` (chunked transfer encoding).
stream=false -> one JSON body with Content-Length.

Latency = time to first token (grows with prompt length and complexity)
plus a per-token delay, multiplied by --scale and by a random jitter factor.
The server mostly sleeps (asyncio.sleep between tokens): it is meant to look
like a remote model API, not to burn CPU.

For complexity=complex, when the last message is not a tool result, the reply
is a tool call (finish_reason "tool_calls") asking the agent to search its
history; the agent then runs the tool and calls again for the final answer.
Together the two calls take ~2-3 s at --scale 1.

    GET /healthz -> {"status": "ok"}
"""

import argparse
import asyncio
import json
import random
import re
import signal
import socket
import sys
import time
import uuid

from aiohttp import web

# Per complexity: time to first token (s), output tokens, per-token delay (s).
# Totals at scale 1 with a short prompt: simple ~0.3 s, moderate ~1 s,
# complex ~0.8 s (tool call) + ~1.9 s (answer).
PROFILES = {
    "simple": {"ttft": 0.10, "tokens": 20, "per_token": 0.010},
    "moderate": {"ttft": 0.25, "tokens": 60, "per_token": 0.0125},
    "complex": {"ttft": 0.50, "tokens": 95, "per_token": 0.015},
}
TOOL_CALL_PROFILE = {"ttft": 0.50, "tokens": 12, "per_token": 0.025}

VOCAB = (
    "the agent model context token latency request response database query "
    "user system tool result search plan step answer because therefore "
    "capacity throughput replica cluster memory cpu network upstream stream "
    "analysis summary option tradeoff estimate budget schedule forecast risk "
    "metric baseline percentile queue service demand load pod node scale"
).split()

_WORD_RE = re.compile(r"\w+|[^\w\s]")


def count_tokens(messages):
    n = 0
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            n += len(_WORD_RE.findall(content)) + 4
    return n


class FakeLLM:
    def __init__(self, args):
        self.scale = args.scale
        self.jitter = args.jitter
        self.prompt_cost = args.prompt_cost
        self.max_prompt_delay = args.max_prompt_delay
        self.rng = random.Random(args.seed)
        self.requests = 0

    def _jit(self):
        if self.jitter <= 0:
            return 1.0
        return max(0.05, 1.0 + self.rng.uniform(-self.jitter, self.jitter))

    def plan(self, messages, complexity, want_tool):
        prof = TOOL_CALL_PROFILE if want_tool else PROFILES[complexity]
        prompt_tokens = count_tokens(messages)
        prompt_delay = min(self.max_prompt_delay, prompt_tokens * self.prompt_cost)
        ttft = (prof["ttft"] + prompt_delay) * self.scale * self._jit()
        ntok = max(1, int(round(prof["tokens"] * self._jit())))
        per_token = prof["per_token"] * self.scale
        delays = [per_token * self._jit() for _ in range(ntok)]
        return prompt_tokens, ttft, delays

    def words(self, n, seed_text):
        # Deterministic-ish answer text that mentions a word of the question.
        rng = self.rng
        hint = [w for w in re.findall(r"[A-Za-z]{4,}", seed_text or "")][:3]
        out = []
        for i in range(n):
            if hint and i % 17 == 3:
                out.append(hint[i % len(hint)].lower())
            else:
                out.append(VOCAB[rng.randrange(len(VOCAB))])
        return out


def _bad(msg, status=400):
    return web.json_response({"error": {"message": msg, "type": "invalid_request_error"}},
                             status=status)


async def healthz(request):
    return web.json_response({"status": "ok", "requests": request.app["llm"].requests})


async def chat_completions(request):
    llm = request.app["llm"]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _bad("body is not valid JSON")
    if not isinstance(body, dict):
        return _bad("body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _bad("messages must be a non-empty list")
    complexity = body.get("complexity") or "simple"
    if complexity not in PROFILES:
        return _bad("complexity must be one of simple, moderate, complex")
    model = str(body.get("model") or "fake-llm-1")
    stream = bool(body.get("stream", False))
    llm.requests += 1

    last = messages[-1] if isinstance(messages[-1], dict) else {}
    want_tool = complexity == "complex" and last.get("role") != "tool"
    prompt_tokens, ttft, delays = llm.plan(messages, complexity, want_tool)
    last_user = ""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            last_user = str(m.get("content") or "")
            break

    cid = "chatcmpl-" + uuid.uuid4().hex[:24]
    created = int(time.time())
    if want_tool:
        query = " ".join(re.findall(r"[A-Za-z]{4,}", last_user)[:3]) or "plan"
        tool_calls = [
            {"index": 0, "id": "call_" + uuid.uuid4().hex[:12], "type": "function",
             "function": {"name": "search_history",
                          "arguments": json.dumps({"query": query, "limit": 5})}},
            {"index": 1, "id": "call_" + uuid.uuid4().hex[:12], "type": "function",
             "function": {"name": "conversation_stats", "arguments": "{}"}},
        ]
        text_tokens = []
        finish = "tool_calls"
    else:
        tool_calls = None
        text_tokens = llm.words(len(delays), last_user)
        finish = "stop"
    completion_tokens = len(delays)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}

    if not stream:
        await asyncio.sleep(ttft + sum(delays))
        message = {"role": "assistant", "content": " ".join(text_tokens) if text_tokens else None}
        if tool_calls:
            message["tool_calls"] = [{k: v for k, v in tc.items() if k != "index"}
                                     for tc in tool_calls]
        return web.json_response({
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        })

    resp = web.StreamResponse(status=200, headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
    })
    await resp.prepare(request)

    def chunk(delta, finish_reason=None, with_usage=False):
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created,
               "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        if with_usage:
            obj["usage"] = usage
        return ("data: " + json.dumps(obj, separators=(",", ":")) + "\n\n").encode()

    await asyncio.sleep(ttft)
    await resp.write(chunk({"role": "assistant", "content": ""}))
    if tool_calls:
        # Tool calls: "think" for the token budget, then emit the calls.
        for d in delays:
            await asyncio.sleep(d)
        for tc in tool_calls:
            await resp.write(chunk({"tool_calls": [tc]}))
    else:
        for i, (d, w) in enumerate(zip(delays, text_tokens)):
            await asyncio.sleep(d)
            await resp.write(chunk({"content": w if i == 0 else " " + w}))
    await resp.write(chunk({}, finish_reason=finish, with_usage=True))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def make_app(args):
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app["llm"] = FakeLLM(args)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/healthz", healthz)
    return app


async def serve(args):
    app = make_app(args)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        print(f"fake-llm: cannot bind {args.host}:{args.port}: {e}", file=sys.stderr)
        sock.close()
        await runner.cleanup()
        return 1
    sock.listen(1024)
    sock.setblocking(False)
    site = web.SockSite(runner, sock)
    await site.start()
    port = sock.getsockname()[1]
    print(f"listening {port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description="Fake streaming LLM upstream (OpenAI-like).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100, help="0 = pick a free port")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply every latency (0.1 for fast tests)")
    p.add_argument("--jitter", type=float, default=0.2,
                   help="relative jitter, uniform in [1-j, 1+j] (0 = none)")
    p.add_argument("--seed", type=int, default=None, help="RNG seed for jitter and text")
    p.add_argument("--prompt-cost", type=float, default=0.0002,
                   help="extra time to first token per prompt token (s, before --scale)")
    p.add_argument("--max-prompt-delay", type=float, default=1.0,
                   help="cap on the prompt-length delay (s, before --scale)")
    args = p.parse_args(argv)
    if args.scale < 0 or args.jitter < 0 or args.jitter >= 1:
        p.error("--scale must be >= 0 and --jitter in [0, 1)")
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
