#!/usr/bin/python3
"""Mints an HS256 bearer token for a local Conveyor (make up): the services verify it with the
same secret file. For a laptop only; real deployments take tokens from their identity provider.

    token.py --secret-file FILE --sub alice --roles customer [--issuer I] [--audience A]
             [--ttl SECONDS]
"""

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    p = argparse.ArgumentParser(description="Mint a local HS256 bearer token.")
    p.add_argument("--secret-file", required=True)
    p.add_argument("--sub", required=True)
    p.add_argument("--roles", required=True, help="comma-separated: customer,operator,auditor")
    p.add_argument("--issuer", default="conveyor-local")
    p.add_argument("--audience", default="conveyor")
    p.add_argument("--ttl", type=int, default=12 * 3600)
    a = p.parse_args()
    with open(a.secret_file, "rb") as f:
        secret = f.read().rstrip(b"\r\n")
    now = int(time.time())
    claims = {"iss": a.issuer, "aud": a.audience, "sub": a.sub, "roles": a.roles.split(","),
              "iat": now, "exp": now + a.ttl}
    signing = (b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." +
               b64(json.dumps(claims).encode()))
    sig = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    sys.stdout.write(signing + "." + b64(sig) + "\n")


if __name__ == "__main__":
    main()
