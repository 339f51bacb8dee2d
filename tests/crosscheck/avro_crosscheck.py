#!/usr/bin/python3
"""Cross-checks cv-avro (our C codec) against an independent implementation, python-avro.

For every schema `cv-avro schemas` lists: its Parsing Canonical Form against python-avro's
canonical_form of the same schema files, and its CRC-64-AVRO fingerprint against one computed
here. For every current event type: random samples encoded by `cv-avro encode` and read by
python-avro's DatumReader (after checking the framing), and samples written by python-avro's
DatumWriter and read by `cv-avro decode`. Prints "crosscheck: N passed, M failed" last and exits
non-zero if anything failed.

Run with Debian's interpreter (/usr/bin/python3), which sees python3-avro:
    avro_crosscheck.py [CV_AVRO]
The binary is the argument, else $CV_AVRO, else $BUILD/bin/cv-avro (BUILD defaults to build)
under the repository root. tests/e2e/avro_peer.py reuses the helpers here.
"""

import base64
import datetime
import glob
import io
import json
import os
import random
import subprocess
import sys
import uuid
import warnings

import avro.io
import avro.name
import avro.schema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CV_AVRO = os.environ.get("CV_AVRO") or os.path.join(
    ROOT, os.environ.get("BUILD", "build"), "bin", "cv-avro")
SAMPLES_PER_TYPE = 25
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}

# python-avro warns when a plain int is given where it expects a datetime; we convert anyway.
warnings.simplefilter("ignore")

# CRC-64-AVRO, as the Avro specification gives it.
CRC64_EMPTY = 0xC15D213AA4D7A795
CRC64_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (CRC64_EMPTY & -(_fp & 1))
    CRC64_TABLE.append(_fp)


def crc64(data):
    fp = CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL: " + what)
        return ok


def run(args, stdin=b""):
    proc = subprocess.run([CV_AVRO] + args, input=stdin, capture_output=True, check=False)
    return proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace")


