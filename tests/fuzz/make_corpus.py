#!/usr/bin/python3
# Writes the seed corpora of the fuzz harnesses into tests/fuzz/corpus/<harness>/: valid
# inputs as Strata writes or receives them, plus a few edge cases. Deterministic; run it
# again after changing a seed and commit the result. It overwrites only the files it
# writes, so inputs added by hand (regress-* from findings) stay. Needs python3-xxhash
# (Debian's interpreter, hence /usr/bin/python3).
import hashlib
import hmac
import json
import pathlib
import re
import struct

import xxhash

ROOT = pathlib.Path(__file__).resolve().parent
REPO = ROOT.parent.parent
CORPUS = ROOT / "corpus"


def write(harness, name, data):
    path = CORPUS / harness / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def js(obj):
    return json.dumps(obj, separators=(",", ":"))


# --- openai_request: request bodies of /v1/completions and /v1/chat/completions.
def openai():
    h = "openai_request"
    write(h, "completion_min", js({"prompt": "Hello"}))
    write(h, "completion_full", js({
        "model": "fake-model", "prompt": "Once upon a time", "max_tokens": 32,
        "temperature": 0.7, "top_p": 0.9, "seed": 42, "stop": ["\n\n", "END"],
        "stream": True, "stream_options": {"include_usage": True}, "cache_salt": "tenant-a",
        "user": "u1", "n": 1, "best_of": 1, "echo": False, "logprobs": None}))
    write(h, "completion_tokens", js({"prompt": [72, 101, 108, 108, 111], "max_tokens": 4}))
    write(h, "completion_one_of_batch", js({"prompt": ["only one"], "stop": "x"}))
    write(h, "chat_min", js({"messages": [{"role": "user", "content": "Hi"}]}))
    write(h, "chat_full", js({
        "model": "fake-model", "max_completion_tokens": 64, "temperature": 0,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "What is KV?"}]},
            {"role": "assistant", "content": "A cache."},
            {"role": "user", "content": "More."}],
        "stream": False, "cache_salt": None}))
    # Refused: n > 1, a wrong model, deep nesting, bad escapes, out-of-range numbers.
    write(h, "n_two", js({"prompt": "a", "n": 2}))
    write(h, "wrong_model", js({"model": "gpt-4", "prompt": "a"}))
    write(h, "nested", "[" * 200 + "]" * 200)
    write(h, "escapes", '{"prompt":"\\ud83d\\ude00 \\ud800 \\u0000","max_tokens":1e400}')
    write(h, "huge_numbers", '{"prompt":[-1,2147483648],"max_tokens":-5,"temperature":1e309}')
    write(h, "not_json", "{\"prompt\": \"unterminated")


