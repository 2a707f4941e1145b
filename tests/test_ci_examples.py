"""The CI examples for spec repos: valid YAML, the documented plan command, no secrets in them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

CI = Path(__file__).resolve().parent.parent / "examples/ci"
EXAMPLES = ("github-actions.yml", "gitlab-ci.yml")
PLAN_COMMAND = re.compile(
    r"reconciler plan --base (?P<base>\S+) --head HEAD --format markdown > plan\.md"
)
# Shapes of real credentials: GitHub and GitLab tokens, private keys, a literal token header.
SECRET_SHAPES = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_|glpat-|-----BEGIN [A-Z ]*PRIVATE KEY"
    r"|PRIVATE-TOKEN: [^$\s\"]"
)


def load(name: str) -> Any:
    return YAML(typ="safe").load((CI / name).read_text())


def commands(node: Any) -> list[str]:
    """Every shell line of a workflow or pipeline: `run:` values and script lists."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "run" and isinstance(value, str):
                found.append(value)
            elif key in ("script", "before_script") and isinstance(value, list):
                found += [line for line in value if isinstance(line, str)]
            else:
                found += commands(value)
    elif isinstance(node, list):
        for item in node:
            found += commands(item)
    return found


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_parses_and_runs_the_plan_command(name: str) -> None:
    plans = [m for line in commands(load(name)) if (m := PLAN_COMMAND.search(line))]
    assert len(plans) == 1, plans
    assert plans[0]["base"] in (
        '"origin/$BASE_REF"',
        '"origin/$CI_MERGE_REQUEST_TARGET_BRANCH_NAME"',
    )


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_holds_no_secret(name: str) -> None:
    assert not SECRET_SHAPES.search((CI / name).read_text())


def test_github_token_may_only_comment() -> None:
    workflow = load("github-actions.yml")
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    # ruamel's safe loader reads the bare key `on` as YAML 1.2: the string "on".
    assert set(workflow["on"]) == {"pull_request"}
    (checkout,) = [s for s in workflow["jobs"]["plan"]["steps"] if "checkout" in s.get("uses", "")]
    assert checkout["with"]["fetch-depth"] == 0


def test_gitlab_job_runs_on_merge_requests_with_a_token_variable() -> None:
    job = load("gitlab-ci.yml")["reconciler-plan"]
    assert job["rules"][0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    assert job["variables"]["GIT_DEPTH"] == "0"
    posting = "\n".join(job["script"])
    assert '"PRIVATE-TOKEN: $RECONCILER_PLAN_TOKEN"' in posting
