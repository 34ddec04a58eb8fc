#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""deploy/: the recording rules and alerts under `promtool test rules`
(tests/deploy/rules_test.yaml covers each one, firing and silent), and the
DaemonSet's least privileges kept in step with what the exporter checks
(src/export.c) and test_export.py runs it under.

Usage: test_deploy.py   (no root needed)
"""

import os
import re
import subprocess

import yaml

import agentprof_test as at
import test_export

DEPLOY = os.path.join(at.ROOT, "deploy")


def load_all(name):
    with open(os.path.join(DEPLOY, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def main():
    r = subprocess.run(["promtool", "check", "rules", os.path.join(DEPLOY, "rules.yaml")],
                       capture_output=True, text=True)
    at.check("promtool check rules deploy/rules.yaml", r.returncode == 0, r.stdout + r.stderr)
    r = subprocess.run(["promtool", "test", "rules", "rules_test.yaml"], capture_output=True,
                       text=True, cwd=os.path.join(at.ROOT, "tests", "deploy"))
    at.check("promtool test rules tests/deploy/rules_test.yaml", r.returncode == 0,
             (r.stdout + r.stderr)[-1500:])
    with open(os.path.join(DEPLOY, "rules.yaml")) as f:
        rules = [x for g in yaml.safe_load(f)["groups"] for x in g["rules"]]
    with open(os.path.join(at.ROOT, "tests", "deploy", "rules_test.yaml")) as f:
        tests = yaml.safe_load(f)["tests"]
    tested = {e["expr"] for t in tests for e in t.get("promql_expr_test", [])}
    tested |= {a["alertname"] for t in tests for a in t.get("alert_rule_test", [])}
    untested = [x.get("record") or x.get("alert") for x in rules
                if (x.get("record") or x.get("alert")) not in tested]
    at.check("every recording rule and alert has a test", not untested, untested)
    silent = {a["alertname"] for t in tests for a in t.get("alert_rule_test", [])
              if not a.get("exp_alerts")}
    at.check("every alert is also tested where it must stay silent",
             silent == {x["alert"] for x in rules if "alert" in x}, silent)

    (ds,) = load_all("daemonset.yaml")
    pod = ds["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    sc = c["securityContext"]
    added = sorted(x.lower() for x in sc["capabilities"]["add"])
    at.check("DaemonSet: hostPID, not privileged, every capability dropped but the tested set",
             pod.get("hostPID") is True and sc.get("privileged") is False and
             sc["capabilities"]["drop"] == ["ALL"] and
             added == sorted(test_export.DAEMONSET_CAPS), (added, test_export.DAEMONSET_CAPS))
    with open(os.path.join(at.ROOT, "src", "export.c")) as f:
        checked = sorted(m.lower() for m in re.findall(r'"CAP_([A-Z_]+)"', f.read()))
    at.check("DaemonSet grants exactly what `agentprof export` checks for", checked == added,
             (checked, added))
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    at.check("DaemonSet: BTF, tracefs, cgroup2 and the kubelet's log dirs mounted read-only",
             all(mounts.get(p, {}).get("readOnly") for p in
                 ("/sys/kernel/btf", "/sys/kernel/tracing", "/sys/fs/cgroup",
                  "/host/var/log/pods", "/host/var/log/containers")) and
             all(m.get("readOnly") for m in c["volumeMounts"]), sorted(mounts))
    probes = (c["livenessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["path"])
    at.check("DaemonSet: liveness /healthz, readiness /readyz", probes == ("/healthz", "/readyz"),
             probes)
    (hpa,) = load_all("hpa.yaml")
    names = [m.get("pods", {}).get("metric", {}).get("name") for m in hpa["spec"]["metrics"]]
    (cm,) = load_all("prometheus-adapter.yaml")
    adapter = yaml.safe_load(cm["data"]["config.yaml"])["rules"][0]
    at.check("the HPA's requests_per_second is the adapter rule's, over agentprof's counter",
             "requests_per_second" in names and adapter["name"]["as"] == "requests_per_second"
             and "http_server_request_duration_seconds_count" in adapter["seriesQuery"],
             (names, adapter["name"]))
    at.report()


if __name__ == "__main__":
    main()
