#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz targets' regression corpora (tests/fuzz/corpus/*/seed-*):
small valid inputs of each format, plus a few near misses, so that the replay in CI exercises
the accepting paths too. Run it again after changing a format; `scripts/fuzz.sh` adds the
fixtures of ../shared to the corpus of a fuzzing run without copying them here."""
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- protobuf wire format, enough for our messages
def varint(n):
    n &= (1 << 64) - 1
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 2:
        return key + varint(len(payload)) + payload
    if wire == 5:
        return key + payload
    raise ValueError(wire)


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


put("safetensors", "two-tensors", safetensors(
    {"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)), "b": ("I64", [1], struct.pack("<q", 7))},
    {"format": "pt"}))
put("safetensors", "bf16-empty", safetensors({"e": ("BF16", [0, 3], b""), "x": ("BF16", [1], b"\x80\x3f")}))
put("safetensors", "offsets-overflow",
    struct.pack("<Q", 80) + b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}}'.ljust(80))


def llama2c(dim=8, hidden=16, layers=1, heads=2, kv_heads=2, vocab=16, seq=8, shared=True, version=0):
    head = dim // heads
    kv = head * kv_heads
    n = (vocab * dim + layers * dim + layers * dim * dim + 2 * layers * kv * dim + layers * dim * dim
         + layers * dim + 3 * layers * hidden * dim + dim + seq * head + (0 if shared else vocab * dim))
    weights = struct.pack("<%df" % n, *[((i * 37) % 17 - 8) / 64.0 for i in range(n)])
    if version == 0:
        return struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab if shared else -vocab, seq) + weights
    hdr = struct.pack("<Ii7iB", 0x616B3432, 1, dim, hidden, layers, heads, kv_heads, vocab, seq, 1 if shared else 0)
    return hdr.ljust(256, b"\0") + weights


put("llama2c_model", "v0-shared", llama2c())
put("llama2c_model", "v0-unshared-gqa", llama2c(kv_heads=1, shared=False))
put("llama2c_model", "v1", llama2c(version=1))
put("llama2c_model", "absurd-dims", struct.pack("<7i", 1 << 30, 1 << 30, 1 << 20, 3, 7, -5, 1 << 30))


def llama2c_tokenizer(extra):
    pieces = [(0.0, b"<unk>"), (0.0, b"\n<s>\n"), (0.0, b"\n</s>\n")]
    pieces += [(0.0, b"<0x%02X>" % i) for i in range(256)]
    pieces += [(-float(i), p.encode()) for i, p in enumerate(extra)]
    out = struct.pack("<i", max(len(p) for _, p in pieces))
    for score, p in pieces:
        out += struct.pack("<fi", score, len(p)) + p
    return out


put("tokenizer", "llama2c", llama2c_tokenizer([" ", "e", " t", "he", " the", "Hello", " world", "ll"]))


def spm(pieces, model_type=1, byte_fallback=True):
    out = b""
    for piece, score, typ in pieces:
        out += field(1, 2, field(1, 2, piece.encode()) + field(2, 5, struct.pack("<f", score)) + field(3, 0, typ))
    out += field(2, 2, field(3, 0, model_type) + field(35, 0, 1 if byte_fallback else 0))
    out += field(3, 2, field(1, 2, b"identity") + field(3, 0, 1) + field(4, 0, 1))
    return out


base = [("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3)] + [("<0x%02X>" % i, 0, 6) for i in range(256)]
words = [("\u2581", -1, 1), ("\u2581the", -2, 1), ("e", -3, 1), ("\u2581Hello", -4, 1), ("\u2581world", -5, 1)]
put("tokenizer", "spm-unigram", spm(base + words))
put("tokenizer", "spm-bpe", spm(base + words, model_type=2))


def tensor(dtype, shape, raw):
    return field(1, 0, dtype) + b"".join(field(2, 0, s) for s in shape) + field(3, 2, raw)


put("tensor_codec", "f32", tensor(1, [2, 2], struct.pack("<4f", 1, 2, 3, 4)))
put("tensor_codec", "i64", tensor(4, [3], struct.pack("<3q", 1, -2, 3)))
put("tensor_codec", "bf16-scalar", tensor(2, [], b"\x80\x3f"))
put("tensor_codec", "size-lie", tensor(1, [1 << 40, 1 << 40], b"\0" * 8))


def chunk(version, name=None, dtype=None, shape=(), offset=0, data=b"", last=False, tensors=0, total=0,
          crc=None):
    out = field(1, 0, version)
    if name is not None:
        out += field(2, 2, name.encode()) + field(3, 0, dtype) + b"".join(field(4, 0, s) for s in shape)
    out += field(5, 0, offset) + field(6, 2, data)
    crc = crc if crc is not None else crc32c(data)
    out += field(7, 5, struct.pack("<I", crc))
    if last:
        out += field(8, 0, 1) + field(9, 0, tensors) + field(10, 0, total)
    return out


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


SEP = b"\xff\xfe\xfd\xfc"
w = struct.pack("<4f", 1, 2, 3, 4)
stream = [chunk(3, "w", 1, (2, 2), 0, w[:8]), chunk(3, None, None, (), 8, w[8:]),
          chunk(3, "b", 4, (1,), 0, struct.pack("<q", 5), last=True, tensors=2, total=24)]
put("weight_chunks", "two-tensors", b"\x00" + SEP.join(stream))
put("weight_chunks", "out-of-order", b"\x00" + SEP.join([stream[1], stream[0], stream[2]]))
put("weight_chunks", "bad-crc", b"\x00" + SEP.join([chunk(3, "w", 1, (2, 2), 0, w, crc=1)]))


def record(kind, payload):
    return struct.pack("<I", len(payload)) + kind + payload


def trajectory(tid):
    return (field(1, 2, tid.encode()) + field(2, 2, b"w") + field(3, 0, 0)
            + field(4, 2, b"L1") + field(5, 0, 0))


journal = (record(b"A", trajectory("a")) + record(b"A", trajectory("b")) + record(b"D", b"a")
           + record(b"I", b"x") + record(b"C", struct.pack("<Q", 1) + struct.pack("<I", 1) + b"a")
           + record(b"R", struct.pack("<Q", 0)) + record(b"S", b"s"))
put("journal", "verdicts", journal)
put("journal", "torn-tail", journal + struct.pack("<I", 100) + b"A" + b"xx")
put("journal", "compacted", record(b"U", struct.pack("<3Q", 1, 1, 4)) + record(b"a", b"a")
    + record(b"C", struct.pack("<Q", 4) + struct.pack("<I", 1) + b"a"))

put("config", "local.yaml", """run_dir: /tmp/x
rollout_workers: 2
learner:
  total_steps: 3
  journal_sync: BATCH
  ppo: {batch_size: 4, minibatch_size: 2, advantage: RLOO, group_size: 2}
  sampling: {max_new_tokens: 8, temperature: 0.7, top_p: 0.9}
reward:
  rules: [{kind: WORD_RATE, word: "a"}]
""")
put("config", "local.json", json.dumps({"learner": {"max_queue": 8, "limits": {"max_batch": 4}},
                                        "rollout": {}, "learner_ranks": 1}))
put("config", "anchors.yaml", "a: &x {b: 1}\nlearner: *x\n")

hh = "\n\nHuman: how do i make pancakes?\n\nAssistant: Mix flour, eggs and milk."
put("records", "pairs.jsonl", "\n".join([
    json.dumps({"chosen": hh + " Then fry.", "rejected": hh + " No."}),
    json.dumps({"prompt": "hi", "chosen": "hello", "rejected": "go away"}),
    json.dumps({"prompt": "hi", "response_a": "x", "response_b": "y", "p_a": 0.25}),
    json.dumps({"prompt": "hi", "response": "hello there"}),
    "not json", "{}"]) + "\n")
put("records", "hh-turns", hh + "\n\nHuman: thanks\n\nAssistant:")
