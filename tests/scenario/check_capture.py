#!/usr/bin/env python3
"""Checks that a capture of the seed scenario shows its steps after `chainwatch parse`.

    check_capture.py --chainwatch BIN [--benign] CAPTURE.jsonl[.gz]

Runs `chainwatch parse --input` on the capture (gunzipped to a temp file when needed) and checks
layer 1 and the process events: two chat calls to llm.internal.test, the SELECT on crm with 24
rows, the gRPC qdrant.Points/Query, the Jira and Slack POSTs, the child gzip, and the curl upload
to personal-pastebin.com after the gzip (the benign twin: no curl, no upload); and that the
fake API keys of the agent appear nowhere in the output. Prints a per-kind/host summary; exits 1
naming every failed check. Python standard library only.
"""

import argparse
import collections
import gzip
import json
import os
import subprocess
import sys
import tempfile

FAKE_SECRETS = ["sk-test-chainwatch-0000", "xoxb-0000000000-0000000000-chainwatchtestfake",
                "jira-test-token-0000", "c3VwcG9ydC1hZ2VudEBleGFtcGxlLmNvbTpqaXJhLXRlc3QtdG9rZW4tMDAwMA"]


def parse(chainwatch, capture):
    opener = gzip.open if capture.endswith(".gz") else open
    with tempfile.NamedTemporaryFile(suffix=".jsonl") as tmp:
        try:
            with opener(capture, "rb") as src:
                tmp.write(src.read())
        except OSError as e:
            sys.exit(f"check_capture: cannot read the capture {capture}: {e}")
        tmp.flush()
        try:
            out = subprocess.run([chainwatch, "parse", "--input", tmp.name], capture_output=True, check=False)
        except OSError as e:
            sys.exit(f"check_capture: cannot run {chainwatch!r} (set --chainwatch or CHAINWATCH): {e}")
    if out.returncode != 0:
        sys.exit(f"check_capture: chainwatch parse failed ({out.returncode}): {out.stderr.decode(errors='replace')}")
    sys.stderr.write(out.stderr.decode(errors="replace"))
    return out.stdout.decode(errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chainwatch", default=os.environ.get("CHAINWATCH", "chainwatch"))
    ap.add_argument("--benign", action="store_true", help="the capture is of the benign twin")
    ap.add_argument("capture")
    args = ap.parse_args()

    text = parse(args.chainwatch, args.capture)
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    events = [r for r in records if r.get("record") == "SemanticEvent"]
    execs = [r for r in records if r.get("record") == "ProcessEvent" and r.get("kind") == "EXEC"]

    summary = collections.Counter((e.get("protocol"), e.get("kind"), e.get("host")) for e in events)
    for (proto, kind, host), n in sorted(summary.items(), key=str):
        print(f"{n:3}  {proto:9} {kind:10} {host}")
    for p in execs:
        print(f"  exec {' '.join(p.get('argv') or [])[:100]}")

    failures = []

    def expect(cond, what):
        print(("ok    " if cond else "FAIL  ") + what)
        if not cond:
            failures.append(what)

    def http(host, path):
        return [e for e in events if (e.get("host") or "").split(":")[0] == host and e.get("path") == path]

    def first_ts(items):
        return min((i.get("ts_start_ns") or i.get("ts_ns") or 0 for i in items), default=None)

    llm = http("llm.internal.test", "/v1/chat/completions")
    expect(len(llm) == 2 and all(e.get("status") == 200 for e in llm), "2 chat calls to llm.internal.test, 200")
    selects = [e for e in events if e.get("protocol") == "postgres" and (e.get("sql") or {}).get("command_tag") == "SELECT 24"]
    expect(len(selects) == 1 and "FROM customers" in selects[0]["sql"]["statement"]
           and selects[0]["sql"].get("database") == "crm", "SELECT ... FROM customers on crm, 24 rows")
    vector = [e for e in events if e.get("protocol") == "grpc" and e.get("path") == "/qdrant.Points/Query"]
    expect(len(vector) == 1 and (vector[0].get("host") or "").startswith("vectors.internal.test"),
           "gRPC /qdrant.Points/Query to vectors.internal.test")
    jira = http("jira.example.test", "/rest/api/2/issue")
    expect(len(jira) == 1 and jira[0].get("status") == 201, "Jira issue POST, 201")
    slack = http("slack.example.test", "/api/chat.postMessage")
    expect(len(slack) == 1 and slack[0].get("status") == 200, "Slack chat.postMessage POST, 200")
    gz = [p for p in execs if os.path.basename((p.get("argv") or [""])[0]) == "gzip"]
    expect(len(gz) == 1, "a child gzip")
    curl = [p for p in execs if os.path.basename((p.get("argv") or [""])[0]) == "curl"]
    upload = http("personal-pastebin.com", "/upload")
    if args.benign:
        expect(not curl and not upload, "benign: no curl, no upload to personal-pastebin.com")
    else:
        expect(len(curl) == 1, "a child curl")
        expect(len(upload) == 1 and upload[0].get("status") == 200, "multipart upload POST to personal-pastebin.com, 200")
        if upload and gz and slack and llm:
            order = [first_ts(llm), first_ts(selects), first_ts(slack), first_ts(gz), first_ts(upload)]
            expect(None not in order and order == sorted(order), "order: chat, SELECT, Slack, gzip, upload")
    # A process that changed its comm between FORK and EXIT exec'd: its EXEC must be there.
    procs = [r for r in records if r.get("record") == "ProcessEvent"]
    forked = {p["tgid"]: p.get("comm") for p in procs if p.get("kind") == "FORK"}
    exec_tgids = {p["tgid"] for p in execs}
    lost = sorted(f"{p['comm']} (tgid {p['tgid']})" for p in procs if p.get("kind") == "EXIT"
                  and p["tgid"] in forked and forked[p["tgid"]] != p.get("comm") and p["tgid"] not in exec_tgids)
    expect(not lost, "every exec'd child has its EXEC event" + (f" (missing: {', '.join(lost)})" if lost else ""))
    leaked = [s for s in FAKE_SECRETS if s in text]
    expect(not leaked, f"no agent credential in the parse output{' (found: ' + ', '.join(leaked) + ')' if leaked else ''}")

    if failures:
        sys.exit(f"check_capture: {len(failures)} check(s) failed")


if __name__ == "__main__":
    main()