# --- config: a TOML document, then "#%env" and NAME=VALUE lines (config_fuzz.cc).
def config():
    h = "config"
    doc = (REPO / "docs" / "configuration.md").read_text()
    full = re.search(r"```toml\n(.*?)```", doc, re.S).group(1)
    write(h, "documented_defaults.toml", full)
    write(h, "empty", "")
    write(h, "small.toml", '[host]\ncapacity_gb = 0.5\n[disk]\ncapacity_gb = 0\n')
    write(h, "redis.toml",
          '[shared]\nkind = "redis"\nendpoints = ["10.0.0.5:6379", "[::1]:7000"]\n'
          'cluster = true\ntls = true\nkey_prefix = "s:"\n')
    write(h, "env_only", "#%env\n" + "\n".join([
        "STRATA_HOST_CACHE_GB=2.5", "DYN_KVBM_CPU_CACHE_GB=1", "STRATA_DISK_CACHE_DIR=/tmp/c",
        "DYN_KVBM_DISK_CACHE_DIR=/tmp/d", "STRATA_DISK_CACHE_GB=0", "DYN_KVBM_DISK_CACHE_GB=3",
        "STRATA_HOST_TO_DISK=selective", "STRATA_SHARED_KIND=redis",
        "STRATA_SHARED_DIR=/mnt/shared", "STRATA_SHARED_CAPACITY_GB=10",
        "STRATA_SHARED_ENDPOINTS=a:1,[::1]:2", "STRATA_SHARED_PASSWORD=secret",
        "STRATA_MODEL_FINGERPRINT=m@1", "STRATA_HASH=xxh3_128", "STRATA_TP_RANK=1",
        "STRATA_TP_WORLD_SIZE=2", "STRATA_WORKER_THREADS=4", "STRATA_SERVE_HOST=0.0.0.0",
        "STRATA_SERVE_PORT=9000", "STRATA_MODEL_PRESET=tiny", "DYN_KVBM_METRICS_PORT=1",
        "STRATA_METRICS_PORT=6881"]) + "\n")
    write(h, "file_and_env", '[keys]\nrank = 3\n#%env\nSTRATA_TP_WORLD_SIZE=2\n')
    write(h, "bad_values",
          '[host]\ncapacity_gb = nan\n[server]\nport = 70000\n#%env\n'
          'STRATA_HOST_CACHE_GB=1e400\nSTRATA_SERVE_PORT=-1\n')
    write(h, "unknown_key.toml", '[layout]\nnum_layers = 0\nbogus = 1\n[nope]\n')


# --- disk_header: a control byte (disk_header_fuzz.cc: bit 0 fix checksum, bit 1 take the slot
# from the header), then a G3 record header (docs/disk_format.md, "Record layout").
def g3_header(sequence, epoch, payload, record_bytes, index, key, ns):
    h = bytearray(4096)
    h[0:8] = b"STRATAG3"
    struct.pack_into("<IIQQQQQQII", h, 8, 1, 4096, 0, sequence, epoch, len(payload),
                     xxhash.xxh3_64_intdigest(payload), record_bytes, index, 0)
    h[72:104] = key
    h[104:136] = ns
    struct.pack_into("<Q", h, 16, xxhash.xxh3_64_intdigest(bytes(h)))
    return bytes(h)


def disk_header():
    h = "disk_header"
    key = hashlib.sha256(b"block 0").digest()
    ns = hashlib.sha256(b"namespace").digest()
    # Record 7 of a tier of 8 KiB blocks: the harness's default slot (control bit 1 clear).
    valid = g3_header(1, 1, b"\x01" * 8192, 4096 + 8192, 7, key, ns)
    write(h, "valid", b"\x00" + valid)
    write(h, "valid_own_slot", b"\x02" + g3_header(99, 3, b"kv" * 100, 4096 * 3, 12345, key, ns))
    write(h, "empty", b"\x00" + bytes(4096))
    torn = bytearray(valid)
    torn[30] ^= 0x40
    write(h, "torn", b"\x00" + bytes(torn))
    write(h, "torn_fixed", b"\x01" + bytes(torn))
    write(h, "version_2", b"\x01" + valid[:8] + struct.pack("<I", 2) + valid[12:])
    write(h, "misplaced", b"\x00" + g3_header(1, 1, b"", 4096 + 8192, 8, key, ns))
    write(h, "short", b"\x03STRATAG3\x01\x00\x00\x00")


# --- disk_meta: strata-g3.meta as DiskMeta::Encode writes it (docs/disk_format.md).
def g3_meta(fields, layout):
    body = "# Strata G3 disk tier. Do not edit: see docs/disk_format.md\n"
    body += "strata_g3_meta=1\nformat_version=1\nlayout=%s\n" % layout
    body += "".join("%s=%d\n" % kv for kv in fields)
    return body + "checksum=%016x\n" % xxhash.xxh3_64_intdigest(body.encode())


