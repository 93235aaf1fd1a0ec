"""The ready-made CI integrations run the commands they show: each test reads the YAML file, takes
the command lines from it and runs them on the fixture project against a real PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from tests.formats.schemas import sarif_errors
from tests.formats.test_github import parse as parse_annotations
from tests.projects import REPO

GITHUB_WORKFLOW = REPO / "examples" / "github-actions.yml"
GITLAB_CI = REPO / "examples" / "gitlab-ci.yml"
PRE_COMMIT_HOOKS = REPO / ".pre-commit-hooks.yaml"
NEW_MIGRATION = "inventory/migrations/0005_item_quantity_big.py"

QUANTITY_BIGINT = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.AlterField("item", "quantity", models.BigIntegerField(null=True))]
'''

NULLABLE_COLUMN = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0004_item_warehouse_note")]
    operations = [migrations.AddField("item", "colour", models.TextField(null=True))]
'''


def _shell(project, script: str, env: dict) -> subprocess.CompletedProcess:
    """Run a CI script line with bash -e in the project, ``python`` being the test interpreter."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(["bash", "-e", "-c", script], cwd=project.root, capture_output=True, text=True,
                          env={**project.env, "PATH": path, **env}, timeout=300)


def _pull_request(project) -> None:
    """A checkout whose target branch is origin/main, a branch adding a migration that rewrites
    inventory_item, and the production snapshot (3,000 rows; large means more than 1,000)."""
    project.migrate("0004")
    project.fill_items(3000)
    project.config("[tool.migration_guard]\nthreshold_rows = 1000\n")
    dump = project.cli("stats", "dump", "--dsn", project.dsn, "--output", "prod-stats.json")
    assert dump.code == 0, dump.err

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                       cwd=project.root, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-qm", "base")
    git("update-ref", "refs/remotes/origin/main", "HEAD")
    git("checkout", "-qb", "feature")
    project.add_migration("0005_item_quantity_big", QUANTITY_BIGINT)
    git("add", "-A")
    git("commit", "-qm", "bigint quantity")


