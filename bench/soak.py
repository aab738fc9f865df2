#!/usr/bin/env python3
"""Soak benchmark of `strata serve`: well-behaved streaming clients, first alone, then with
hostile clients interleaved (slowloris, idle keep-alive, expensive bodies, abandoned
requests, half-closed sockets, connection floods). Reports the server's RSS over time, the
well-behaved clients' TTFT percentiles in both runs, and errors.

usage: soak.py --strata build/bin/strata [--minutes 10] [--baseline-minutes 3]
               [--warmup-minutes 1] [--clients 4] [--preset small] [--json out.json]

A warm-up of well-behaved load (not reported) runs first, so both reported runs see the
same warm cache.

Only the Python standard library; run it with Debian's /usr/bin/python3.
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.values = {}

    def add(self, name, n=1):
        with self.lock:
            self.values[name] = self.values.get(name, 0) + n


def send_completion(s, body):
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
              % len(body) + body)


def well_behaved(port, stop, ttfts, counters, seed):
    """Streams completions over shared-prefix prompts; records TTFT of each."""
    rng = random.Random(seed)
    prefixes = [("Document %d. " % d) + "The cache keeps what was computed. " * 40
                for d in range(8)]
    while not stop.is_set():
        prompt = rng.choice(prefixes) + "Question %d?" % rng.randrange(1000)
        body = json.dumps({"prompt": prompt, "max_tokens": 16, "stream": True})
        start = time.monotonic()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            if r.status != 200:
                counters.add(f"well-behaved HTTP {r.status}")
                r.read()
                c.close()
                continue
            first = None
            for line in r:
                if line.startswith(b"data: ") and first is None and b'"text"' in line:
                    first = time.monotonic() - start
                if line.startswith(b"data: [DONE]"):
                    break
            c.close()
            if first is None:
                counters.add("well-behaved: stream without text")
            else:
                ttfts.append(first)
                counters.add("well-behaved requests")
        except OSError as e:
            counters.add(f"well-behaved error: {type(e).__name__}")


def slowloris(port, stop, counters):
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
            while not stop.is_set():
                time.sleep(2)
                s.sendall(b"X")  # a header byte every 2 s
        except OSError:
            counters.add("slowloris connections closed by the server")
        finally:
            try:
                s.close()
            except (OSError, UnboundLocalError):
                pass


def idle_keepalive(port, stop, counters):
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            s.recv(4096)
            if s.recv(1) == b"":  # blocks until the server closes the idle connection
                counters.add("idle connections closed by the server")
            s.close()
        except OSError:
            counters.add("idle connection errors")


def hostile_bodies(port, stop, counters):
    room = 8 * MIB - 1024
    shapes = [
        b"[" * room,
        b'{"prompt": "a", "stop": [' + b",".join([b'"s"'] * (room // 4)) + b"]}",
        b'{"prompt": "a"' + b"".join(b',"k%07d":0' % i for i in range(room // 13)) + b"}",
        b'{"prompt": "' + b"x" * (room - 20) + b'"}',
    ]
    i = 0
    while not stop.is_set():
        body = shapes[i % len(shapes)]
        i += 1
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                          b"Connection: close\r\n\r\n" % len(body) + body)
                status = s.recv(64).split(b" ")[1:2]
                counters.add(f"hostile body -> {status[0].decode() if status else 'none'}")
        except OSError as e:
            counters.add(f"hostile body error: {type(e).__name__}")


def abandoned(port, stop, counters):
    body = b'{"prompt": "Tell me a long story", "max_tokens": 1000}'
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                send_completion(s, body)
                time.sleep(0.2)
            counters.add("abandoned requests")
        except OSError:
            counters.add("abandoned request errors")
        time.sleep(1)


def half_closed(port, stop, counters):
    body = b'{"prompt": "Hello", "max_tokens": 8}'
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
                send_completion(s, body)
                s.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            ok = data.startswith(b"HTTP/1.1 200") and b'"choices"' in data
            counters.add("half-closed answered" if ok else "half-closed NOT answered")
        except OSError:
            counters.add("half-closed errors")
        time.sleep(2)


def flood(port, stop, counters):
    while not stop.wait(30):
        socks = []
        for _ in range(400):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                counters.add("flood connect errors")
        refused = 0
        for s in socks:
            try:
                s.settimeout(0.5)
                if s.recv(64).startswith(b"HTTP/1.1 503"):
                    refused += 1
            except OSError:
                pass
            s.close()
        counters.add("flood connections answered 503", refused)


def run_phase(port, pid, minutes, clients, hostile):
    stop = threading.Event()
    ttfts, counters, rss = [], Counters(), []
    threads = [threading.Thread(target=well_behaved, args=(port, stop, ttfts, counters, i),
                                daemon=True) for i in range(clients)]
    if hostile:
        threads += [threading.Thread(target=slowloris, args=(port, stop, counters), daemon=True)
                    for _ in range(16)]
        threads += [threading.Thread(target=idle_keepalive, args=(port, stop, counters),
                                     daemon=True) for _ in range(32)]
        threads += [threading.Thread(target=f, args=(port, stop, counters), daemon=True)
                    for f in (hostile_bodies, hostile_bodies, abandoned, abandoned, half_closed,
                              flood)]
    for t in threads:
        t.start()
    start = time.monotonic()
    while time.monotonic() - start < minutes * 60:
        time.sleep(1)
        rss.append((round(time.monotonic() - start), rss_mib(pid)))
    stop.set()
    for t in threads:
        t.join(timeout=70)
    return {
        "minutes": minutes,
        "hostile": hostile,
        "requests": len(ttfts),
        "ttft_p50_s": percentile(ttfts, 50),
        "ttft_p99_s": percentile(ttfts, 99),
        "ttft_mean_s": statistics.mean(ttfts) if ttfts else float("nan"),
        "rss_mib_max": max(v for _, v in rss),
        "rss_mib_first": rss[0][1],
        "rss_mib_last": rss[-1][1],
        "rss_series": rss[::10],
        "counters": counters.values,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strata", required=True)
    ap.add_argument("--minutes", type=float, default=10, help="the run with hostile clients")
    ap.add_argument("--baseline-minutes", type=float, default=3, help="the run without them")
    ap.add_argument("--warmup-minutes", type=float, default=1, help="unreported, first")
    ap.add_argument("--clients", type=int, default=4, help="well-behaved streaming clients")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--json", help="write the full report here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as work:
        port, metrics_port = free_port(), free_port()
        env = dict(os.environ, STRATA_METRICS_PORT=str(metrics_port))
        server = subprocess.Popen(
            [args.strata, "serve", "--preset", args.preset, "--host-gb", "0.5", "--disk-gb", "1",
             "--disk-dir", os.path.join(work, "cache"), "--device-cache-gb", "0.25",
             "--port", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        report = {"preset": args.preset, "clients": args.clients, "phases": []}
        if args.warmup_minutes > 0:
            print(f"soak: warm-up, {args.warmup_minutes} min ...", flush=True)
            run_phase(port, server.pid, args.warmup_minutes, args.clients, False)
        for minutes, hostile in ((args.baseline_minutes, False), (args.minutes, True)):
            print(f"soak: {minutes} min, hostile clients {'on' if hostile else 'off'} ...",
                  flush=True)
            report["phases"].append(run_phase(port, server.pid, minutes, args.clients, hostile))
        report["server_alive"] = server.poll() is None
        server.send_signal(signal.SIGTERM)
        try:
            report["exit_code"] = server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            report["exit_code"] = "killed after 60 s"

    print("\n| run | minutes | requests | TTFT p50 | TTFT p99 | RSS first / max / last (MiB) |")
    print("|---|---:|---:|---:|---:|---|")
    for p in report["phases"]:
        print(f"| {'with hostile clients' if p['hostile'] else 'well-behaved only'} | "
              f"{p['minutes']:g} | {p['requests']} | {p['ttft_p50_s'] * 1000:.0f} ms | "
              f"{p['ttft_p99_s'] * 1000:.0f} ms | {p['rss_mib_first']:.0f} / "
              f"{p['rss_mib_max']:.0f} / {p['rss_mib_last']:.0f} |")
    for p in report["phases"]:
        print(f"\n{'with hostile clients' if p['hostile'] else 'well-behaved only'}:")
        for k, v in sorted(p["counters"].items()):
            print(f"  {k}: {v}")
    print(f"\nserver alive at the end: {report['server_alive']}, exit code {report['exit_code']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if report["server_alive"] and report["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