def disk_meta():
    h = "disk_meta"
    layout = ("strata.layout.v1;layers=32;format=kv;kv_heads=8;head_dim=128;dtype=bf16;"
              "tokens_per_block=16;chunk_order=nhd")
    fields = [("block_bytes", 2097152), ("header_bytes", 4096), ("record_bytes", 2101248),
              ("records_per_region", 31), ("region_bytes", 65138688), ("regions_per_file", 16),
              ("num_regions", 131), ("num_files", 9), ("num_records", 4061),
              ("created_unix", 1763845000)]
    write(h, "benchmark_layout", g3_meta(fields, layout))
    tiny = [("block_bytes", 4096), ("header_bytes", 4096), ("record_bytes", 8192),
            ("records_per_region", 1), ("region_bytes", 8192), ("regions_per_file", 1),
            ("num_regions", 1), ("num_files", 1), ("num_records", 1), ("created_unix", 0)]
    write(h, "one_record", g3_meta(tiny, "x"))
    write(h, "inconsistent", g3_meta([(k, v + 1 if k == "num_files" else v) for k, v in fields],
                                     layout))
    write(h, "extra_field", g3_meta(fields + [("future_field", 7)], layout))
    write(h, "bad_checksum", g3_meta(fields, layout)[:-3] + "00\n")
    write(h, "truncated", g3_meta(fields, layout)[:200])
    # Geometries that add up only modulo 2^32 or 2^64 (DiskMetaTest.RejectsGeometryThat...).
    wrap = dict(tiny)
    wrap.update(num_regions=2**32 - 1, num_records=2**32 - 1, regions_per_file=2, num_files=0)
    write(h, "regress-files-wrap", g3_meta(wrap.items(), "x"))
    wrap = dict(tiny)
    wrap.update(record_bytes=2**63, records_per_region=2, region_bytes=0, num_records=2)
    write(h, "regress-region-wrap", g3_meta(wrap.items(), "x"))
    wrap = dict(tiny)
    wrap.update(block_bytes=2**64 - 4096, record_bytes=0, region_bytes=0)
    write(h, "regress-record-wrap", g3_meta(wrap.items(), "x"))


# --- object_header: a control byte (object_header_fuzz.cc: bit 0 fix the header checksum,
# bit 1 expect the actual payload length, bit 2 verify with HMAC_KEY), then a G4 object
# (src/remote/object_format.h, src/remote/object_auth.h).
HMAC_KEY = b"strata-fuzz-hmac-key-0123456789"


def g4_object(payload, key, ns, hmac_key=None):
    h = bytearray(128)
    h[0:8] = b"STRATAG4"
    struct.pack_into("<IIQQQQ", h, 8, 1, 128, 0, len(payload), xxhash.xxh3_64_intdigest(payload),
                     1 if hmac_key else 0)
    h[48:80] = key
    h[80:112] = ns
    if hmac_key:  # HMAC-SHA256, truncated, of the header (checksum, tag zero) and payload
        h[112:128] = hmac.new(hmac_key, bytes(h) + payload, hashlib.sha256).digest()[:16]
    struct.pack_into("<Q", h, 16, xxhash.xxh3_64_intdigest(bytes(h)))
    return bytes(h) + payload


def object_header():
    h = "object_header"
    key = hashlib.sha256(b"block 1").digest()
    ns = hashlib.sha256(b"ns").digest()
    valid = g4_object(bytes(range(256)) * 4, key, ns)
    write(h, "valid", b"\x00" + valid)
    write(h, "valid_hmac", b"\x04" + g4_object(bytes(range(256)), key, ns, HMAC_KEY))
    write(h, "no_hmac", b"\x04" + valid)
    write(h, "empty_payload", b"\x00" + g4_object(b"", key, ns))
    write(h, "header_only", b"\x02" + valid[:128])
    flipped = bytearray(valid)
    flipped[500] ^= 1
    write(h, "payload_flipped", b"\x00" + bytes(flipped))
    write(h, "long_fixed", b"\x03" + valid[:24] + struct.pack("<Q", 1 << 62) + valid[32:])
    write(h, "short", b"\x00STRATAG4")


