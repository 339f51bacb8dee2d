"""Checks real HTTP responses against the services' OpenAPI documents (docs/openapi/<name>.json):
the status must be documented for the operation, the Content-Type must be one documented for
that status, the body must validate against its JSON Schema (2020-12, as OpenAPI 3.1 uses), and
each documented header that is present must match its schema."""

import json
import os
import re

import jsonschema

from conveyor import ROOT

DOCS = os.path.join(ROOT, "docs", "openapi")


def load(service):
    with open(os.path.join(DOCS, f"{service}.json")) as f:
        return json.load(f)


def inline_refs(node, doc):
    """The schema with every local $ref replaced by what it points to (our documents have no
    recursive schemas), so that any jsonschema version validates it without a resolver."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            resolved = inline_refs(target, doc)
            return dict(resolved, **inline_refs(rest, doc)) if rest else resolved
        return {k: inline_refs(v, doc) for k, v in node.items()}
    if isinstance(node, list):
        return [inline_refs(v, doc) for v in node]
    return node


def match_path(doc, path):
    """The documented path template that path (without the query) matches, or None."""
    for template in doc["paths"]:
        pattern = "^" + re.sub(r"\\\{[^/]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    return None


class Checker:
    """Validates responses and remembers which (method, path template, status) were seen."""

    def __init__(self, service):
        self.service = service
        self.doc = load(service)
        self.seen = set()

    def check(self, method, url_path, response):
        path = url_path.split("?", 1)[0]
        template = match_path(self.doc, path)
        assert template, f"{self.service}: {path} is not in the OpenAPI document"
        op = self.doc["paths"][template].get(method.lower())
        assert op, f"{self.service}: {method} {template} is not in the OpenAPI document"
        documented = op["responses"].get(str(response.status)) or op["responses"].get("default")
        assert documented, (f"{self.service}: {method} {template} answered {response.status}, "
                            f"not documented (documented: {sorted(op['responses'])})")
        documented = inline_refs(documented, self.doc)
        content = documented.get("content")
        if content:
            ctype = response.content_type.split(";")[0].strip()
            assert ctype in content, (f"{self.service}: {method} {template} {response.status} "
                                      f"answered {ctype}, documented {sorted(content)}")
            schema = content[ctype].get("schema")
            if schema is not None:
                body = response.body.decode() if ctype == "text/plain" else response.json()
                errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(body),
                                key=lambda e: list(e.absolute_path))
                assert not errors, (f"{self.service}: {method} {template} {response.status}: " +
                                    "; ".join(f"{list(e.absolute_path)}: {e.message}"
                                              for e in errors[:5]))
        else:
            assert not response.body, (f"{self.service}: {method} {template} "
                                       f"{response.status} has a body but documents none")
        for name, header in documented.get("headers", {}).items():
            value = next((v for k, v in response.headers.items() if k.lower() == name.lower()),
                         None)
            if value is not None:
                errors = list(jsonschema.Draft202012Validator(header["schema"]).iter_errors(value))
                assert not errors, f"{self.service}: header {name}: {errors[0].message}"
        self.seen.add((method.upper(), template, response.status))
        return response

    def operations(self):
        return {(m.upper(), p) for p, item in self.doc["paths"].items() for m in item
                if m in ("get", "put", "post", "delete", "patch")}

    def unseen(self):
        """Documented operations that no checked response exercised."""
        return self.operations() - {(m, p) for m, p, _ in self.seen}