def spec_canonical(obj):
    """python-avro 1.11.1 writes a primitive carrying other attributes (logicalType) as
    {"type": "string"}; the specification's [PRIMITIVES] rule (and Java) write "string".
    Only that is corrected here: everything else is python-avro's own."""
    if isinstance(obj, dict):
        if set(obj) == {"type"} and obj["type"] in PRIMITIVES:
            return obj["type"]
        return {k: spec_canonical(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [spec_canonical(v) for v in obj]
    return obj


def full_name(doc):
    name, ns = doc["name"], doc.get("namespace")
    return name if "." in name or not ns else ns + "." + name


def load_python_schemas():
    """Parses each schema directory as the catalogue does: the shared types first (names
    resolved by python-avro itself), then the events (records with a metadata field).
    Returns [(origin, full name, python schema)]."""
    dirs = [("current", os.path.join(ROOT, "schemas"))]
    for d in sorted(glob.glob(os.path.join(ROOT, "schemas", "released", "*"))):
        dirs.append((os.path.basename(d), d))
    out = []
    for origin, d in dirs:
        docs = []
        for path in sorted(glob.glob(os.path.join(d, "*.avsc"))):
            with open(path, encoding="utf-8") as f:
                docs.append(json.load(f))
        names = avro.name.Names()
        shared = [doc for doc in docs
                  if not any(fld["name"] == "metadata" for fld in doc.get("fields", []))]
        # Shared types may use each other: parse until everything resolves.
        pending = shared
        while pending:
            left = []
            for doc in pending:
                try:
                    avro.schema.make_avsc_object(doc, names)
                except avro.errors.SchemaParseException:
                    left.append(doc)
            if len(left) == len(pending):
                raise RuntimeError("unresolvable shared types in " + d)
            pending = left
        for doc in docs:
            if doc in shared:
                continue
            out.append((origin, full_name(doc), avro.schema.make_avsc_object(doc, names)))
    return out


# Sample values in our JSON shape, generated from the schema.
STRINGS = ["", "a", "order-service", "Zoë Müller", "東京都千代田区", "truck \U0001F69A",
           "quote \" backslash \\ tab \t", "line\nbreak", "nul\u0000inside", "\u0001\u007f"]


def gen_value(schema, rng, depth=0):
    logical = getattr(schema, "logical_type", None)
    t = schema.type
    if t == "null":
        return None
    if t == "boolean":
        return rng.random() < 0.5
    if t == "int":
        return rng.choice([0, 1, -1, 2**31 - 1, -2**31, rng.randint(-1000, 1000)])
    if t == "long":
        if logical in ("timestamp-millis",):
            return rng.choice([0, 1700000000000, -1, 253402300799999, -62135596800000,
                               rng.randint(0, 4102444800000)])
        return rng.choice([0, -1, 2**63 - 1, -2**63, 2**31, rng.randint(-10**12, 10**12)])
    if t in ("float", "double"):
        return rng.choice([0.0, 1.5, -2.25, 1e10])
    if t == "string":
        if logical == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128)))
        return rng.choice(STRINGS) + ("" if rng.random() < 0.5 else str(rng.randint(0, 9999)))
    if t == "bytes":
        return base64.b64encode(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 8)))).decode()
    if t == "fixed":
        return base64.b64encode(bytes(rng.getrandbits(8) for _ in range(schema.size))).decode()
    if t == "enum":
        return rng.choice(schema.symbols)
    if t == "array":
        return [gen_value(schema.items, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if t == "map":
        return {rng.choice(STRINGS[:8]) + str(i): gen_value(schema.values, rng, depth + 1)
                for i in range(rng.randint(0, 3))}
    if t == "union":
        branches = schema.schemas
        if depth > 5 and any(b.type == "null" for b in branches):
            return None
        return gen_value(rng.choice(branches), rng, depth + 1)
    if t in ("record", "error"):
        return {f.name: gen_value(f.type, rng, depth + 1) for f in schema.fields}
    raise ValueError("no sample for " + t)


def to_python(schema, value):
    """Our JSON shape -> a python-avro datum (datetimes for timestamp-millis, bytes)."""
    logical = getattr(schema, "logical_type", None)
    t = schema.type
    if t == "long" and logical == "timestamp-millis":
        return EPOCH + datetime.timedelta(milliseconds=value)
    if t in ("bytes", "fixed"):
        return base64.b64decode(value)
    if t == "array":
        return [to_python(schema.items, v) for v in value]
    if t == "map":
        return {k: to_python(schema.values, v) for k, v in value.items()}
    if t == "union":
        for b in schema.schemas:
            if (value is None) == (b.type == "null"):
                return to_python(b, value)
    if t in ("record", "error"):
        return {f.name: to_python(f.type, value[f.name]) for f in schema.fields}
    return value


def from_python(schema, datum):
    """A python-avro datum -> our JSON shape."""
    logical = getattr(schema, "logical_type", None)
    t = schema.type
    if t == "long" and logical == "timestamp-millis":
        return (datum - EPOCH) // datetime.timedelta(milliseconds=1)
    if t in ("bytes", "fixed"):
        return base64.b64encode(datum).decode()
    if t == "array":
        return [from_python(schema.items, v) for v in datum]
    if t == "map":
        return {k: from_python(schema.values, v) for k, v in datum.items()}
    if t == "union":
        for b in schema.schemas:
            if (datum is None) == (b.type == "null"):
                return from_python(b, datum)
    if t in ("record", "error"):
        return {f.name: from_python(f.type, datum[f.name]) for f in schema.fields}
    return datum


def drop_defaulted(schema, value, rng):
    """Leaves out some top-level and metadata fields that have defaults (the encoder must
    write the default); returns the JSON to encode, value keeping the full expectation."""
    out = dict(value)
    for f in schema.fields:
        if f.has_default and rng.random() < 0.5 and value[f.name] == f.default:
            del out[f.name]
        elif f.type.type == "record" and isinstance(value[f.name], dict):
            out[f.name] = drop_defaulted(f.type, value[f.name], rng)
    return out


def check_schemas(res, listed, pyschemas):
    by_fp = {}
    for origin, name, schema in pyschemas:
        canonical = json.dumps(spec_canonical(json.loads(schema.canonical_form)),
                               separators=(",", ":"), ensure_ascii=False)
        fp = crc64(canonical.encode("utf-8"))
        by_fp.setdefault(fp, (origin, name, canonical))
        entry = listed.get(name + "@" + format(fp, "016x"))
        if res.check(entry is not None, "%s %s (python fingerprint %016x) not listed by cv-avro"
                     % (origin, name, fp)):
            res.check(entry == canonical, "%s %s: canonical forms differ:\n  cv-avro %s\n  python  %s"
                      % (origin, name, entry, canonical))
    for key in listed:
        name, fp = key.split("@")
        res.check(int(fp, 16) in by_fp, "cv-avro lists %s %s that python does not know" % (fp, name))


def check_codec(res, name, schema, fp, rng):
    short = name.split(".")[-1]
    samples = [gen_value(schema, rng) for _ in range(SAMPLES_PER_TYPE)]
    inputs = [drop_defaulted(schema, s, rng) for s in samples]
    header = b"\xc3\x01" + fp.to_bytes(8, "little")

    # C encodes, python decodes.
    rc, out, err = run(["encode", "--hex", short],
                       "\n".join(json.dumps(i) for i in inputs).encode("utf-8"))
    lines = out.decode().split()
    res.check(rc == 0 and len(lines) == len(samples), "%s: cv-avro encode failed: %s" % (name, err))
    for sample, line in zip(samples, lines):
        raw = bytes.fromhex(line)
        if not res.check(raw[:10] == header, "%s: bad single-object header %s" % (name, raw[:10].hex())):
            continue
        try:
            datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(raw[10:])))
            res.check(from_python(schema, datum) == sample,
                      "%s: python read %r, expected %r" % (name, datum, sample))
        except Exception as e:  # python-avro raises many kinds
            res.check(False, "%s: python cannot read cv-avro's value %s: %s" % (name, line, e))

    # Confluent framing: 0x00, big-endian id, the same body.
    rc, out, err = run(["encode", "--hex", "--confluent", "4242", short],
                       json.dumps(inputs[0]).encode("utf-8"))
    raw = bytes.fromhex(out.decode().strip() or "00")
    if res.check(rc == 0 and raw[:5] == b"\x00\x00\x00\x10\x92",
                 "%s: Confluent framing %s %s" % (name, raw[:5].hex(), err)):
        datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(raw[5:])))
        res.check(from_python(schema, datum) == samples[0], "%s: Confluent body differs" % name)

    # Python encodes, C decodes.
    hexes = []
    for sample in samples:
        buf = io.BytesIO()
        avro.io.DatumWriter(schema).write(to_python(schema, sample), avro.io.BinaryEncoder(buf))
        hexes.append((header + buf.getvalue()).hex())
    rc, out, err = run(["decode", "--hex"], "\n".join(hexes).encode())
    decoded = [json.loads(line) for line in out.decode("utf-8").splitlines() if line]
    res.check(rc == 0 and len(decoded) == len(samples), "%s: cv-avro decode failed: %s" % (name, err))
    for sample, got in zip(samples, decoded):
        res.check(got == dict({"_type": short}, **sample),
                  "%s: cv-avro read %r, expected %r" % (name, got, sample))

    # The same values laid end to end, as `kcat -f '%s'` prints them.
    rc, out, err = run(["decode"], b"".join(bytes.fromhex(h) for h in hexes))
    res.check(rc == 0 and len(out.decode("utf-8").splitlines()) == len(samples),
              "%s: cv-avro decode of a stream failed: %s" % (name, err))