# --- redis_reply: what a Redis server sends (RESP2).
def resp(v):
    if isinstance(v, int):
        return ":%d\r\n" % v
    if isinstance(v, list):
        return "*%d\r\n" % len(v) + "".join(resp(x) for x in v)
    if v is None:
        return "$-1\r\n"
    return "$%d\r\n%s\r\n" % (len(v.encode()), v)


CLUSTER_SLOTS = resp([
    [0, 5460, ["127.0.0.1", 7000, "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"],
     ["127.0.0.1", 7003, "ab1d"]],
    [5461, 10922, ["", 7001, "fd5f"]],
    [10923, 16383, ["::1", 7002, "3ea2", ["hostname", "node-3"]]]])


def redis_reply():
    h = "redis_reply"
    write(h, "cluster_slots", CLUSTER_SLOTS)
    write(h, "cluster_slots_bad", resp([[100, 50, ["h", 7000]], [0, 16384, ["h", 0]]]))
    write(h, "moved_ask", "-MOVED 3999 127.0.0.1:6381\r\n-ASK 12 :7001\r\n-MOVED 1 ::1:7002\r\n")
    write(h, "errors", "-ERR unknown command\r\n-NOAUTH Authentication required.\r\n"
                       "-CLUSTERDOWN The cluster is down\r\n")
    write(h, "simple", "+PONG\r\n+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*-1\r\n*0\r\n$0\r\n\r\n")
    write(h, "endpoints", resp(["10.0.0.1:6380", "[::1]:7000", "host:", "[x]:1", "[[x]:1"]))
    write(h, "nested", "*1\r\n" * 10 + ":1\r\n")


# --- redis_connection: n, 1 + n % 8 operation bytes, then the stream
# (redis_connection_fuzz.cc: op bit 0 = ReadBulkInto of (b >> 1) & 7 + (b >> 4) bytes).
def bulk_op(head, tail):
    return 1 | (head << 1) | (tail << 4)


def redis_connection():
    h = "redis_connection"
    get_op = bytes([bulk_op(4, 6)])  # a 10-byte value
    write(h, "replies", b"\x02" + b"\x00\x00\x00" + b"+PONG\r\n" + CLUSTER_SLOTS.encode() + b":7\r\n")
    write(h, "gets", b"\x03" + get_op * 4 +
          b"$10\r\n0123456789\r\n$-1\r\n-MOVED 5 10.0.0.2:7000\r\n$3\r\nabc\r\n")
    write(h, "pipelined", b"\x03" + b"\x00" + get_op + b"\x00" + get_op +
          b"+OK\r\n$10\r\nabcdefghij\r\n:1\r\n$10\r\nABCDEFGHIJ\r\n")
    write(h, "bad_bulk", b"\x02" + get_op * 3 + b"$10\r\n0123456789XX+OK\r\n")
    write(h, "huge_length", b"\x00" + get_op + b"$99999999999999\r\nabc")


# --- daemon_protocol: the frames a client writes after its hello (daemon_protocol_fuzz.cc;
# src/daemon/protocol.h, messages.cc): a 16-byte header <magic u32, version u16, type u16,
# length u32, seq u32>, then the payload, all little-endian. The harness's tier is fresh for
# every input, so its first reservations get G2 slots 0, 1, 2, ... (HostTier's free stack).
D_MAGIC = 0x44525453
(D_HELLO, D_MATCH, D_RELEASE, D_RESERVE, D_FINISH_STORE, D_PREPARE_LOAD, D_FINISH_LOAD, D_PIN,
 D_FLUSH, D_STATS) = range(1, 11)
G1, G2, G3, G4 = 1, 2, 3, 4  # Tier: device, host, disk, shared


def dframe(kind, payload=b"", seq=0, magic=D_MAGIC, version=1, length=None):
    n = len(payload) if length is None else length
    return struct.pack("<IHHII", magic, version, kind, n, seq) + payload


