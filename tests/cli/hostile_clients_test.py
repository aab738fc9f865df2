#!/usr/bin/env python3
"""`strata serve` under hostile clients (issue 13 items 1-3), on the real binary:

- 16 concurrent bodies just under the 8 MiB limit, shaped to be expensive to parse (8 M
  '[', a 2M-entry stop list, 600k keys, an 8 MiB prompt, deep valid nesting), each
  refused with a 400 in OpenAI's shape, while the server's peak RSS grows by no more than
  the documented bound (docs/http_server.md: the body budget plus three bodies per I/O
  thread);
- /health answers while 64 idle keep-alive connections and 64 slowloris clients are open;
- a non-streaming request whose client hangs up is cancelled (strata_server_requests
  with finish_reason cancelled), and a client that half-closes gets its completion.

usage: hostile_clients_test.py STRATA_BINARY [--sanitized]
  --sanitized: the binary runs under a sanitizer, whose shadow memory and quarantine make
               RSS meaningless: the bound is reported, not checked.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

STRATA = sys.argv[1]
SANITIZED = "--sanitized" in sys.argv[2:]
MIB = 1 << 20
BODY_LIMIT = 8 * MIB
IO_THREADS = 4
BODY_BUDGET = 256 * MIB
# docs/http_server.md: bodies held (at most the budget) + up to three bodies' worth per
# I/O thread while parsing (the body, the document's strings, the SAX pass's token).
RSS_BOUND = BODY_BUDGET + IO_THREADS * 3 * BODY_LIMIT
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def raw_request(port, path, body, timeout=60, half_close=False):
    """Sends one POST; returns (status, head, body bytes) or (0, error, b'')."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
            s.sendall(head + body)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.1 (\d+)", head)
        return (int(m.group(1)) if m else 0), head.decode(errors="replace"), rest
    except OSError as e:
        return 0, str(e), b""


def dechunk(data):
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out += data[:n]
        data = data[n + 2:]
    return out


def hostile_bodies():
    room = BODY_LIMIT - 1024
    stop = b'{"prompt": "a", "stop": [' + b",".join([b'"s"'] * (room // 4)) + b"]}"
    keys = b'{"prompt": "a"' + b"".join(b',"k%07d":0' % i for i in range(room // 13)) + b"}"
    return [
        b"[" * room,
        stop,
        keys,
        b'{"prompt": "' + b"x" * (room - 20) + b'"}',
        b'{"messages": [{"role": "user", "content": "' + b"y" * (room - 60) + b'"}]}',
        b'{"prompt": "a", "x": ' + b"[" * 40 + b"]" * 40 + b"}",
    ]


def healthy(port, timeout=2.0):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


def metric(port, name, labels):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(l in line for l in labels):
            total += float(line.rsplit(" ", 1)[1])
    return total


with tempfile.TemporaryDirectory() as work:
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ, STRATA_METRICS_PORT=str(metrics_port))
    server = subprocess.Popen(
        [STRATA, "serve", "--preset", "small", "--host-gb", "0.25", "--disk-gb", "0",
         "--device-cache-gb", "0.25", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work, env=env)
    output = []
    threading.Thread(target=lambda: output.extend(server.stdout), daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None and not healthy(port):
        time.sleep(0.1)
    check(healthy(port), "strata serve --preset small starts")

    # Warm up: one ordinary request, then the baseline.
    status, _, _ = raw_request(port, "/v1/completions", b'{"prompt": "Hello", "max_tokens": 4}')
    check(status == 200, f"an ordinary completion: {status}")
    base_kib = proc_kib(server.pid, "VmRSS")

    # 1. Sixteen hostile bodies at once.
    bodies = hostile_bodies()
    results = [None] * 16

    def send(i):
        results[i] = raw_request(port, "/v1/completions", bodies[i % len(bodies)])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    peak_kib = proc_kib(server.pid, "VmHWM")
    for i, (status, head, body) in enumerate(results):
        kind = bodies[i % len(bodies)][:24]
        err = {}
        try:
            err = json.loads(body).get("error", {})
        except ValueError:
            pass
        check(status == 400 and err.get("message"),
              f"hostile body {kind!r}...: {status} {err.get('code')} {err.get('message', head)[:80]}")
    growth = (peak_kib - base_kib) * 1024
    print(f"RSS: {base_kib / 1024:.0f} MiB before, peak {peak_kib / 1024:.0f} MiB "
          f"(+{growth / MIB:.0f} MiB; bound {RSS_BOUND / MIB:.0f} MiB)")
    check(SANITIZED or growth <= RSS_BOUND, f"peak RSS growth {growth / MIB:.0f} MiB <= {RSS_BOUND / MIB:.0f} MiB")
    check(healthy(port), "/health after the hostile bodies")

    # 2. Idle keep-alive connections and slowloris clients hold no thread.
    hogs = []
    for i in range(128):
        s = socket.create_connection(("127.0.0.1", port))
        if i % 2:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)
        else:
            s.sendall(b"GET /health HTTP/1.1\r\nHo")
        hogs.append(s)
    check(all(healthy(port) for _ in range(5)), "/health with 64 idle and 64 slowloris clients")
    for s in hogs:
        s.close()

    # 3. Clients that hang up are cancelled (8 abandoned max_tokens=1000 requests once
    # delayed the next one to 28 s); one that half-closes is answered.
    def cancelled_count():
        return metric(port, "strata_request_finish_reasons_total", ['reason="cancelled"'])

    def timed_request():
        start = time.monotonic()
        status, _, _ = raw_request(port, "/v1/completions", b'{"prompt": "Hello", "max_tokens": 16}')
        return status, time.monotonic() - start

    _, alone = timed_request()
    before = cancelled_count()
    body = b'{"prompt": "Tell me a long story", "max_tokens": 1000}'
    for _ in range(8):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                      % (len(body), body))
    cancelled = before
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and cancelled < before + 8:
        time.sleep(0.05)
        cancelled = cancelled_count()
    check(cancelled == before + 8, f"8 abandoned non-streaming requests are cancelled ({cancelled - before:.0f})")
    status, after = timed_request()
    print(f"a 16-token request: {alone:.2f} s alone, {after:.2f} s after 8 abandoned ones")
    check(status == 200, "the next request is answered")

    status, head, rest = raw_request(
        port, "/v1/completions", b'{"prompt": "Hello", "max_tokens": 8}', half_close=True)
    answer = {}
    try:
        answer = json.loads(dechunk(rest) if "chunked" in head else rest)
    except ValueError:
        pass
    check(status == 200 and answer.get("choices"), f"a half-closed client gets its answer: {status}")

    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
    check(server.returncode == 0, f"strata serve exits cleanly on SIGTERM: {server.returncode}")
    if failures:
        print("".join(output)[-4000:])

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