def main():
    global CV_AVRO
    if len(sys.argv) > 1:
        CV_AVRO = os.path.abspath(sys.argv[1])
    res = Results()
    res.check(crc64(b"") == 0xC15D213AA4D7A795, "CRC-64-AVRO of empty input")
    res.check(crc64(b'"null"') == 7195948357588979594, "CRC-64-AVRO of \"null\"")
    if not os.access(CV_AVRO, os.X_OK):
        print("crosscheck: no executable " + os.path.relpath(CV_AVRO, ROOT))
        print("crosscheck: %d passed, %d failed" % (res.passed, res.failed + 1))
        return 1
    rc, out, err = run(["schemas"])
    res.check(rc == 0, "cv-avro schemas: " + err)
    listed = {}
    for line in out.decode("utf-8").splitlines():
        fp, name, canonical = line.split(" ", 2)
        listed[name + "@" + fp] = canonical
    res.check(len(listed) > 0, "cv-avro lists no schema")
    pyschemas = load_python_schemas()
    check_schemas(res, listed, pyschemas)
    rng = random.Random(20240601)
    for origin, name, schema in pyschemas:
        if origin != "current":
            continue
        canonical = json.dumps(spec_canonical(json.loads(schema.canonical_form)),
                               separators=(",", ":"), ensure_ascii=False)
        check_codec(res, name, schema, crc64(canonical.encode("utf-8")), rng)
    print("crosscheck: %d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
