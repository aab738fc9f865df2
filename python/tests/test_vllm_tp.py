"""StrataConnector with tensor parallel size 2: a `strata daemon` started by the test, two
worker processes (one per rank, spawned as vLLM's are) and the scheduler in this process."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

import strata
import vllm_driver as vd
import vllm_fakes as vf

BS = 16
TP = 2
HEADS = 4  # total; 2 per rank


def rank_layout() -> dict:
    return dict(num_layers=2, kv_format="kv", num_kv_heads=HEADS // TP, head_dim=32,
                dtype="fp16", tokens_per_block=BS, chunk_order="nhd")


def prompt(seed: int, n: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 30000, (n,), generator=g).tolist()


@pytest.fixture
def tp(daemon_factory):
    vd.env_for_children()
    started = []

    def start(num_blocks=64, extra=None, **daemon_kw):
        daemon = daemon_factory(rank_layout(), **daemon_kw)
        config = vd.make_config(TP, {"daemon_socket": daemon.socket,
                                     "daemon_io_timeout_ms": 1000, **(extra or {})})
        factory = vd.FakeModelFactory(heads_per_rank=HEADS // TP, num_blocks=num_blocks)
        workers = [vd.RemoteWorker(config, r, factory) for r in range(TP)]
        driver = vd.Driver(config, workers, num_blocks, prefix_caching=False)
        started.append(driver)
        return driver, daemon, config, factory

    yield start
    for d in started:
        try:
            d.shutdown()
        except Exception:  # noqa: BLE001  (a test may have killed the daemon)
            pass


def _free_port_pair() -> int:
    import socket
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two adjacent free ports")


def test_every_rank_loads_its_own_shard_bit_exact(tp):
    base = _free_port_pair()
    d, daemon, _, _ = tp(extra={"metrics_port": base})
    p = prompt(1, 6 * BS + 9)
    d.add(vf.Request("a", p, max_tokens=2))
    d.run()
    d.add(vf.Request("b", p + prompt(2, 5), max_tokens=2))
    d.run()
    assert d.external_tokens["b"] == 6 * BS
    # Both ranks verified all 6 blocks of their own shard; nothing failed.
    assert d.verified_blocks == TP * 6 and d.mismatched == [] and d.failed_blocks == {}
    total = None
    for s in d.stats:
        total = s if total is None else total.aggregate(s)
    assert total.reduce()["loaded_blocks"] == TP * 6
    # Each rank serves Strata's /metrics of its manager at metrics_port + rank.
    import urllib.request
    for rank, w in enumerate(d.workers):
        port = w.call(vd.worker_metrics_port)
        assert port == base + rank
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        line = [x for x in body.decode().splitlines()
                if x.startswith("strata_loads_total") or x.startswith("strata_store_blocks_total")]
        assert line, body.decode()[:500]


def _store_shard(config, factory, rank: int, tokens: list[int], blocks: int) -> None:
    """Stores the first `blocks` blocks of rank `rank`'s shard of `tokens`, as that rank's
    worker would, through a client of the same daemon."""
    model = factory(rank)
    extra = dict(config.kv_transfer_config.kv_connector_extra_config)
    from strata.vllm import engine_shape
    shape = engine_shape(config, extra)
    m = strata.Manager(daemon_socket=extra["daemon_socket"], model_fingerprint=shape.fingerprint,
                       keys_rank=rank, keys_world_size=TP,
                       **{f"layout_{k}": v for k, v in shape.layout.items()})
    m.register_kv_caches(model.kv)
    ids = list(range(blocks))
    model.forward(tokens, 0, blocks * BS, ids)
    assert m.store(f"shard{rank}", m.compute_keys(tokens)[:blocks], ids).wait(10)
    m.close()


def test_a_block_counts_only_when_every_ranks_shard_is_present(tp):
    d, daemon, config, factory = tp()
    p = prompt(3, 8 * BS + 1)
    _store_shard(config, factory, 0, p, 8)  # rank 0 has all 8 blocks
    req = vf.Request("x", list(p))
    assert d.connector.get_num_new_matched_tokens(req, 0) == (0, False)  # rank 1 has none
    d.connector.request_finished(req, [])
    _store_shard(config, factory, 1, p, 3)  # rank 1 has the first 3
    d.add(vf.Request("b", list(p), max_tokens=1))
    d.run()
    assert d.external_tokens["b"] == 3 * BS
    assert d.verified_blocks == TP * 3 and d.mismatched == []


def test_daemon_lost_between_lookup_and_load_fails_blocks_never_serves_them(tp):
    d, daemon, _, _ = tp()
    p = prompt(4, 6 * BS + 2)
    d.add(vf.Request("a", p, max_tokens=1))
    d.run()

    def kill_when_loading(driver, so):
        if so.kv_connector_metadata.loads:
            daemon.kill()

    d.after_schedule = kill_when_loading
    d.add(vf.Request("b", list(p), max_tokens=1))
    d.run()
    assert not daemon.proc.poll() is None
    assert d.external_tokens["b"] == 6 * BS
    assert d.failed_blocks["b"] == 6 and d.recomputed_tokens["b"] == 6 * BS
    assert d.verified_blocks == 0 and d.mismatched == []


def _wait_stopped(pid: int) -> None:
    """SIGSTOP takes effect thread by thread: wait until every thread of `pid` is stopped."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        if all(s in ("T", "t") for s in states):
            return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} did not stop")


def test_blocking_calls_release_the_gil(daemon_factory):
    daemon = daemon_factory(rank_layout())
    m = strata.Manager(daemon_socket=daemon.socket, daemon_io_timeout_ms=600,
                       model_fingerprint="gil", use_env=False,
                       **{f"layout_{k}": v for k, v in rank_layout().items()})
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.002)

    t = threading.Thread(target=spin)
    t.start()
    os.kill(daemon.proc.pid, signal.SIGSTOP)  # every call now waits for io_timeout
    _wait_stopped(daemon.proc.pid)
    try:
        t0 = time.monotonic()
        match = m.match(list(range(64)), "g")
        t1 = time.monotonic()
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
        stop.set()
        t.join()
    assert match.num_matched_tokens == 0  # the daemon did not answer: a miss
    assert t1 - t0 >= 0.4
    during = [x for x in ticks if t0 < x < t1]
    assert len(during) >= 20, f"only {len(during)} ticks while match waited {t1 - t0:.2f} s"
    m.close()