def dframes(*frames):  # (type, payload) pairs, numbered from seq 1
    return b"".join(dframe(kind, payload, seq) for seq, (kind, payload) in enumerate(frames, 1))


def dkey(i):
    return hashlib.sha256(b"daemon block %d" % i).digest()


def dstr(s):
    return struct.pack("<I", len(s)) + s


def dkeys(*idx):
    return struct.pack("<I", len(idx)) + b"".join(dkey(i) for i in idx)


def dheld(*held):  # (tier, id)
    return struct.pack("<I", len(held)) + b"".join(struct.pack("<BI", t, i) for t, i in held)


def doutcomes(*out):  # (slot, ok)
    return struct.pack("<I", len(out)) + b"".join(struct.pack("<IB", s, ok) for s, ok in out)


def dload(*blocks):  # (key index, tier, id)
    return struct.pack("<I", len(blocks)) + b"".join(
        dkey(k) + struct.pack("<BI", t, i) for k, t, i in blocks)


def dpin(pin, *idx):
    return bytes([pin]) + dkeys(*idx)


def daemon_protocol():
    h = "daemon_protocol"
    layout = b"1 layers x K/V x 1 heads x 8 dim fp16, 4 tok/block (128 B/block)"
    hello = (D_HELLO, struct.pack("<I", 4242) + dstr(layout) + struct.pack("<Q", 128) +
             dstr(b"") + dstr(b"fuzz-engine"))
    store2 = [(D_RESERVE, dkeys(0, 1)), (D_FINISH_STORE, doutcomes((0, 1), (1, 1)))]
    write(h, "match_3", dframes((D_MATCH, dkeys(0, 1, 2))))
    write(h, "store_2", dframes(*store2))
    write(h, "store_match_release", dframes(*store2, (D_MATCH, dkeys(0, 1, 2)),
                                            (D_RELEASE, dheld((G2, 0), (G2, 1)))))
    write(h, "store_match_load", dframes(
        *store2, (D_MATCH, dkeys(0, 1)), (D_PREPARE_LOAD, dload((0, G2, 0), (1, G2, 1))),
        (D_FINISH_LOAD, struct.pack("<Q", 1))))
    write(h, "prepare_load_empty", dframes((D_PREPARE_LOAD, dload()),
                                           (D_FINISH_LOAD, struct.pack("<Q", 1))))
    # Gone holding things: a reservation never finished, two leases, a load round.
    write(h, "store_partial", dframes((D_RESERVE, dkeys(0, 1, 2)),
                                      (D_FINISH_STORE, doutcomes((0, 1), (1, 0)))))
    write(h, "gone_holding", dframes(
        *store2, (D_MATCH, dkeys(0, 1)), (D_MATCH, dkeys(0, 1)),
        (D_PREPARE_LOAD, dload((0, G2, 0))), (D_RESERVE, dkeys(3))))
    write(h, "duplicates", dframes((D_RESERVE, dkeys(0, 0)), (D_FINISH_STORE, doutcomes((0, 1))),
                                   (D_MATCH, dkeys(0, 0, 0)),
                                   (D_RELEASE, dheld((G2, 0), (G2, 0)))))
    write(h, "pin_unpin", dframes(*store2, (D_PIN, dpin(1, 0, 1)), (D_STATS, b""),
                                  (D_PIN, dpin(0, 0)), (D_PIN, dpin(1, 2))))
    write(h, "hello_stats_flush", dframes(hello, (D_STATS, b""), (D_FLUSH, b"")))
    # Malformed or refused: each ends the session (or the frame stream) where it stands.
    write(h, "bad_magic", dframe(D_MATCH, dkeys(0), magic=0x12345678) + dframe(D_STATS))
    write(h, "version_2", dframe(D_STATS, version=2))
    write(h, "truncated", dframe(D_MATCH, dkeys(0)[:10], length=100))
    write(h, "huge_count", dframes((D_MATCH, struct.pack("<I", 0xFFFFFFFF) + dkey(0))))
    write(h, "padded_keys", dframes((D_RESERVE, dkeys(0) + b"\x00")))
    write(h, "finish_unreserved", dframes(*store2, (D_FINISH_STORE, doutcomes((5, 1)))))
    write(h, "finish_twice", dframes((D_RESERVE, dkeys(0)),
                                     (D_FINISH_STORE, doutcomes((0, 1), (0, 1)))))
    write(h, "release_unheld", dframes(*store2, (D_MATCH, dkeys(0)),
                                       (D_RELEASE, dheld((G2, 0), (G2, 0)))))
    write(h, "load_device_tier", dframes((D_PREPARE_LOAD, dload((0, G1, 0)))))
    write(h, "load_disk_unheld", dframes((D_PREPARE_LOAD, dload((0, G3, 7)))))
    write(h, "finish_load_unknown", dframes((D_FINISH_LOAD, struct.pack("<Q", 42))))
    write(h, "stats_payload", dframes((D_STATS, b"\x00")))
    write(h, "bad_outcome", dframes((D_RESERVE, dkeys(0)), (D_FINISH_STORE, doutcomes((0, 2)))))
    write(h, "unknown_type", dframes((0x77, b""), (D_STATS, b"")))
    write(h, "reply_type", dframes((101, b"")))
    # G4 blocks are in no ledger: a daemon without G4 read them through a null store (the
    # harness's first finding), or staged them through a null pool when G2 was writing the key.
    write(h, "regress-load-shared-without-g4", dframes((D_PREPARE_LOAD, dload((0, G4, 0)))))
    write(h, "regress-load-shared-in-flight", dframes((D_RESERVE, dkeys(0)),
                                                      (D_PREPARE_LOAD, dload((0, G4, 0)))))


