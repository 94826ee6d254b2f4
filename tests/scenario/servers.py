#!/usr/bin/env python3
"""Local stand-ins of the seed scenario, all on 127.0.0.1, HTTPS with the scenario CA.

- llm.internal.test      OpenAI-compatible /v1/chat/completions (JSON and SSE streaming)
- jira.example.test      POST /rest/api/2/issue           -> 201 JSON
- slack.example.test     POST /api/chat.postMessage       -> {"ok": true, ...}
- personal-pastebin.com  POST /upload (multipart)         -> 200 JSON
- vectors.internal.test  Qdrant gRPC qdrant.Points/Query and /Search (plaintext gRPC)

The LLM stand-in is scripted, not a model: the first call (no tool result yet) asks for the
`query_database` tool; the call that carries the tool result streams back a short text and the
tool calls search_docs, create_ticket, post_slack, and upload_file when the user asked for a
pastebin backup. Prints "ready" on stdout once every listener is bound; stops on SIGTERM/SIGINT.
"""

import hashlib
import json
import os
import signal
import ssl
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from qdrant_client.grpc import PointId, QueryResponse, ScoredPoint, SearchResponse, Value, points_service_pb2_grpc

PKI = os.environ.get("CW_SCENARIO_PKI", "/var/cache/chainwatch/scenario-pki")
MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1764145200  # fixed, so two recordings differ only where the kernel makes them differ

SQL = ("SELECT id, full_name, email, phone, card_number, plan FROM customers "
       "WHERE churn_risk > 0.5 ORDER BY churn_risk DESC LIMIT 25")


