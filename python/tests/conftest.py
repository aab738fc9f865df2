"""Shared fixtures: the test directory on sys.path (the driver and fakes), and a private
`strata daemon` started from this build on a socket under the test's tmp_path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import strata._config  # noqa: E402


def strata_cli() -> str:
    cli = os.environ.get("STRATA_CLI")
    if not cli:
        pytest.skip("STRATA_CLI (the strata binary of this build) is not set")
    return cli


class Daemon:
    def __init__(self, tmp: Path, layout: dict, host_gb: float = 0.0625, disk_gb: float = 0,
                 extra: dict | None = None):
        self.socket = str(tmp / "strata.sock")
        tables = {"layout": dict(layout), "host": {"capacity_gb": host_gb},
                  "disk": {"capacity_gb": disk_gb, "directory": str(tmp / "g3")},
                  "daemon": {"socket": self.socket}}
        for k, v in (extra or {}).items():
            t, key = strata._config._split_key(k)
            tables.setdefault(t, {})[key] = v
        cfg = tmp / "daemon.toml"
        cfg.write_text(strata._config.to_toml(tables))
        self.log = open(tmp / "daemon.log", "wb")
        env = {k: v for k, v in os.environ.items()
               if not (k.startswith("STRATA_") or k.startswith("DYN_KVBM_"))}
        self.proc = subprocess.Popen([strata_cli(), "daemon", "--config", str(cfg),
                                      "--metrics-port", "0"],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("strata daemon did not start:\n" +
                                   (tmp / "daemon.log").read_text())
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def daemon_factory(tmp_path):
    started = []

    def start(layout: dict, **kw) -> Daemon:
        d = Daemon(tmp_path, layout, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
