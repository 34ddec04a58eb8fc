# SPDX-License-Identifier: GPL-2.0-only
"""Locust load test for the demo agent (tools/demo-agent/agent.py).

Adapted from the scaling chapter's AIAgentUser: each user logs in, starts a
conversation with its first query, continues it with simple / moderate /
complex queries (weights 10:5:2) and now and then ends it (weight 1).

Every request carries X-Request-Class (simple|moderate|complex for queries,
"control" for login and end) and a unique X-Request-Id. Requests are named
by route template so per-route stats line up with agentprof's routes:
    /auth/login  /agent/conversation  /agent/query  /agent/conversation/:id/end

Run headless:
    /usr/bin/python3 -m locust -f tools/loadtest/locustfile.py --headless \\
        -u 20 -r 5 -t 20s --host http://127.0.0.1:PORT --csv PREFIX --only-summary

Environment:
    AGENTPROF_WAIT_MIN=1 AGENTPROF_WAIT_MAX=3  think time between tasks (s)
    AGENTPROF_USERS=10000     usernames are test_user_1..N
    AGENTPROF_PASSWORD=test_password
    AGENTPROF_SLO=1           fail requests slower than the per-class thresholds
    AGENTPROF_SLO_SCALE=1     multiply the thresholds (2 s / 5 s / 10 s)
    AGENTPROF_CLASS_IN_NAME=0 1 = name queries "/agent/query [complex]" etc.
"""

import os
import random
import uuid

from locust import HttpUser, between, task


def _env_float(name, default):
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return float(default)


WAIT_MIN = _env_float("AGENTPROF_WAIT_MIN", 1)
WAIT_MAX = max(WAIT_MIN, _env_float("AGENTPROF_WAIT_MAX", 3))
N_USERS = int(_env_float("AGENTPROF_USERS", 10000))
PASSWORD = os.environ.get("AGENTPROF_PASSWORD", "test_password")
SLO_CHECK = os.environ.get("AGENTPROF_SLO", "1") not in ("0", "", "no", "false")
SLO_SCALE = _env_float("AGENTPROF_SLO_SCALE", 1)
CLASS_IN_NAME = os.environ.get("AGENTPROF_CLASS_IN_NAME", "0") not in ("0", "", "no", "false")

THRESHOLDS_MS = {"simple": 2000, "moderate": 5000, "complex": 10000}

QUERIES = {
    "simple": [
        "What is machine learning?",
        "Explain the concept of AI agents.",
        "What's the difference between supervised and unsupervised learning?",
        "Can you tell me about natural language processing?",
        "What are large language models?",
    ],
    "moderate": [
        "What's the weather like in New York today?",
        "Can you summarize the latest news about artificial intelligence?",
        "What are the steps to implement a recommendation system?",
        "Compare and contrast different types of neural networks.",
        "What are the best practices for prompt engineering?",
    ],
    "complex": [
        "Analyze the performance of tech stocks over the past month and suggest "
        "investment strategies.",
        "Create a weekly meal plan for a family of four with dietary restrictions "
        "including gluten-free and dairy-free.",
        "Help me plan a two-week vacation to Europe, including flights, "
        "accommodations, and activities.",
        "Compare the environmental impact of electric vehicles versus hybrid vehicles "
        "over a 10-year period.",
        "Develop a marketing strategy for a new AI-powered fitness application "
        "targeting millennials.",
    ],
}


class AIAgentUser(HttpUser):
    wait_time = between(WAIT_MIN, WAIT_MAX)

    def on_start(self):
        self.token = None
        self.conversation_id = None
        self._login()

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _headers(req_class, token=None):
        h = {"X-Request-Class": req_class, "X-Request-Id": uuid.uuid4().hex}
        if token:
            h["Authorization"] = f"Bearer {token}"
        return h

    def _login(self):
        username = f"test_user_{random.randint(1, N_USERS)}"
        with self.client.post("/auth/login", name="/auth/login",
                              json={"username": username, "password": PASSWORD},
                              headers=self._headers("control"),
                              catch_response=True) as r:
            token = None
            if r.status_code == 200:
                try:
                    token = r.json().get("token")
                except ValueError:
                    token = None
            if token:
                self.token = token
                r.success()
            else:
                r.failure(f"login failed: status {r.status_code}")
        return self.token is not None

    def _send_query(self, query_text, complexity):
        if not self.token and not self._login():
            return
        if self.conversation_id:
            url = name = "/agent/query"
            payload = {"conversation_id": self.conversation_id, "query": query_text}
        else:
            url = name = "/agent/conversation"
            payload = {"initial_query": query_text}
        payload["_metadata"] = {"complexity": complexity, "test_run": True}
        if CLASS_IN_NAME:
            name = f"{name} [{complexity}]"

        with self.client.post(url, name=name, json=payload,
                              headers=self._headers(complexity, self.token),
                              catch_response=True) as r:
            if r.status_code == 200:
                try:
                    data = r.json()
                except ValueError:
                    r.failure("response is not JSON")
                    return
                if not self.conversation_id and "conversation_id" in data:
                    self.conversation_id = data["conversation_id"]
                if not data.get("response"):
                    r.failure("empty response")
                    return
                elapsed_ms = r.elapsed.total_seconds() * 1000
                limit = THRESHOLDS_MS[complexity] * SLO_SCALE
                if SLO_CHECK and elapsed_ms > limit:
                    r.failure(f"{complexity} query exceeded threshold: "
                              f"{elapsed_ms:.0f}ms > {limit:.0f}ms")
                else:
                    r.success()
            else:
                if r.status_code == 401:
                    self.token = None
                elif r.status_code in (404, 409):
                    self.conversation_id = None
                r.failure(f"status {r.status_code}")

    # -- tasks (weights 10:5:2 for queries, 1 for ending) --------------------

    @task(10)
    def simple_query(self):
        self._send_query(random.choice(QUERIES["simple"]), "simple")

    @task(5)
    def moderate_query(self):
        self._send_query(random.choice(QUERIES["moderate"]), "moderate")

    @task(2)
    def complex_query(self):
        self._send_query(random.choice(QUERIES["complex"]), "complex")

    @task(1)
    def end_conversation(self):
        if not self.conversation_id or not self.token:
            return
        cid = self.conversation_id
        self.conversation_id = None
        with self.client.post(f"/agent/conversation/{cid}/end",
                              name="/agent/conversation/:id/end",
                              headers=self._headers("control", self.token),
                              catch_response=True) as r:
            if r.status_code == 200:
                r.success()
            else:
                if r.status_code == 401:
                    self.token = None
                r.failure(f"status {r.status_code}")
