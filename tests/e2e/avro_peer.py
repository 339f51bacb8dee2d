"""An independent Avro reader and writer (python-avro) for the records on our topics: schemas
parsed from schemas/*.avsc by python-avro itself, fingerprints computed here."""

import io
import json
import subprocess

import avro.io

from avro_crosscheck import (crc64, from_python, load_python_schemas, spec_canonical,
                             CV_AVRO)

_BY_FP = {}
_BY_NAME = {}


def _load():
    if _BY_FP:
        return
    for origin, name, schema in load_python_schemas():
        canonical = json.dumps(spec_canonical(json.loads(str(schema.canonical_form))),
                               separators=(",", ":"))
        fp = crc64(canonical.encode())
        _BY_FP[fp] = (name, schema)
        if origin == "current":
            _BY_NAME[name.split(".")[-1]] = (fp, schema)


def fingerprint(type_name):
    _load()
    return _BY_NAME[type_name][0]


def decode(value):
    """Decodes a single-object-encoded value: returns (type name, fields in our JSON shape).
    Raises ValueError for anything else."""
    _load()
    if len(value) < 10 or value[:2] != b"\xc3\x01":
        raise ValueError("not Avro single-object encoding")
    fp = int.from_bytes(value[2:10], "little")
    if fp not in _BY_FP:
        raise ValueError(f"unknown fingerprint {fp:016x}")
    name, schema = _BY_FP[fp]
    datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(value[10:])))
    return name.split(".")[-1], from_python(schema, datum)


def encode(type_name, event):
    """Single-object encoding of event (our JSON shape) with our own encoder (cv-avro)."""
    out = subprocess.run([CV_AVRO, "encode", type_name], input=json.dumps(event).encode(),
                         capture_output=True, check=True)
    return out.stdout

