"""The status branch in real git: a bare remote, two clones as two reconciler hosts.

Everything is asserted by reading the status branch back from the remote with `git show` and
`git ls-tree`, never by inspecting what the writer thinks it did.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tenacity

from reconciler.adapters.status_repo import PushRetry, StatusRepo, StatusWriteError
from reconciler.adapters.store.files import ResultStore
from reconciler.app.status import StatusWriteResult, spec_revision, write_status
from reconciler.core.identity import ResultIdentities, result_preimage
from reconciler.core.planner import plan
from reconciler.model.desired import DesiredState, StoreSnapshot
from reconciler.model.errors import ExitCode, InfrastructureError, UserError
from reconciler.model.results import Attempt, ResultRecord, Status
from reconciler.model.specs import Repo, WorkerHost, WorkerPool
from reconciler.model.specset import SpecSet

from .planning_fixtures import baseline, branch, build_desired, commit, spec_set

STATUS = "reconciler/status"
ENV = {
    "GIT_AUTHOR_NAME": "dev",
    "GIT_AUTHOR_EMAIL": "dev@example.org",
    "GIT_COMMITTER_NAME": "dev",
    "GIT_COMMITTER_EMAIL": "dev@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
    "GIT_OPTIONAL_LOCKS": "0",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, env=ENV, text=True
    )
    return done.stdout.strip()


def rev(repo: Path, ref: str) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", ref],
        capture_output=True,
        env=ENV,
        text=True,
    )
    return done.stdout.strip() or None


def status_tree(remote: Path) -> list[str]:
    return git(remote, "ls-tree", "-r", "--name-only", STATUS).splitlines()


def show(remote: Path, path: str) -> str:
    return git(remote, "show", f"{STATUS}:{path}")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare spec repo remote whose `main` holds one spec file."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(seed))
    (seed / "specs").mkdir()
    (seed / "specs/farm.yaml").write_text("kind: Repo\nname: r\nurl: /src\n")
    git(seed, "add", ".")
    git(seed, "commit", "--quiet", "-m", "specs")
    git(seed, "push", "--quiet", str(bare), "main")
    return bare


def clone(remote: Path, path: Path) -> Path:
    git(remote.parent, "clone", "--quiet", str(remote), str(path))
    return path


def tiny_retry(attempts: int, sleeps: list[float]) -> PushRetry:
    return PushRetry(
        attempts=attempts,
        wait=tenacity.wait_exponential(multiplier=0.01, max=1),
        sleep=sleeps.append,
    )


def writer(repo: Path, **kwargs: Any) -> StatusRepo:
    """A status writer whose retries (after a rejected push, say) wait milliseconds."""
    kwargs.setdefault("retry", tiny_retry(5, []))
    return StatusRepo(repo, **kwargs)


def files(version: str, *branches: str) -> dict[str, bytes]:
    content = {"status.json": f'{{"v": "{version}"}}\n'.encode()}
    for name in branches:
        content[f"branches/{name}.json"] = f'{{"branch": "{name}", "v": "{version}"}}\n'.encode()
    return content


# The adapter: layout, races, no-op passes, safety.


def test_two_hosts_keep_each_others_directories_even_from_stale_local_tips(
    remote: Path, tmp_path: Path
) -> None:
    a, b = clone(remote, tmp_path / "a"), clone(remote, tmp_path / "b")

    writer(a).write(host_id="farm-a", files=files("1", "main"), message="a1")
    # B has no local status branch yet: its first push is rejected and it rebuilds on A's tip.
    written = writer(b).write(host_id="farm-b", files=files("1", "next"), message="b1")
    # A's local tip is now stale (B pushed since): the same happens the other way round.
    writer(a).write(host_id="farm-a", files=files("2", "main", "fs%2Fnext"), message="a2")

    assert written.pushed and written.changed
    assert status_tree(remote) == [
        "farm-a/branches/fs%2Fnext.json",
        "farm-a/branches/main.json",
        "farm-a/status.json",
        "farm-b/branches/next.json",
        "farm-b/status.json",
    ]
    assert show(remote, "farm-a/status.json") == '{"v": "2"}'
    assert show(remote, "farm-b/branches/next.json") == '{"branch": "next", "v": "1"}'
    assert git(remote, "log", "--format=%s|%an <%ae>", STATUS).splitlines() == [
        "a2|kernel-reconciler <reconciler@farm-a>",
        "b1|kernel-reconciler <reconciler@farm-b>",
        "a1|kernel-reconciler <reconciler@farm-a>",
    ]


def test_a_push_race_is_resolved_by_fetching_and_reapplying_our_directory(
    remote: Path, tmp_path: Path
) -> None:
    a, b = clone(remote, tmp_path / "a"), clone(remote, tmp_path / "b")
    writer(a).write(host_id="farm-a", files=files("1"), message="a1")
    writer(b).write(host_id="farm-b", files=files("1"), message="b1")
    writer(a).write(host_id="farm-a", files=files("2"), message="a2")
    git(b, "fetch", "--quiet", "origin", f"+{STATUS}:refs/remotes/origin/{STATUS}")
    git(b, "update-ref", f"refs/heads/{STATUS}", f"refs/remotes/origin/{STATUS}")
    # B is now up to date; A pushes between B's commit and B's push.
    pushed: list[str] = []

    def a_pushes_first(commit: str) -> None:
        pushed.append(commit)
        if len(pushed) == 1:
            writer(a).write(host_id="farm-a", files=files("3"), message="a3")

    sleeps: list[float] = []
    written = StatusRepo(b, before_push=a_pushes_first, retry=tiny_retry(5, sleeps)).write(
        host_id="farm-b", files=files("2"), message="b2"
    )

    assert len(pushed) == 2 and sleeps == [0.01]
    assert written == type(written)(commit=pushed[1], pushed=True, changed=True)
    assert rev(remote, STATUS) == pushed[1]
    assert git(remote, "log", "--format=%s", STATUS).splitlines() == ["b2", "a3", "a2", "b1", "a1"]
    assert show(remote, "farm-a/status.json") == '{"v": "3"}'
    assert show(remote, "farm-b/status.json") == '{"v": "2"}'


def test_an_unchanged_pass_makes_no_commit_and_no_push(remote: Path, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    first = writer(a).write(host_id="farm-a", files=files("1", "main"), message="a1")
    before = (rev(a, STATUS), rev(remote, STATUS))

    again = writer(a).write(host_id="farm-a", files=files("1", "main"), message="a1 again")

    assert first.commit is not None and first.pushed
    assert again == type(again)(commit=None, pushed=False, changed=False)
    assert (rev(a, STATUS), rev(remote, STATUS)) == before == (first.commit, first.commit)


def test_a_branch_gone_from_the_specs_loses_its_files_and_only_ours(
    remote: Path, tmp_path: Path
) -> None:
    a, b = clone(remote, tmp_path / "a"), clone(remote, tmp_path / "b")
    writer(b).write(host_id="farm-b", files=files("1", "old"), message="b1")
    writer(a).write(host_id="farm-a", files=files("1", "old", "main"), message="a1")

    writer(a).write(host_id="farm-a", files=files("1", "main"), message="a2")

    assert status_tree(remote) == [
        "farm-a/branches/main.json",
        "farm-a/status.json",
        "farm-b/branches/old.json",
        "farm-b/status.json",
    ]


def checkout_state(repo: Path) -> dict[str, Any]:
    index = (repo / ".git/index").read_bytes()
    return {
        "head": git(repo, "symbolic-ref", "HEAD"),
        "head_commit": rev(repo, "HEAD"),
        "status": git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        "index": hashlib.sha256(index).hexdigest(),
        "user_refs": git(
            repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/main"
        ),
        "files": sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if ".git" not in p.parts),
    }


def test_the_users_checkout_index_and_branches_are_untouched(remote: Path, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    (a / "specs/farm.yaml").write_text("kind: Repo\nname: r\nurl: /elsewhere\n")
    (a / "specs/new.yaml").write_text("kind: Repo\nname: n\nurl: /n\n")
    git(a, "add", "specs/new.yaml")
    (a / "scratch.txt").write_text("untracked\n")
    before = checkout_state(a)

    writer(a).write(host_id="farm-a", files=files("1", "main"), message="a1")
    writer(a).write(host_id="farm-a", files=files("2", "main"), message="a2")

    assert checkout_state(a) == before
    assert rev(a, STATUS) == rev(remote, STATUS)


@pytest.mark.parametrize(
    "branch",
    ["main", "reconciler", "reconciler/", "refs/heads/reconciler/status", "reconciler/../main"],
)
def test_only_branches_under_reconciler_are_written(
    remote: Path, tmp_path: Path, branch: str
) -> None:
    a = clone(remote, tmp_path / "a")
    main = rev(remote, "main")

    with pytest.raises(UserError, match="not under 'reconciler/'"):
        writer(a, branch=branch).write(host_id="farm-a", files=files("1"), message="x")

    assert rev(remote, "main") == rev(a, "main") == main
    assert rev(remote, STATUS) is None


def test_a_checked_out_status_branch_is_refused(remote: Path, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    git(a, "worktree", "add", "--quiet", "-b", STATUS, str(tmp_path / "wt"))

    with pytest.raises(UserError, match="is checked out"):
        writer(a).write(host_id="farm-a", files=files("1"), message="x")


def test_a_bad_host_id_is_refused(remote: Path, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    for host_id in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(UserError, match="cannot name a directory"):
            writer(a).write(host_id=host_id, files=files("1"), message="x")


def test_without_a_remote_only_the_local_branch_is_written(tmp_path: Path) -> None:
    repo = tmp_path / "local"
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(repo))

    written = writer(repo).write(host_id="farm-a", files=files("1"), message="a1")

    assert written.pushed is False and written.changed
    assert rev(repo, STATUS) == written.commit
    assert git(repo, "show", f"{STATUS}:farm-a/status.json") == '{"v": "1"}'


def test_an_unreachable_remote_is_an_infrastructure_error_after_bounded_retries(
    remote: Path, tmp_path: Path
) -> None:
    a = clone(remote, tmp_path / "a")
    git(a, "remote", "set-url", "origin", "https://user:token@127.0.0.1:9/specs.git")
    sleeps: list[float] = []
    retry = tiny_retry(4, sleeps)

    with pytest.raises(StatusWriteError) as raised:
        StatusRepo(a, retry=retry).write(host_id="farm-a", files=files("1"), message="a1")

    assert retry.waits() == [0.01, 0.02, 0.04]
    assert sleeps == retry.waits()
    error = raised.value
    assert isinstance(error, InfrastructureError) and error.exit_code is ExitCode.INFRASTRUCTURE
    assert "after 4 attempts" in str(error) and "token" not in str(error)
    assert "Failed to connect to 127.0.0.1 port 9" in str(error)
    # The commit is kept locally; once the remote is back, an unchanged pass still pushes it.
    local = rev(a, STATUS)
    git(a, "remote", "set-url", "origin", str(remote))
    written = StatusRepo(a, retry=retry).write(host_id="farm-a", files=files("1"), message="a1")
    assert written == type(written)(commit=None, pushed=True, changed=False)
    assert rev(remote, STATUS) == local


def test_the_default_backoff_grows_exponentially() -> None:
    assert PushRetry().waits() == [1.0, 2.0, 4.0, 8.0]


# The app: documents from specs and the store, written by `write_status`.


def farm_inputs(*, suspend: bool = False) -> tuple[SpecSet, DesiredState]:
    main = branch("main", suspend=suspend).model_copy(update={"baseline": "v1"})
    specs = spec_set(branches=[main, branch("next")], baselines=[baseline("v1")])
    desired = build_desired(
        specs,
        branch_commits={"main": [commit(2), commit(1)], "next": [commit(3)]},
        baseline_commits={"v1": commit(0)},
    )
    return specs, desired


def put_verdicts(
    store: ResultStore, desired: DesiredState, *, which: Callable[[str], bool], status: Status
) -> None:
    for slot in desired.slots:
        if not which(str(slot.origin)):
            continue
        for unit in slot.units:
            identities = ResultIdentities(unit.preimage)
            for subtest in unit.subtests:
                store.put_result(
                    ResultRecord(
                        id=identities.of(subtest),
                        unit=unit.unit,
                        build=slot.build.id,
                        test=unit.test,
                        subtest=subtest,
                        preimage=result_preimage(unit.preimage, subtest),
                        status=status,
                        attempts=[Attempt(status=status)],
                    )
                )


def write(
    specs: SpecSet, desired: DesiredState, store: ResultStore, repo: Path, **kwargs: Any
) -> StatusWriteResult:
    return write_status(
        specs=specs,
        desired=desired,
        plan=plan(desired, StoreSnapshot()),
        store=store,
        spec_repo=repo,
        host_id=kwargs.pop("host_id", "farm-a"),
        observed_revision=spec_revision(repo / "specs"),
        retry=tiny_retry(5, []),
        **kwargs,
    )


def test_write_status_publishes_documents_per_host_and_an_unchanged_pass_is_a_no_op(
    remote: Path, tmp_path: Path
) -> None:
    a, b = clone(remote, tmp_path / "a"), clone(remote, tmp_path / "b")
    specs, desired = farm_inputs()
    with ResultStore(tmp_path / "store") as store:
        put_verdicts(store, desired, which=lambda origin: origin != "next", status=Status.PASS)
        first = write(specs, desired, store, a)
        write(specs, desired, store, b, host_id="farm-b")
        tip = rev(remote, STATUS)
        again = write(specs, desired, store, a)

    assert first.changed and first.pushed and again == StatusWriteResult(None, False, False)
    assert rev(remote, STATUS) == tip
    for host in ("farm-a", "farm-b"):
        assert [p for p in status_tree(remote) if p.startswith(host)] == [
            f"{host}/branches/main.json",
            f"{host}/branches/main.md",
            f"{host}/branches/next.json",
            f"{host}/branches/next.md",
            f"{host}/status.json",
        ]
    main = json.loads(show(remote, "farm-a/branches/main.json"))
    assert main["observed_revision"] == rev(remote, "main")
    assert [c["status"] for c in main["conditions"]] == ["True", "False", "False"]
    assert [c["commit"] for c in main["commits"]] == [commit(2).commit, commit(1).commit]
    assert main["commits"][0]["profiles"]["default"]["regressions"] == []
    host = json.loads(show(remote, "farm-b/status.json"))
    assert host["conditions"]["Ready"] == {"True": 1, "False": 1, "Unknown": 0}
    short = rev(remote, "main")
    assert short is not None
    assert git(remote, "log", "-1", "--format=%s", STATUS) == f"status: farm-b at {short[:12]}"


def test_a_suspended_branch_is_written_as_suspended_never_ready(
    remote: Path, tmp_path: Path
) -> None:
    a = clone(remote, tmp_path / "a")
    specs, desired = farm_inputs(suspend=True)
    with ResultStore(tmp_path / "store") as store:
        put_verdicts(store, desired, which=lambda origin: True, status=Status.PASS)
        write(specs, desired, store, a)

    main = json.loads(show(remote, "farm-a/branches/main.json"))
    assert main["suspended"] is True and main["commits"] == []
    assert [(c["type"], c["status"], c["reason"]) for c in main["conditions"]] == [
        ("Ready", "False", "Suspended"),
        ("Reconciling", "False", "Suspended"),
        ("Stalled", "False", "Suspended"),
    ]
    assert json.loads(show(remote, "farm-a/status.json"))["branches"]["main"] == {
        "ready": "False",
        "reason": "Suspended",
    }
    assert "| Ready | False | Suspended |" in show(remote, "farm-a/branches/main.md")


def test_no_credential_or_key_path_reaches_the_status_branch(remote: Path, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    specs, desired = farm_inputs()
    url, key = "https://user:token@host/x.git", "/etc/keys/id"
    specs = SpecSet(
        spec_dir=specs.spec_dir,
        repos={"r": Repo(kind="Repo", name="r", url=url)},
        branches=specs.branches,
        baselines=specs.baselines,
        profiles=specs.profiles,
        harnesses=specs.harnesses,
        test_groups=specs.test_groups,
        worker_pools={
            "farm": WorkerPool(
                kind="WorkerPool",
                name="farm",
                hosts=[WorkerHost(host="w1.example.org", identity_file=key)],
            )
        },
    )
    with ResultStore(tmp_path / "store") as store:
        write(specs, desired, store, a, stalled={"next": f"cannot fetch {url}: refused"})

    paths = status_tree(remote)
    assert "farm-a/branches/next.md" in paths
    texts = [show(remote, path) for path in paths]
    texts.append(git(remote, "log", "--format=%B%an%ae", STATUS))
    for text in texts:
        assert url not in text and key not in text and "token" not in text


def test_spec_revision_is_head_and_says_dirty_only_for_changes_under_the_spec_dir(
    remote: Path, tmp_path: Path
) -> None:
    a = clone(remote, tmp_path / "a")
    head = rev(a, "HEAD")

    assert spec_revision(a / "specs") == head
    (a / "notes.txt").write_text("outside the spec dir\n")
    assert spec_revision(a / "specs") == head
    (a / "specs/extra.yaml").write_text("kind: Repo\n")
    assert spec_revision(a / "specs") == f"{head}-dirty"
    with pytest.raises(UserError, match="cannot read the spec revision"):
        spec_revision(tmp_path)


def test_write_status_refuses_a_user_branch(remote: Path, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    specs, desired = farm_inputs()
    main = rev(a, "main")
    with ResultStore(tmp_path / "store") as store, pytest.raises(UserError):
        write(specs, desired, store, a, branch="main")
    assert rev(a, "main") == rev(remote, "main") == main
    assert rev(remote, STATUS) is None
