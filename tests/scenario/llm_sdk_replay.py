"""The official `openai` and `anthropic` Python SDKs against a local server that answers with
recorded bodies (issue #5's real-clients acceptance, driven by tests/tests/llm_sdk_clients.rs).

Usage: llm_sdk_replay.py PLAN.json

PLAN.json is a list of calls, in order:
  {"sdk": "openai" | "anthropic", "stream": bool, "request": {...}, "response_file": PATH}
`request` is the API request body (model, messages, tools, ...); the SDK is called with it.
`response_file` is what the server answers: a JSON body, or a recorded SSE stream (sent with
chunked transfer encoding, one chunk per event) when "stream" is true.

The script starts the server on 127.0.0.1 (plain HTTP/1.1, keep-alive), prints
`PORT <n>` and waits for a line on stdin (the test starts its packet capture meanwhile), then
makes every call and prints one JSON line per call with what the SDK sent and what it parsed:
  {"sdk", "stream", "path", "sent": {"model", "messages", "tools"},
   "received": {"model", "input_tokens", "output_tokens", "tool_calls": [{"name", "arguments"}],
                "finish_reason"}}
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import openai

# A fake key in the shape of a real one: it must appear nowhere in chainwatch's output.
API_KEY = "sk-test-chainwatch-sdk-0000000000000000"
ANTHROPIC_KEY = "sk-ant-api03-chainwatch-sdk-000000000000000000000000"


class Replay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    plan = []
    lock = threading.Lock()
    served = 0

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        with Replay.lock:
            if Replay.served >= len(Replay.plan):
                self.send_error(500, "no more recorded answers")
                return
            call = Replay.plan[Replay.served]
            Replay.served += 1
        with open(call["response_file"], "rb") as f:
            body = f.read()
        if call["stream"]:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in body.split(b"\n\n"):
                if not event.strip():
                    continue
                chunk = event + b"\n\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


def openai_call(client, call):
    req = dict(call["request"])
    req.pop("stream", None)
    sent = {"model": req["model"], "messages": len(req["messages"]), "tools": [t["function"]["name"] for t in req.get("tools", [])]}
    if not call["stream"]:
        r = client.chat.completions.create(**req)
        choice = r.choices[0]
        calls = [{"name": c.function.name, "arguments": json.loads(c.function.arguments)} for c in (choice.message.tool_calls or [])]
        received = {"model": r.model, "input_tokens": r.usage.prompt_tokens, "output_tokens": r.usage.completion_tokens,
                    "tool_calls": calls, "finish_reason": choice.finish_reason}
        return sent, received
    model, usage, finish, parts = None, None, None, {}
    for chunk in client.chat.completions.create(stream=True, **req):
        model = chunk.model or model
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for tc in choice.delta.tool_calls or []:
                p = parts.setdefault(tc.index, {"name": "", "arguments": ""})
                if tc.function and tc.function.name:
                    p["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    p["arguments"] += tc.function.arguments
    calls = [{"name": p["name"], "arguments": json.loads(p["arguments"])} for _, p in sorted(parts.items())]
    received = {"model": model, "input_tokens": usage.prompt_tokens if usage else None,
                "output_tokens": usage.completion_tokens if usage else None, "tool_calls": calls, "finish_reason": finish}
    return sent, received


def anthropic_call(client, call):
    req = dict(call["request"])
    req.pop("stream", None)
    sent = {"model": req["model"], "messages": len(req["messages"]), "tools": [t["name"] for t in req.get("tools", [])]}
    if call["stream"]:
        with client.messages.stream(**req) as s:
            m = s.get_final_message()
    else:
        m = client.messages.create(**req)
    calls = [{"name": b.name, "arguments": b.input} for b in m.content if b.type == "tool_use"]
    received = {"model": m.model, "input_tokens": m.usage.input_tokens, "output_tokens": m.usage.output_tokens,
                "tool_calls": calls, "finish_reason": m.stop_reason}
    return sent, received


def main():
    with open(sys.argv[1]) as f:
        Replay.plan = json.load(f)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Replay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    print(f"PORT {port}", flush=True)
    sys.stdin.readline()
    oa = openai.OpenAI(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
    an = anthropic.Anthropic(api_key=ANTHROPIC_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0)
    for call in Replay.plan:
        if call["sdk"] == "openai":
            sent, received = openai_call(oa, call)
            path = "/v1/chat/completions"
        else:
            sent, received = anthropic_call(an, call)
            path = "/v1/messages"
        print(json.dumps({"sdk": call["sdk"], "stream": call["stream"], "path": path, "sent": sent, "received": received}), flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
