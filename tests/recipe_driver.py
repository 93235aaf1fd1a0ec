"""Runs ``manage.py`` commands for a Django project the way a user would, but several in one process
(each Django start-up costs half a second): ``python recipe_driver.py`` in the project's folder, with
``DJANGO_SETTINGS_MODULE`` set, reads a JSON list of steps on stdin and prints a JSON list of results.

Steps, in order:

* ``{"database": NAME}``: the ``default`` alias points at database NAME from now on;
* ``{"clone": NAME}``: ``CREATE DATABASE NAME TEMPLATE <the current one>`` (Django's connection closed);
* ``{"write": {PATH: TEXT, ...}}``: files written in the project (a migration the loader will find);
* ``{"manage": [ARGS...]}``: ``call_command(*ARGS)``; result ``{"code", "out", "err"}`` as the command
  line would give them (``sys.exit(n)`` and ``CommandError(returncode=n)`` are exit codes);
* ``{"state": [APP, NAME]}``: Django's migration state of APP's models after migration NAME (None: after
  the last one on disk), each field and option as ``makemigrations`` would write it; result ``{"state"}``.

Used by ``tests/test_recipes_apply.py``."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import traceback
from pathlib import Path


def main() -> None:
    sys.path.insert(0, os.getcwd())
    import django

    django.setup()
    from django.core.management import CommandError, call_command
    from django.db import connections

    results = []
    for step in json.load(sys.stdin):
        if "database" in step:
            connections.close_all()
            connections["default"].settings_dict["NAME"] = step["database"]
            results.append({})
        elif "clone" in step:
            import psycopg

            source = connections["default"].settings_dict["NAME"]
            connections.close_all()
            with psycopg.connect(os.environ["RECIPE_DRIVER_ADMIN_DSN"], autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{step["clone"]}" TEMPLATE "{source}"')
            results.append({})
        elif "write" in step:
            for path, text in step["write"].items():
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text)
            importlib.invalidate_caches()  # the loader lists the migrations folder again
            results.append({})
        elif "state" in step:
            results.append({"state": _state(*step["state"])})
        else:
            out, err = io.StringIO(), io.StringIO()
            code = 0
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    call_command(*step["manage"], stdout=out, stderr=err)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except CommandError as exc:
                code = exc.returncode or 1
                err.write(f"CommandError: {exc}\n")
            except Exception:  # migrate failing: the test reports the traceback
                code = 1
                err.write(traceback.format_exc())
            connections.close_all()
            results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
    json.dump(results, sys.stdout)


def _state(app: str, name: str | None) -> dict:
    from django.db import connections
    from django.db.migrations.loader import MigrationLoader
    from django.db.migrations.serializer import serializer_factory

    loader = MigrationLoader(connections["default"])
    state = loader.project_state([(app, name)] if name else loader.graph.leaf_nodes(app))
    connections.close_all()

    def source(value) -> str:
        return serializer_factory(value).serialize()[0]

    return {model: {"fields": {field: source(value) for field, value in model_state.fields.items()},
                    "options": {key: source(value) for key, value in sorted(model_state.options.items())}}
            for (label, model), model_state in sorted(state.models.items()) if label == app}


if __name__ == "__main__":
    main()