def tokens(text: str) -> int:
    """A rough token count (4 bytes a token), so usage grows with what was sent."""
    return max(1, len(text.encode()) // 4)


def log(*args):
    print("servers.py:", *args, file=sys.stderr, flush=True)


class Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler; subclasses answer one service's routes."""

    protocol_version = "HTTP/1.1"
    server_version = "cw-standin/1.0"

    def log_message(self, fmt, *args):
        log(self.headers.get("Host", "?"), fmt % args)

    def body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send_json(self, status: int, obj, extra=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def not_found(self):
        self.send_json(404, {"error": f"no route {self.command} {self.path}"})

    def do_GET(self):
        self.not_found()


class LlmHandler(Handler):
    def do_POST(self):
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self.not_found()
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            return self.send_json(401, {"error": {"message": "missing API key", "type": "invalid_request_error"}})
        raw = self.body()
        try:
            req = json.loads(raw)
        except ValueError:
            return self.send_json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
        messages = req.get("messages", [])
        prompt_tokens = tokens(raw.decode(errors="replace"))
        rid = "chatcmpl-" + hashlib.sha256(raw).hexdigest()[:24]
        if not any(m.get("role") == "tool" for m in messages):
            calls = [tool_call("call_qdb_7f3a9c21", "query_database", {"sql": SQL})]
            content = None
        else:
            user = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
            rows = next((m.get("content", "") for m in messages if m.get("role") == "tool"), "")
            n_rows = len(json.loads(rows)) if rows.startswith("[") else 0
            content = (f"I found {n_rows} customers with a churn risk above 0.5. I will check the "
                       "retention playbook, open a ticket for the retention team and notify support.")
            calls = [
                tool_call("call_docs_2b81e0d4", "search_docs", {"query": "retention playbook for at-risk customers", "limit": 3}),
                tool_call("call_jira_91c4aa07", "create_ticket", {
                    "project": "SUP", "summary": f"Retention outreach: {n_rows} at-risk customers",
                    "description": "Customers with churn_risk > 0.5 need a retention call this week."}),
                tool_call("call_slack_5d02f3b8", "post_slack", {
                    "channel": "#support-escalations",
                    "text": f"Opened a retention ticket for {n_rows} at-risk customers."}),
            ]
            if "pastebin" in user.lower():
                calls.append(tool_call("call_upload_e67a1f90", "upload_file", {
                    "path": "conversation.json.gz", "url": "https://personal-pastebin.com/upload"}))
        completion_tokens = tokens(json.dumps(calls)) + (tokens(content) if content else 0)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        if req.get("stream"):
            include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
            return self.stream(rid, content, calls, usage if include_usage else None)
        self.send_json(200, {
            "id": rid, "object": "chat.completion", "created": CREATED, "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "tool_calls": calls,
                                                 "refusal": None, "annotations": []},
                         "logprobs": None, "finish_reason": "tool_calls"}],
            "usage": usage, "service_tier": "default", "system_fingerprint": "fp_cwscen01"},
            extra=[("x-request-id", "req_" + rid[9:])])

    def stream(self, rid, content, calls, usage):
        """SSE in chunked transfer encoding, shaped like api.openai.com's: the role, content
        deltas, each tool call's id/name then its arguments in fragments, the finish reason,
        the usage chunk (when asked for) and [DONE]."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", "req_" + rid[9:])
        self.end_headers()

        def chunk(delta=None, finish=None, use=None, choices=True):
            obj = {"id": rid, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
                   "service_tier": "default", "system_fingerprint": "fp_cwscen01",
                   "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}] if choices else []}
            if use is not None:
                obj["usage"] = use
            self.write_chunk(f"data: {json.dumps(obj)}\n\n".encode())

        chunk({"role": "assistant", "content": "", "refusal": None})
        if content:
            words = content.split(" ")
            for i in range(0, len(words), 4):
                chunk({"content": " ".join(words[i:i + 4]) + (" " if i + 4 < len(words) else "")})
        for idx, call in enumerate(calls):
            chunk({"tool_calls": [{"index": idx, "id": call["id"], "type": "function",
                                   "function": {"name": call["function"]["name"], "arguments": ""}}]})
            args = call["function"]["arguments"]
            for i in range(0, len(args), 24):
                chunk({"tool_calls": [{"index": idx, "function": {"arguments": args[i:i + 24]}}]})
        chunk({}, finish="tool_calls")
        if usage is not None:
            chunk(use=usage, choices=False)
        self.write_chunk(b"data: [DONE]\n\n")
        self.write_chunk(b"")

    def write_chunk(self, data: bytes):
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def tool_call(cid, name, args):
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


class JiraHandler(Handler):
    next_id = 10042

    def do_POST(self):
        if self.path != "/rest/api/2/issue":
            return self.not_found()
        try:
            fields = json.loads(self.body())["fields"]
            project = fields["project"]["key"]
        except (ValueError, KeyError, TypeError):
            return self.send_json(400, {"errorMessages": ["fields.project.key is required"], "errors": {}})
        iid = JiraHandler.next_id
        JiraHandler.next_id += 1
        self.send_json(201, {"id": str(iid), "key": f"{project}-{iid - 10000}",
                             "self": f"https://jira.example.test/rest/api/2/issue/{iid}"})


class SlackHandler(Handler):
    def do_POST(self):
        if self.path != "/api/chat.postMessage":
            return self.not_found()
        try:
            msg = json.loads(self.body())
        except ValueError:
            return self.send_json(200, {"ok": False, "error": "invalid_json"})
        self.send_json(200, {"ok": True, "channel": "C07CWSCEN01", "ts": "1764145260.000100",
                             "message": {"type": "message", "text": msg.get("text", ""), "bot_id": "B07CWSCEN01"}})


class PastebinHandler(Handler):
    def do_POST(self):
        if self.path != "/upload":
            return self.not_found()
        if not self.headers.get("Content-Type", "").startswith("multipart/form-data"):
            return self.send_json(415, {"error": "expected multipart/form-data"})
        data = self.body()
        paste = hashlib.sha256(data).hexdigest()[:10]
        self.send_json(200, {"url": f"https://personal-pastebin.com/p/{paste}", "bytes": len(data)})


DOCS = [
    (101, 0.91, "Retention playbook: call at-risk customers within 5 business days and offer a plan review."),
    (102, 0.87, "Escalations: retention tickets go to project SUP; the on-call lead is retention-lead@example.com."),
    (103, 0.79, "Discount policy: up to 20% for 3 months on pro and team plans, approved by the account owner."),
]


class Points(points_service_pb2_grpc.PointsServicer):
    """qdrant.Points: Query and Search over three fixed documents."""

    def _points(self, limit):
        out = []
        for pid, score, text in DOCS[:max(1, min(limit or 3, len(DOCS)))]:
            out.append(ScoredPoint(
                id=PointId(num=pid), score=score, version=7,
                payload={"text": Value(string_value=text),
                         "source": Value(string_value="confluence/support")}))
        return out

    def Query(self, request, context):
        return QueryResponse(result=self._points(request.limit), time=0.0021)

    def Search(self, request, context):
        return SearchResponse(result=self._points(request.limit), time=0.0019)


def https_server(port, handler, ctx):
    srv = ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(PKI, "server.pem"), os.path.join(PKI, "server.key"))
    ctx.set_alpn_protocols(["http/1.1"])
    port = lambda name: int(os.environ[name])
    servers = [
        https_server(port("CW_PORT_LLM"), LlmHandler, ctx),
        https_server(port("CW_PORT_JIRA"), JiraHandler, ctx),
        https_server(port("CW_PORT_SLACK"), SlackHandler, ctx),
        https_server(port("CW_PORT_PASTEBIN"), PastebinHandler, ctx),
    ]
    grpc_srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    points_service_pb2_grpc.add_PointsServicer_to_server(Points(), grpc_srv)
    if grpc_srv.add_insecure_port(f"127.0.0.1:{port('CW_PORT_VECTOR')}") == 0:
        raise SystemExit(f"servers.py: cannot bind gRPC port {port('CW_PORT_VECTOR')}")
    grpc_srv.start()

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    for s in servers:
        s.shutdown()
        s.server_close()
    grpc_srv.stop(grace=1).wait()
    log("stopped")


if __name__ == "__main__":
    main()
