#!/usr/bin/python3
"""Regenerates the generated seeds of tests/fuzz/corpus/ (files named gen_*; hand-written seeds
and regression inputs are left alone):

  avro_decode/  real values of every current event type, encoded by `cv-avro encode` (single
                object, Confluent framing with the ids fuzz_avro_decode.c gives, a stream of
                values end to end, a bare body after the byte that picks its writer), values
                of tests/fuzz/schemas/FuzzAll.avsc written by python-avro, and malformed
                variants (truncated, trailing bytes, huge lengths).
  canonical/    the canonical form of every catalogue schema, as `cv-avro schemas` lists it.

Run with Debian's interpreter after `make`:  tests/fuzz/seeds.py [CV_AVRO]
"""

import glob
import io
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "crosscheck"))

import avro.io  # noqa: E402
import avro.schema  # noqa: E402

import avro_crosscheck as cc  # noqa: E402

SAMPLES_PER_TYPE = 3


def write(corpus, name, data):
    with open(os.path.join(HERE, "corpus", corpus, "gen_" + name), "wb") as f:
        f.write(data)


def encode(short, values):
    rc, out, err = cc.run(["encode", "--hex", short],
                          "\n".join(json.dumps(v) for v in values).encode("utf-8"))
    if rc != 0:
        raise RuntimeError("cv-avro encode %s: %s" % (short, err))
    return [bytes.fromhex(line) for line in out.decode().split()]


def named_once(obj, seen):
    """python-avro 1.11.1 writes a fixed type in full again where it is referenced a second
    time; the specification (and our canonical form) write its full name there."""
    if isinstance(obj, dict):
        if "name" in obj and obj.get("type") in ("record", "enum", "fixed"):
            if obj["name"] in seen:
                return obj["name"]
            seen.add(obj["name"])
        return {k: named_once(v, seen) for k, v in obj.items()}
    if isinstance(obj, list):
        return [named_once(v, seen) for v in obj]
    return obj


def malformed(name, raw, header):
    """Variants of one valid value that the decoder must refuse."""
    body = raw[header:]
    write("avro_decode", name + "_truncated", raw[:header + len(body) // 2])
    write("avro_decode", name + "_trailing", raw + b"\x00")
    # The first varint of the body (the event_id's length) made huge.
    write("avro_decode", name + "_huge_length", raw[:header] + b"\xfe\xff\xff\xff\x0f" + body[1:])


def catalogue_size():
    """Event schemas in the catalogue (current and released): FuzzAll's index after them."""
    n = 0
    for path in glob.glob(os.path.join(ROOT, "schemas", "*.avsc")) + glob.glob(
            os.path.join(ROOT, "schemas", "released", "*", "*.avsc")):
        with open(path, encoding="utf-8") as f:
            n += any(fld["name"] == "metadata" for fld in json.load(f).get("fields", []))
    return n


def main():
    if len(sys.argv) > 1:
        cc.CV_AVRO = os.path.abspath(sys.argv[1])
    for old in glob.glob(os.path.join(HERE, "corpus", "*", "gen_*")):
        os.remove(old)
    rng = random.Random(20250101)

    rc, out, err = cc.run(["schemas"])
    if rc != 0:
        raise RuntimeError("cv-avro schemas: " + err)
    # Catalogue order: the current versions come first, so the i-th listed has id i + 1.
    listed = [line.split(" ", 2) for line in out.decode("utf-8").splitlines()]
    pyschemas = {name: schema for origin, name, schema in cc.load_python_schemas()
                 if origin == "current"}
    for index, (_fp, name, canonical) in enumerate(listed):
        short = name.split(".")[-1]
        write("canonical", short, canonical.encode("utf-8"))
        values = [cc.gen_value(pyschemas[name], rng) for _ in range(SAMPLES_PER_TYPE)]
        encoded = encode(short, values)
        for i, raw in enumerate(encoded):
            write("avro_decode", "%s_%d" % (short, i), raw)
        confluent = b"\x00" + (index + 1).to_bytes(4, "big") + encoded[0][10:]
        write("avro_decode", short + "_confluent", confluent)
        write("avro_decode", short + "_stream", b"".join(encoded) + confluent)
        malformed(short, encoded[0], 10)
        write("avro_decode", short + "_body", bytes([index]) + encoded[0][10:])

    # FuzzAll (every Avro kind), written by python-avro; id 1001 in Confluent framing.
    with open(os.path.join(HERE, "schemas", "FuzzAll.avsc"), encoding="utf-8") as f:
        schema = avro.schema.parse(f.read())
    canonical = json.dumps(named_once(cc.spec_canonical(json.loads(schema.canonical_form)), set()),
                           separators=(",", ":"), ensure_ascii=False)
    header = b"\xc3\x01" + cc.crc64(canonical.encode("utf-8")).to_bytes(8, "little")
    for i in range(6):
        buf = io.BytesIO()
        value = cc.gen_value(schema, rng)
        avro.io.DatumWriter(schema).write(cc.to_python(schema, value), avro.io.BinaryEncoder(buf))
        write("avro_decode", "FuzzAll_%d" % i, header + buf.getvalue())
        if i == 0:
            write("avro_decode", "FuzzAll_confluent",
                  b"\x00" + (1001).to_bytes(4, "big") + buf.getvalue())
            malformed("FuzzAll", header + buf.getvalue(), 10)
            write("avro_decode", "FuzzAll_body", bytes([catalogue_size()]) + buf.getvalue())

    # Framing alone.
    write("avro_decode", "empty", b"")
    write("avro_decode", "bad_magic", b"\x7b\"a\":1}")
    write("avro_decode", "single_object_short", b"\xc3\x01\x00")
    write("avro_decode", "unknown_fingerprint", b"\xc3\x01" + bytes(8) + b"\x00")
    write("avro_decode", "unknown_id", b"\x00\xff\xff\xff\xff\x00")
    return 0


if __name__ == "__main__":
    sys.exit(main())
