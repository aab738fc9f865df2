#!/usr/bin/env python3
"""`strata serve` size flags: bad values get a short, exact error and exit code 2; a host tier
sized for the engine's own blocks starts even when it is smaller than a [layout] block.

usage: serve_flags_test.py STRATA_BINARY
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

STRATA = sys.argv[1]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(*args, env=None):
    p = subprocess.run([STRATA, "serve", *args], capture_output=True, text=True, timeout=60,
                       env=env)
    return p.returncode, p.stdout + p.stderr


# Rejected by the flag parser: exit 2, one line naming the flag and the rule, no huge number.
for flag, value, want in [
    ("--host-gb", "nan", "finite"),
    ("--disk-gb", "nan", "finite"),
    ("--host-gb", "inf", "finite"),
    ("--host-gb", "-1", "from 0 to 1048576"),
    ("--host-gb", "1e308", "from 0 to 1048576"),
    ("--device-cache-gb", "-1", "more than 0"),
    ("--device-cache-gb", "0", "more than 0"),
    ("--device-cache-gb", "nan", "finite"),
    ("--host-gb", "lots", "not a number"),
]:
    code, out = run(flag, value)
    first = out.splitlines()[0] if out else ""
    check(code == 2, f"{flag} {value}: exit code {code}, want 2")
    check(first.startswith(flag + ":") and want in first, f"{flag} {value}: says {first!r}")
    check(re.search(r"\d{25,}", out) is None, f"{flag} {value}: no 25-digit number in the error")
    check("exceeds" not in out, f"{flag} {value}: no misleading 'exceeds' range error")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# 0.001 GiB holds the tiny preset's 2 KiB blocks; the default [layout]'s blocks are 2 MiB.
with tempfile.TemporaryDirectory() as work:
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ, STRATA_METRICS_PORT=str(metrics_port))
    server = subprocess.Popen(
        [STRATA, "serve", "--preset", "tiny", "--host-gb", "0.001", "--disk-gb", "0",
         "--device-cache-gb", "0.01", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=work, env=env)
    healthy = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                healthy = r.status == 200
                break
        except OSError:
            time.sleep(0.1)
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
    out, _ = server.communicate(timeout=30)
    check(healthy, "--preset tiny --host-gb 0.001 starts and answers /health")
    check("smaller than one block" not in out, "--host-gb is checked against the engine's blocks")
    if not healthy:
        print(out)

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