def test_github_actions_workflow(project, tmp_path):
    workflow = yaml.safe_load(GITHUB_WORKFLOW.read_text())
    assert workflow["permissions"]["security-events"] == "write"
    assert set(workflow["jobs"]) == {"migration-guard", "release"}
    job = workflow["jobs"]["migration-guard"]
    assert job["if"] == "github.event_name == 'pull_request'"
    steps = job["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 0
    lint = next(s for s in steps if "lint_migrations" in s.get("run", ""))
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif@"))
    assert "cancelled()" in upload["if"] or "always()" in upload["if"]  # runs when the gate blocked
    sarif_path = re.search(r"--output sarif:(\S+)", lint["run"])[1]
    assert upload["with"]["sarif_file"] == sarif_path

    _pull_request(project)
    script = lint["run"].replace("${{ github.base_ref }}", "main")
    assert "${{" not in script
    summary = tmp_path / "step-summary.md"
    run = _shell(project, script, {"GITHUB_STEP_SUMMARY": str(summary)})
    assert run.returncode == 1, run.stdout + run.stderr

    (annotation,) = parse_annotations(run.stdout)
    assert annotation["kind"] == "error" and annotation["file"] == NEW_MIGRATION
    assert annotation["title"] == "MG007 alter-column-type-rewriting" and annotation["line"] == "7"
    log = json.loads((project.root / sarif_path).read_text())
    assert sarif_errors(log) == []
    (result,) = log["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == NEW_MIGRATION
    markdown = summary.read_text()
    assert markdown.startswith("## migration_guard: ⛔ BLOCKED")
    assert "| `inventory.0005_item_quantity_big` | ⛔ blocked | MG007 |" in markdown


def test_gitlab_ci_job(project):
    jobs = yaml.safe_load(GITLAB_CI.read_text())
    assert set(jobs) == {"migration-guard", "release"}
    job = jobs["migration-guard"]
    assert job["variables"]["GIT_DEPTH"] == "0"
    assert job["artifacts"]["when"] == "always"
    junit = job["artifacts"]["reports"]["junit"]
    lint_lines = [line for line in job["script"] if "lint_migrations" in line]
    assert lint_lines

    (cached,) = job["cache"]["paths"]
    assert job["cache"]["when"] == "always"
    assert job["variables"]["MIGRATION_GUARD_CACHE_DIR"] == f"$CI_PROJECT_DIR/{cached.rstrip('/')}"

    _pull_request(project)
    env = {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main", "CI_PROJECT_DIR": str(project.root),
           "MIGRATION_GUARD_CACHE_DIR": str(project.root / cached), "MIGRATION_GUARD_BASE_CACHE": "1"}
    run = _shell(project, "\n".join(lint_lines), env)
    assert run.returncode == 1, run.stdout + run.stderr
    # The folder GitLab caches holds the base for the next pipeline.
    assert "base cache: kept the base (4 migrations)" in run.stdout
    assert list((project.root / cached).glob("embedded-*/cluster/data.tar"))
    assert run.stdout.rstrip().endswith("Exit 1.")  # the text report in the job log
    suite = ET.parse(project.root / junit).getroot()
    (case,) = suite.iter("testcase")
    assert (case.get("classname"), case.get("name")) == ("inventory", "0005_item_quantity_big")
    assert case.find("failure").get("type") == "MG007"
    for path in job["artifacts"]["paths"]:
        assert (project.root / path).is_file()


def _release(project, script: str, *, blocked: bool) -> subprocess.CompletedProcess:
    """A release job's script on the fixture project at 0001, the deploy step a script that leaves a
    file behind; ``blocked``: 3,000 items over a 1,000-row threshold, so the gate blocks 0002."""
    project.migrate("0001")
    if blocked:
        project.config("[tool.migration_guard]\nthreshold_rows = 1000\n")
        project.fill_items(3000)
    deploy = project.root / "deploy.sh"
    deploy.write_text("#!/bin/sh\ntouch deployed\n")
    deploy.chmod(0o755)
    return _shell(project, script, {"DATABASE_URL": "unused-by-the-fixture-settings"})


def _github_release_script() -> str:
    job = yaml.safe_load(GITHUB_WORKFLOW.read_text())["jobs"]["release"]
    assert job["if"] == "github.event_name == 'push'" and job["concurrency"]
    upload = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert "cancelled()" in upload["if"] and upload["with"]["path"] == "safe-migrate.json"
    runs = [s["run"] for s in job["steps"] if "run" in s and not s["run"].startswith("pip install")]
    assert "safe_migrate" in runs[0] and runs[-1] == "./deploy.sh"  # the gate and the apply before the deploy
    return "\n".join(runs)


def _gitlab_release_script() -> str:
    job = yaml.safe_load(GITLAB_CI.read_text())["release"]
    assert job["artifacts"]["when"] == "always" and job["artifacts"]["paths"] == ["safe-migrate.json"]
    assert job["resource_group"]
    lines = [line for line in job["script"] if not line.startswith("pip install")]
    assert "safe_migrate" in lines[0] and lines[-1] == "./deploy.sh"
    return "\n".join(lines)


@pytest.mark.parametrize("script", [_github_release_script, _gitlab_release_script], ids=["github", "gitlab"])
def test_release_job_applies_the_migrations_then_deploys(project, script):
    run = _release(project, script(), blocked=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (project.root / "deployed").exists()
    assert "deadlock_timeout" not in run.stderr  # 2s is longer: an autovacuum in the way gets cancelled
    log = json.loads((project.root / "safe-migrate.json").read_text())
    assert log["status"] == "applied" and [m["status"] for m in log["migrations"]] == ["applied"] * 3
    assert project.sql("SELECT count(*) FROM django_migrations WHERE app = 'inventory'") == [(4,)]


@pytest.mark.parametrize("script", [_github_release_script, _gitlab_release_script], ids=["github", "gitlab"])
def test_release_job_stops_before_the_deploy_when_the_gate_blocks(project, script):
    run = _release(project, script(), blocked=True)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "inventory.0002_item_created_idx  BLOCKED" in run.stdout
    assert not (project.root / "deployed").exists()
    assert json.loads((project.root / "safe-migrate.json").read_text())["status"] == "blocked"
    assert project.sql("SELECT count(*) FROM django_migrations WHERE app = 'inventory'") == [(1,)]


def _hook() -> dict:
    (hook,) = yaml.safe_load(PRE_COMMIT_HOOKS.read_text())
    return hook


def _pre_commit(project, hook: dict, staged: list[str]):
    """What pre-commit runs: entry, args, then the staged files its patterns select."""
    chosen = [f for f in staged if re.search(hook["files"], f) and not re.search(hook.get("exclude", "^$"), f)]
    command = shlex.split(hook["entry"]) + list(hook.get("args", [])) + chosen
    assert command[0] == "python"
    return chosen, _shell(project, shlex.join(command), {})


def test_pre_commit_hook_lints_the_staged_migrations(project):
    hook = _hook()
    assert hook["id"] == "migration-guard" and hook["language"] == "system"
    project.add_migration("0005_item_quantity_big", QUANTITY_BIGINT)
    project.migrate("0005")  # the developer already applied it: it is linted all the same
    staged = [NEW_MIGRATION, "inventory/migrations/__init__.py", "inventory/models.py", "README.md"]
    chosen, run = _pre_commit(project, hook, staged)
    assert chosen == [NEW_MIGRATION]
    assert run.returncode == 1, run.stdout + run.stderr
    assert "inventory.0005_item_quantity_big  BLOCKED" in run.stdout
    assert "MG007 alter-column-type-rewriting (error)" in run.stdout
    assert "0001_initial" not in run.stdout and "0004_item_warehouse_note" not in run.stdout


def test_pre_commit_hook_with_options_before_files(project):
    """docs/ci-integrations.md's pattern for options: args: [--stats, prod-stats.json, --files]."""
    project.migrate("0004")
    dump = project.cli("stats", "dump", "--dsn", project.dsn, "--output", "prod-stats.json")
    assert dump.code == 0, dump.err
    project.add_migration("0005_item_colour", NULLABLE_COLUMN)
    hook = {**_hook(), "args": ["--stats", "prod-stats.json", "--files"]}
    _, run = _pre_commit(project, hook, ["inventory/migrations/0005_item_colour.py"])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "inventory.0005_item_colour  OK" in run.stdout
    assert "sizes: snapshot prod-stats.json" in run.stdout


def test_files_must_be_migrations_and_stand_alone(project):
    not_a_migration = project.lint("--files", "inventory/models.py")
    assert not_a_migration.code == 2
    assert "inventory/models.py: not a migration Django loads" in not_a_migration.err
    combined = project.lint("--since", "main", "--files", "inventory/migrations/0002_item_created_idx.py")
    assert combined.code == 2 and "--files names the migrations itself" in combined.err


def test_files_are_matched_by_the_file_they_resolve_to(project):
    """A migration named through a linked folder, and one whose own file is a link under another name."""
    (project.root / "linked").symlink_to(project.root / "inventory" / "migrations")
    (project.root / "elsewhere").mkdir()
    (project.root / "elsewhere" / "real_0005.py").write_text(NULLABLE_COLUMN)
    (project.root / "inventory" / "migrations" / "0005_item_colour.py").symlink_to(
        project.root / "elsewhere" / "real_0005.py")
    run = project.lint("--files", "linked/0002_item_created_idx.py", "elsewhere/real_0005.py", "--format", "json")
    assert run.code in (0, 1), run.err
    assert [m["migration"] for m in run.json()["migrations"]] == ["inventory.0002_item_created_idx",
                                                                  "inventory.0005_item_colour"]


ACTION = REPO / "action.yml"


def _expressions(text: str, values: dict[str, str]) -> str:
    """``${{ ... }}`` replaced as GitHub would for this run; an expression the test does not know fails it."""
    def value(match):
        expression = match.group(1).strip()
        assert expression in values, f"the test does not know ${{{{ {expression} }}}}"
        return values[expression]
    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


_TOKEN = re.compile(r"\s*(?:('[^']*')|(&&|\|\||==|!=|!|\(|\))|(cancelled\(\))|([A-Za-z_][\w.-]*))")


def _condition(step: dict, values: dict[str, str]) -> bool:
    """A step's ``if:`` as GitHub evaluates it for this run (strings, ==, !=, !, &&, ||, brackets,
    ``cancelled()``; a context value the test does not give is '', as an unset step output is)."""
    text = step.get("if", "success()").strip()
    text = text[3:-2] if text.startswith("${{") else text
    python, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        assert match, f"the test cannot evaluate {text[position:]!r}"
        literal, operator, cancelled, name = match.groups()
        if literal:
            python.append(repr(literal[1:-1]))
        elif operator:
            python.append({"&&": "and", "||": "or", "!": "not"}.get(operator, operator))
        elif cancelled:
            python.append("False")
        else:
            python.append(repr(values.get(name, "")))
        position = match.end()
    return bool(eval(" ".join(python)))  # noqa: S307 - built from the tokens above only


def _run_action_step(project, step: dict, values: dict, github_env: Path, tmp_path: Path) -> tuple[dict, object]:
    """A composite step's ``run`` with its ``env``, as the runner runs it: bash, the job's
    GITHUB_ENV, a GITHUB_OUTPUT file of its own; returns its outputs and the process."""
    output = tmp_path / f"output-{step.get('id', 'step')}"
    output.write_text("")
    env = {"MIGRATION_GUARD_BASE_CACHE": "1"}  # a runner's environment: the cache is on (the suite turns it off)
    env.update(line.split("=", 1) for line in github_env.read_text().splitlines() if line)
    env.update({name: _expressions(str(v), values) for name, v in step.get("env", {}).items()})
    env.update(GITHUB_OUTPUT=str(output), GITHUB_ENV=str(github_env), GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    assert step["shell"] == "bash"
    run = _shell(project, _expressions(step["run"], values), env)
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if line)
    return outputs, run


def test_github_action_runs_its_own_command_lines_and_keeps_the_base(project, tmp_path):
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    steps = {step.get("id") or step["name"]: step for step in action["runs"]["steps"]}
    uses = [step["uses"] for step in action["runs"]["steps"] if "uses" in step]
    # Nothing is installed: the only actions are the cache's restore and save, and the SARIF upload.
    assert [u.split("@")[0] for u in uses] == ["actions/cache/restore", "actions/cache/save",
                                               "github/codeql-action/upload-sarif"]
    assert not any("pip " in step.get("run", "") for step in action["runs"]["steps"])
    _pull_request(project)
    defaults = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    values = {f"inputs.{name}": value for name, value in {**defaults, "stats": "prod-stats.json"}.items()}
    values.update({"inputs.since || format('origin/{0}', github.base_ref)": "main", "runner.temp": str(tmp_path),
                   "runner.os": "Linux", "inputs.cache == 'true'": "true"})
    github_env = tmp_path / "github-env"
    keys = []
    for push in (1, 2):
        github_env.write_text("")
        key_outputs, run = _run_action_step(project, steps["key"], values, github_env, tmp_path)
        assert run.returncode == 0, run.stderr
        keys.append(key_outputs["key"])
        values.update({"steps.key.outputs.since": key_outputs["since"], "steps.key.outputs.key": key_outputs["key"]})
        cache_step = steps["restore"]
        cache_dir = _expressions(cache_step["with"]["path"], values)
        assert f"MIGRATION_GUARD_CACHE_DIR={cache_dir}" in github_env.read_text()
        assert _expressions(cache_step["with"]["key"], values) == f"migration-guard-base-Linux-{keys[-1]}"
        # The first push finds no entry with its key; the second is the entry the first one saved.
        values["steps.restore.outputs.cache-hit"] = "false" if push == 1 else "true"
        lint_outputs, run = _run_action_step(project, steps["lint"], values, github_env, tmp_path)
        assert lint_outputs["exit-code"] == "1", run.stdout + run.stderr
        (annotation,) = parse_annotations(run.stdout)
        assert annotation["title"] == "MG007 alter-column-type-rewriting"
        log = json.loads((project.root / "migration-guard.sarif").read_text())
        assert sarif_errors(log) == [] and len(log["runs"][0]["results"]) == 1
        summary = (tmp_path / "summary.md").read_text()
        assert summary.startswith("## migration_guard: ⛔ BLOCKED")
        if push == 1:
            assert f"base cache: kept the base (4 migrations) as template migration_guard_base_{keys[0]}" in summary
        else:  # the second push starts from the template the first one kept, named by the printed key
            assert f"base cache: the scratch database is a copy of template migration_guard_base_{keys[0]} " \
                   "(4 migrations)" in summary
        values["steps.lint.outputs.exit-code"] = lint_outputs["exit-code"]
        # The blocked run saves the folder it used (actions/cache's own post step would not: the job
        # fails), under the key it restored with, before the verdict fails the job; only when it is new.
        save = steps["Save the base cache"]
        order = list(steps)
        assert order.index("lint") < order.index("Save the base cache") < order.index("The gate's verdict")
        assert {k: _expressions(v, values) for k, v in save["with"].items()} == \
            {k: _expressions(v, values) for k, v in cache_step["with"].items() if k in ("path", "key")}
        assert _condition(save, values) is (push == 1)
        assert _condition(save, {**values, "steps.restore.outputs.cache-hit": ""}) is True  # a miss may leave it unset
        assert _condition(save, {**values, "steps.restore.outputs.cache-hit": "false",
                                 "steps.lint.outputs.exit-code": "2"}) is False  # the gate did not run
        assert _condition(save, {**values, "steps.restore.outputs.cache-hit": "false",
                                 "steps.key.outputs.key": "none"}) is False
        assert _condition(save, {**values, "inputs.cache": "false"}) is False
        upload = next(s for s in action["runs"]["steps"] if s.get("uses", "").startswith("github/codeql"))
        assert _condition(upload, values) is True
        assert _expressions(upload["with"]["sarif_file"], values) == "./migration-guard.sarif"
        _, verdict = _run_action_step(project, steps["The gate's verdict"], values, github_env, tmp_path)
        assert verdict.returncode == 1
        # The cache folder holds the embedded server's data folder with the base as a template named by the key.
        (index,) = Path(cache_dir).glob("embedded-*/templates.json")
        assert [t["name"] for t in json.loads(index.read_text())["templates"]] == [f"migration_guard_base_{keys[0]}"]
    assert keys[0] == keys[1] and re.fullmatch(r"[0-9a-f]{40}", keys[0])
    # A project that does not load has no key (so nothing is saved); the lint step reports the error.
    github_env.write_text("")
    broken, run = _run_action_step(project, steps["key"], {**values, "inputs.manage-py": "missing.py"}, github_env,
                                   tmp_path)
    assert run.returncode == 0 and broken["key"] == "none", run.stderr