# --- gguf: GGUF files (docs/model_formats.md), as llama.cpp's converter lays them out: a
# tiny Llama-family model, every metadata type, v2, a larger alignment, and refusals.
GGUF_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q",
            11: "<q", 12: "<d"}
G_U8, G_I8, G_U16, G_I16, G_U32, G_I32, G_F32, G_BOOL, G_STR, G_ARR, G_U64, G_I64, G_F64 = range(13)
T_F32, T_F16, T_Q4_0, T_Q8_0, T_Q4_K, T_BF16 = 0, 1, 2, 8, 12, 30


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gval(t, v):  # the encoding of a value of gguf_type t (after the type number)
    if t == G_STR:
        return gstr(v)
    if t == G_ARR:
        element_type, items = v
        return struct.pack("<IQ", element_type, len(items)) + b"".join(
            gval(element_type, i) for i in items)
    return struct.pack(GGUF_FMT[t], v)


def gkv(key, t, v):
    return gstr(key) + struct.pack("<I", t) + gval(t, v)


def gguf_file(kvs, tensors, version=3, alignment=32, counts=None, offsets=None):
    """kvs: (key, type, value); tensors: (name, dims, ggml type, data bytes); offsets, when
    given, replace the tensors' aligned offsets."""
    out = b"GGUF" + struct.pack("<IQQ", version, *(counts or (len(tensors), len(kvs))))
    out += b"".join(gkv(*kv) for kv in kvs)
    offset, blobs = 0, []
    for i, (name, dims, ttype, data) in enumerate(tensors):
        if offsets:
            offset = offsets[i]
        out += gstr(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        out += struct.pack("<IQ", ttype, offset)
        blobs.append((offset, data))
        offset = (offset + len(data) + alignment - 1) // alignment * alignment
    if not tensors:
        return out
    out += b"\0" * (-len(out) % alignment)
    start = len(out)
    for at, data in blobs:
        out += b"\0" * (start + at - len(out)) + data
    return out


def f32s(*v):
    return struct.pack(f"<{len(v)}f", *v)


def f16s(*v):
    return struct.pack(f"<{len(v)}e", *v)


def bf16s(*v):  # truncation of float32: exact for the values used here
    return b"".join(struct.pack("<f", x)[2:] for x in v)


def q8_0(scale, quants):  # one block: fp16 scale, 32 int8
    return struct.pack("<e32b", scale, *quants)


def llama_gguf(version=3, alignment=32, extra_kvs=()):
    a = "llama"
    kvs = [("general.architecture", G_STR, a), ("general.name", G_STR, "tiny"),
           (f"{a}.context_length", G_U32, 64), (f"{a}.embedding_length", G_U32, 8),
           (f"{a}.block_count", G_U32, 1), (f"{a}.feed_forward_length", G_U32, 16),
           (f"{a}.attention.head_count", G_U32, 2), (f"{a}.attention.head_count_kv", G_U32, 1),
           (f"{a}.attention.layer_norm_rms_epsilon", G_F32, 1e-5),
           (f"{a}.rope.freq_base", G_F32, 10000.0), (f"{a}.vocab_size", G_U32, 4),
           ("tokenizer.ggml.model", G_STR, "llama"),
           ("tokenizer.ggml.tokens", G_ARR, (G_STR, ["<unk>", "<s>", "</s>", "a"])),
           ("tokenizer.ggml.scores", G_ARR, (G_F32, [0.0, 0.0, 0.0, -1.5])),
           ("tokenizer.ggml.token_type", G_ARR, (G_I32, [2, 3, 3, 1])),
           ("tokenizer.ggml.bos_token_id", G_U32, 1), *extra_kvs]
    tensors = [("token_embd.weight", [8, 4], T_F32, f32s(*[i / 8 for i in range(32)])),
               ("blk.0.attn_norm.weight", [8], T_F32, f32s(*[1.0] * 8)),
               ("blk.0.attn_q.weight", [8, 8], T_F16, f16s(*[(i % 7) - 3 for i in range(64)])),
               ("blk.0.attn_k.weight", [8, 4], T_BF16, bf16s(*[0.5] * 32)),
               ("blk.0.ffn_down.weight", [32, 2], T_Q8_0,
                q8_0(0.5, range(-16, 16)) + q8_0(-2.0, [127, -128] * 16)),
               ("output.weight", [256], T_Q4_K, bytes(range(144)))]
    return gguf_file(kvs, tensors, version, alignment)


def gguf():
    h = "gguf"
    write(h, "llama_tiny", llama_gguf())
    write(h, "llama_tiny_v2", llama_gguf(version=2))
    write(h, "align_64", llama_gguf(alignment=64, extra_kvs=[("general.alignment", G_U32, 64)]))
    write(h, "every_type", gguf_file([
        ("u8", G_U8, 200), ("i8", G_I8, -100), ("u16", G_U16, 60000), ("i16", G_I16, -30000),
        ("u32", G_U32, 4000000000), ("i32", G_I32, -2000000000), ("f32", G_F32, 1.5),
        ("bool", G_BOOL, 1), ("str", G_STR, "llama"), ("u64", G_U64, 2**63 + 5),
        ("i64", G_I64, -2**62), ("f64", G_F64, 1e300),
        ("a.bool", G_ARR, (G_BOOL, [1, 0])), ("a.empty", G_ARR, (G_U8, [])),
        ("a.i64", G_ARR, (G_I64, [-1, 2**40])), ("a.str", G_ARR, (G_STR, ["", "x"])),
        ("a.nested", G_ARR, (G_ARR, [(G_I32, [1, 2]), (G_STR, ["y"])])),
    ], [("scalar_like", [1], T_F32, f32s(3.0)), ("q4", [32], T_Q4_0, bytes(18)),
        ("unknown_type", [2], 99, b"zz")]))
    write(h, "metadata_only", gguf_file([("general.architecture", G_STR, "qwen2")], []))
    deep = (G_U8, [7])
    for _ in range(7):
        deep = (G_ARR, [deep])
    write(h, "depth_8", gguf_file([("deep", G_ARR, deep)], []))
    # Refused: a cut file, bad magic, version 1, big-endian, counts that cannot fit, arrays
    # nested 9 deep, a misaligned offset, a tensor past the end.
    full = llama_gguf()
    write(h, "truncated", full[:len(full) - 40])
    write(h, "bad_magic", b"GGML" + full[4:])
    write(h, "version_1", full[:4] + struct.pack("<I", 1) + full[8:])
    write(h, "big_endian", full[:4] + struct.pack(">I", 3) + full[8:])
    write(h, "huge_counts", gguf_file([("k", G_U8, 1)], [], counts=(2**63, 2**62)))
    write(h, "depth_9", gguf_file([("deep", G_ARR, (G_ARR, [deep]))], []))
    write(h, "misaligned", gguf_file([], [("w", [2], T_F32, f32s(1, 2))], offsets=[8]))
    write(h, "past_end", gguf_file([], [("w", [64], T_F32, f32s(1, 2))]))


# --- safetensors: files as the safetensors library writes them (JSON header padded with
# spaces to a multiple of 8), a tiny Llama-family checkpoint, every dtype, and refusals.
ST_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
            "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8}


def st_file(tensors, metadata=None, header=None, tail=b""):
    """tensors: (name, dtype, shape, data bytes), laid out in order."""
    h, data = {}, b""
    if metadata is not None:
        h["__metadata__"] = metadata
    for name, dtype, shape, blob in tensors:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    text = (header if header is not None else js(h)).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data + tail


def safetensors():
    h = "safetensors"
    tiny = [("model.embed_tokens.weight", "BF16", [4, 8], bf16s(*[i / 4 for i in range(32)])),
            ("model.layers.0.input_layernorm.weight", "F32", [8], f32s(*[1.0] * 8)),
            ("model.layers.0.self_attn.q_proj.weight", "F16", [8, 8],
             f16s(*[(i % 5) - 2 for i in range(64)])),
            ("model.layers.0.self_attn.q_proj.bias", "F32", [8], f32s(*[0.0] * 8)),
            ("model.norm.weight", "F32", [8], f32s(*[1.0] * 8)),
            ("lm_head.weight", "BF16", [4, 8], bf16s(*[-0.5] * 32))]
    write(h, "hf_tiny", st_file(tiny, metadata={"format": "pt"}))
    write(h, "every_dtype", st_file(
        [(f"t.{d}", d, [2], bytes(range(2 * n))) for d, n in ST_BYTES.items()] +
        [("scalar", "F32", [], f32s(42.0)), ("empty", "F32", [0, 4], b"")]))
    write(h, "no_tensors", st_file([], metadata={"format": "pt"}))
    # Refused: cut, not JSON, not an object, unknown dtype, overlap, hole, trailing bytes,
    # a duplicate key, a huge header length.
    full = st_file(tiny, metadata={"format": "pt"})
    write(h, "truncated", full[:len(full) - 20])
    write(h, "not_json", st_file([], header='{"w": {"dtype": '))
    write(h, "not_object", st_file([], header="[1, 2, 3]"))
    write(h, "unknown_dtype", st_file([("w", "F7", [1], b"x")]))
    a = {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}
    b = {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}
    write(h, "overlap", st_file([], header=js({"a": a, "b": b}), tail=b"abcdef"))
    b["data_offsets"] = [6, 10]
    write(h, "hole", st_file([], header=js({"a": a, "b": b}), tail=b"abcdefghij"))
    write(h, "trailing", st_file([("w", "U8", [1], b"x")], tail=b"more"))
    write(h, "duplicate_key", st_file([], header='{"a": %s, "a": %s}' % (js(a), js(a)),
                                      tail=b"abcd"))
    write(h, "huge_header_length", struct.pack("<Q", 2**63) + b"{}")


def main():
    for make in (openai, config, disk_header, disk_meta, object_header, redis_reply,
                 redis_connection, daemon_protocol, gguf, safetensors):
        make()


if __name__ == "__main__":
    main()
