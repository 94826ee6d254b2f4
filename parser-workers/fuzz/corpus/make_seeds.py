#!/usr/bin/env python3
"""Writes the committed fuzz seeds (parser-workers/fuzz/corpus/<target>/) from the test
fixtures of this crate and the shared corpora, in the input layout each fuzz target expects.
Seeds are capped at 8 KiB each so the folder stays small. Run from anywhere:
    python3 parser-workers/fuzz/corpus/make_seeds.py
Sources and licenses: see README.md beside this script."""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(CRATE, "tests", "fixtures")
H1 = os.path.join(CRATE, "src", "protocols", "http1", "testdata")
PCAPS = os.path.join(CRATE, "..", "..", "shared", "corpora", "pcaps")
CAP = 8192


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data[:CAP])


def read(path):
    with open(path, "rb") as f:
        return f.read()


def hex_lines(path):
    """`C <hex>` / `S <hex>` fixture lines -> [(dir, bytes)]."""
    out = []
    for line in open(path):
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("C", "S"):
            out.append((parts[0], bytes.fromhex(parts[1])))
    return out


def follow(path):
    """tshark follow,raw output: tab-indented lines are server to client."""
    out = []
    for line in open(path):
        if line.startswith("=") or ":" in line or not line.strip():
            continue
        out.append(("S" if line.startswith("\t") else "C", bytes.fromhex(line.strip())))
    return out


# http1: [split hi, split lo] + client bytes + server bytes.
def http1(name, client, server):
    client, server = client[: CAP // 2], server[: CAP // 2]
    write("http1", name, struct.pack(">H", len(client)) + client + server)


for stem in ["get-0", "post-0", "httpv1-0", "multipart-0", "100-continue-0", "pipelined-requests-0"]:
    http1(stem, read(os.path.join(H1, stem + ".c2s")), read(os.path.join(H1, stem + ".s2c")))
sse = b"".join(
    b'%x\r\n%s\r\n' % (len(e), e)
    for e in [b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"delta":{"content":"Hi"}}]}\n\n',
              b": keep-alive\n\n", b"event: done\ndata: [DONE]\n\n"]
)
body = b'{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}'
http1(
    "llm-sse-chunked",
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer sk-x\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + sse + b"0\r\n\r\n",
)
# A request head cut by the capture (no blank line: the rest was lost) answered by the server,
# then a response that is only its status line (deepflow's client-ip.pcap and
# istio-tcp-frag.pcap shapes).
http1(
    "cut-head",
    b"POST /bff/check?channel=web HTTP/1.1\r\nhost: api.example\r\naccept: */*\r\nx-envoy-decorator-operation: soa-inq",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.0 200 OK\r\n",
)

# http2: steer byte (0x3e: chunk 32, no gaps, default bounds) + one direction's bytes, and the
# two directions interleaved as the target alternates them (chunk * 4 = 128 bytes).
for stem in ["h2c_ascii", "http2-multi", "grpc-unary", "grpc-server-stream", "httpv2-stream-id"]:
    segs = follow(os.path.join(FIX, "http2", stem + ".follow.txt"))
    client = b"".join(b for d, b in segs if d == "C")
    server = b"".join(b for d, b in segs if d == "S")
    write("http2", stem + ".client", b"\x3e" + client)
    write("http2", stem + ".server", b"\x3e" + server)
    mixed = bytearray(b"\x3e")
    for i in range(0, max(len(client), len(server)), 128):
        mixed += client[i : i + 128].ljust(128, b"\0") if i < len(client) else b""
        mixed += server[i : i + 128]
    write("http2", stem + ".mixed", bytes(mixed))

# grpc: [path selector, encoding, chunk, split] + request messages + response messages.
for stem in ["grpc-unary", "grpc-server-stream", "grpc-service-name", "qdrant-client-s1", "weaviate-client-s1", "pinecone-client-s1"]:
    path = os.path.join(FIX, "grpc", stem + ".json")
    if not os.path.exists(path):
        continue
    j = json.load(open(path))
    req = bytes.fromhex(j.get("req_data_hex", ""))[:200]
    resp = bytes.fromhex(j.get("resp_data_hex", ""))[: CAP - 300]
    selector = {"qdrant": 0, "weaviate": 2, "pinecone": 4}.get(stem.split("-")[0], 6)
    write("grpc", stem, bytes([selector, 0, 16, len(req)]) + req + resp)

# postgres: control byte + the conversation in capture order (the control byte's bits pick
# the directions of the chunks, so these are only starting points for the mutator).
for sub, stem in [("deepflow", "simple_query"), ("deepflow", "prepare_stat"), ("deepflow", "error"),
                  ("zeek", "psql-login"), ("zeek", "psql-select-now"), ("zeek", "psql-insert-fail-drop-fail")]:
    segs = hex_lines(os.path.join(FIX, "postgres", sub, stem + ".hex"))
    write("postgres", stem, b"\x3c" + b"".join(b for _, b in segs))

# tls: the client's first bytes (ClientHello records).
for stem in ["ecdhe.0", "tls13-ech.1", "chrome-1250-tls-x25519-kyber.0", "hrr.0", "tls1.2.0"]:
    segs = hex_lines(os.path.join(FIX, "tls", stem + ".hex"))
    client = b"".join(b for d, b in segs if d == "C")
    write("tls", stem, client[:4096])

# pcap (probe/fuzz): small whole captures from the shared corpora.
for rel in ["deepflow/http/httpv1.pcap", "deepflow/http/h2c_ascii.pcap",
            "zeek/postgresql/psql-login-fail.pcap", "deepflow/postgre/simple_query.pcap"]:
    path = os.path.join(PCAPS, rel)
    if os.path.exists(path):
        write("pcap", os.path.basename(rel), read(path))
