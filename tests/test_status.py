"""The pure status documents: exact values for each condition rule, rendering and secrets."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from reconciler.core.planner import plan
from reconciler.core.status import (
    BranchStatus,
    ConditionReason,
    ConditionStatus,
    ConditionType,
    blocked_builds,
    branch_statuses,
    host_status,
)
from reconciler.core.status_render import (
    branch_file_stem,
    markdown_text,
    render_json,
    render_markdown,
    status_files,
)
from reconciler.model.desired import (
    BlockedWork,
    BlockReason,
    DesiredState,
    Origin,
    OriginKind,
    StoreSnapshot,
)
from reconciler.model.results import BuildStatus, Status
from reconciler.model.specs import Profile, Repo, Runtime, WorkerHost, WorkerPool
from reconciler.model.specset import SpecSet

from .planning_fixtures import baseline, branch, build_desired, commit, spec_set

P, F, T = Status.PASS, Status.FAIL, Status.TIMEOUT
ALL = (("t/a", "a1"), ("t/a", "a2"), ("t/a", "a3"), ("t/b", "b1"))
REVISION = "ab" * 20


def farm(
    *, profiles: tuple[str, ...] = ("default",), suspend: bool = False
) -> tuple[SpecSet, DesiredState]:
    main = branch("main", profiles=profiles, suspend=suspend).model_copy(update={"baseline": "v1"})
    specs = spec_set(
        branches=[main], baselines=[baseline("v1", profiles=("default",))], profiles=profiles
    )
    desired = build_desired(
        specs,
        branch_commits={"main": [commit(2), commit(1)]},
        baseline_commits={"v1": commit(0)},
    )
    return specs, desired


def stored(
    desired: DesiredState,
    *,
    origin: str,
    commit_id: str,
    profile: str = "default",
    verdicts: Mapping[tuple[str, str], Status],
    into: dict[str, dict[str, Status]] | None = None,
) -> dict[str, dict[str, Status]]:
    """Unit statuses holding `verdicts` for one slot (merged into `into`)."""
    statuses = into if into is not None else {}
    for slot in desired.slots:
        if (slot.origin.name, slot.commit.commit, slot.profile) == (origin, commit_id, profile):
            for unit in slot.units:
                for subtest in unit.subtests:
                    if (unit.test, subtest) in verdicts:
                        statuses.setdefault(unit.unit, {})[subtest] = verdicts[unit.test, subtest]
    return statuses


def build_of(desired: DesiredState, commit_id: str, profile: str = "default") -> str:
    return next(
        s.build.id[:12]
        for s in desired.slots
        if s.origin.kind is OriginKind.BRANCH
        and (s.commit.commit, s.profile) == (commit_id, profile)
    )


def statuses_of(
    specs: SpecSet,
    desired: DesiredState,
    unit_statuses: Mapping[str, Mapping[str, Status]],
    *,
    blocked: frozenset[str] = frozenset(),
    stalled: Mapping[str, str] | None = None,
) -> tuple[BranchStatus, ...]:
    return branch_statuses(
        specs=specs,
        desired=desired,
        unit_statuses=unit_statuses,
        blocked=blocked,
        stalled=stalled or {},
        host_id="farm-a",
        observed_revision=REVISION,
    )


def conditions(status: BranchStatus) -> list[tuple[str, str, str]]:
    return [(c.type.value, c.status.value, c.reason.value) for c in status.conditions]


def counts(**nonzero: int) -> dict[str, int]:
    return {k: nonzero.get(k, 0) for k in ("pass", "fail", "skip", "timeout", "error")} | {
        "pending": nonzero.get("pending", 0),
        "blocked": nonzero.get("blocked", 0),
    }


C1, C2, C0 = commit(1).commit, commit(2).commit, commit(0).commit


def test_a_fully_verdicted_branch_is_ready_and_lists_new_failures_against_its_baseline() -> None:
    specs, desired = farm()
    # The baseline fails t/b:b1 too: failing on the commit is not a new failure.
    unit_statuses = stored(
        desired, origin="v1", commit_id=C0, verdicts={**dict.fromkeys(ALL, P), ALL[3]: F}
    )
    stored(
        desired,
        origin="main",
        commit_id=C2,
        verdicts={ALL[0]: P, ALL[1]: F, ALL[2]: T, ALL[3]: F},
        into=unit_statuses,
    )
    stored(desired, origin="main", commit_id=C1, verdicts=dict.fromkeys(ALL, P), into=unit_statuses)

    [status] = statuses_of(specs, desired, unit_statuses)

    message = "8 results: 5 pass, 2 fail, 1 timeout"
    assert status.document() == {
        "kind": "BranchStatus",
        "schema_version": 1,
        "host": "farm-a",
        "branch": "main",
        "repo": "r",
        "ref": "main",
        "observed_revision": REVISION,
        "suspended": False,
        "baseline": {"name": "v1", "commit": C0},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Succeeded", "message": message},
            {"type": "Reconciling", "status": "False", "reason": "Succeeded", "message": message},
            {"type": "Stalled", "status": "False", "reason": "Succeeded", "message": message},
        ],
        "counts": counts(**{"pass": 5, "fail": 2, "timeout": 1}),
        "commits": [
            {
                "commit": C2,
                "subject": "commit 2",
                "tree": commit(2).tree,
                "profiles": {
                    "default": {
                        "build": build_of(desired, C2),
                        "counts": counts(**{"pass": 1, "fail": 2, "timeout": 1}),
                        "regressions": [
                            {"test": "t/a", "subtest": "a2", "status": "fail"},
                            {"test": "t/a", "subtest": "a3", "status": "timeout"},
                        ],
                    }
                },
            },
            {
                "commit": C1,
                "subject": "commit 1",
                "tree": commit(1).tree,
                "profiles": {
                    "default": {
                        "build": build_of(desired, C1),
                        "counts": counts(**{"pass": 4}),
                        "regressions": [],
                    }
                },
            },
        ],
        "blocked_tests": [],
    }


def test_pending_results_make_the_branch_reconciling_and_not_ready() -> None:
    specs, desired = farm()
    unit_statuses = stored(desired, origin="main", commit_id=C1, verdicts=dict.fromkeys(ALL, P))

    [status] = statuses_of(specs, desired, unit_statuses)

    assert conditions(status) == [
        ("Ready", "False", "Pending"),
        ("Reconciling", "True", "Progressing"),
        ("Stalled", "False", "Progressing"),
    ]
    assert status.condition(ConditionType.READY).message == (
        "4 of 8 results pending (8 results: 4 pass, 4 pending)"
    )
    assert status.counts == counts(**{"pass": 4, "pending": 4})


def test_a_failed_build_stalls_the_branch_once_nothing_else_can_run() -> None:
    specs, desired = farm()
    snapshot = StoreSnapshot(builds={next(s.build.id for s in desired.slots): BuildStatus.FAIL})
    blocked = blocked_builds(plan(desired, snapshot))
    failed = next(s for s in desired.slots if s.build.id in blocked)
    assert (failed.origin.name, failed.commit.commit) == ("main", C2)
    unit_statuses = stored(desired, origin="main", commit_id=C1, verdicts=dict.fromkeys(ALL, P))

    [status] = statuses_of(specs, desired, unit_statuses, blocked=blocked)

    assert conditions(status) == [
        ("Ready", "False", "BuildFailed"),
        ("Reconciling", "False", "BuildFailed"),
        ("Stalled", "True", "BuildFailed"),
    ]
    assert status.counts == counts(**{"pass": 4, "blocked": 4})
    # While other work of the branch can still run, it is progressing, not stalled.
    [progressing] = statuses_of(specs, desired, {}, blocked=blocked)
    assert conditions(progressing)[2] == ("Stalled", "False", "Progressing")


def test_infrastructure_errors_left_after_a_pass_stall_the_branch() -> None:
    specs, desired = farm()
    unit_statuses = stored(desired, origin="main", commit_id=C1, verdicts=dict.fromkeys(ALL, P))
    stored(
        desired,
        origin="main",
        commit_id=C2,
        verdicts={**dict.fromkeys(ALL, P), ALL[3]: Status.ERROR},
        into=unit_statuses,
    )

    [status] = statuses_of(specs, desired, unit_statuses)

    assert conditions(status) == [
        ("Ready", "False", "InfrastructureErrors"),
        ("Reconciling", "False", "InfrastructureErrors"),
        ("Stalled", "True", "InfrastructureErrors"),
    ]
    assert status.condition(ConditionType.STALLED).message == (
        "infrastructure errors; retried after a cool-down (8 results: 7 pass, 1 error)"
    )


def test_a_resolution_failure_is_stalled_and_its_message_loses_credentials() -> None:
    specs, desired = farm()
    why = "cannot fetch https://user:token@host/x.git: connection refused"

    [status] = statuses_of(specs, desired, {}, stalled={"main": why})

    assert conditions(status) == [
        ("Ready", "False", "ResolutionFailed"),
        ("Reconciling", "False", "ResolutionFailed"),
        ("Stalled", "True", "ResolutionFailed"),
    ]
    assert status.conditions[0].message == "cannot fetch https://***@host/x.git: connection refused"


def test_a_suspended_branch_is_never_ready_and_its_commits_are_not_evaluated() -> None:
    specs, desired = farm(suspend=True)
    assert desired.suspended == ("main",)
    everything_passed = stored(desired, origin="v1", commit_id=C0, verdicts=dict.fromkeys(ALL, P))

    for stalled in (None, {"main": "git failed"}):
        [status] = statuses_of(specs, desired, everything_passed, stalled=stalled)
        assert conditions(status) == [
            ("Ready", "False", "Suspended"),
            ("Reconciling", "False", "Suspended"),
            ("Stalled", "False", "Suspended"),
        ]
        assert (status.suspended, status.commits) == (True, ())
        assert status.counts == counts()


def test_a_branch_missing_from_the_desired_state_is_unknown() -> None:
    specs, _ = farm()

    [status] = statuses_of(specs, DesiredState(slots=()), {})

    assert conditions(status) == [
        ("Ready", "Unknown", "NotResolved"),
        ("Reconciling", "Unknown", "NotResolved"),
        ("Stalled", "Unknown", "NotResolved"),
    ]
    assert status.baseline is not None and status.baseline.commit is None


def test_regressions_are_per_profile_and_absent_where_the_baseline_is_unknown() -> None:
    specs, desired = farm(profiles=("default", "kasan"))
    failing = dict.fromkeys(ALL, F)
    unit_statuses: dict[str, dict[str, Status]] = {}
    for profile in ("default", "kasan"):
        for commit_id in (C1, C2):
            stored(
                desired,
                origin="main",
                commit_id=commit_id,
                profile=profile,
                verdicts=failing,
                into=unit_statuses,
            )

    # The baseline has no verdict yet: nothing is compared.
    [unknown] = statuses_of(specs, desired, unit_statuses)
    assert [p.regressions for c in unknown.commits for p in c.profiles] == [None] * 4

    # The baseline passed everything under `default` only (it does not test `kasan`).
    stored(desired, origin="v1", commit_id=C0, verdicts=dict.fromkeys(ALL, P), into=unit_statuses)
    [known] = statuses_of(specs, desired, unit_statuses)
    newest = {p.profile: p.regressions for p in known.commits[0].profiles}
    assert newest["kasan"] is None
    assert newest["default"] is not None
    assert [(r.test, r.subtest, r.status) for r in newest["default"]] == [
        (test, subtest, F) for test, subtest in ALL
    ]


def test_host_document_counts_branches_by_condition() -> None:
    specs, desired = farm()
    others = [branch("idle", suspend=True), branch("next")]
    specs = SpecSet(
        spec_dir=specs.spec_dir,
        repos=specs.repos,
        branches={**specs.branches, **{b.name: b for b in others}},
        baselines=specs.baselines,
        profiles=specs.profiles,
        harnesses=specs.harnesses,
        test_groups=specs.test_groups,
    )
    branches = statuses_of(specs, desired, {}, stalled={"next": "no such ref"})

    host = host_status(
        branches, host_id="farm-a", observed_revision=REVISION, reconciler_version="9.9"
    )

    assert host.document() == {
        "kind": "HostStatus",
        "schema_version": 1,
        "host": "farm-a",
        "observed_revision": REVISION,
        "reconciler_version": "9.9",
        "branch_count": 3,
        "conditions": {
            "Ready": {"True": 0, "False": 3, "Unknown": 0},
            "Reconciling": {"True": 1, "False": 2, "Unknown": 0},
            "Stalled": {"True": 1, "False": 2, "Unknown": 0},
        },
        "branches": {
            "idle": {"ready": "False", "reason": "Suspended"},
            "main": {"ready": "False", "reason": "Pending"},
            "next": {"ready": "False", "reason": "ResolutionFailed"},
        },
    }


def test_status_files_are_the_documents_and_are_byte_identical_across_passes() -> None:
    specs, desired = farm()
    unit_statuses = stored(desired, origin="main", commit_id=C1, verdicts=dict.fromkeys(ALL, P))

    def files() -> dict[str, bytes]:
        branches = statuses_of(specs, desired, unit_statuses)
        return status_files(
            host_status(
                branches, host_id="farm-a", observed_revision=REVISION, reconciler_version="1"
            )
        )

    first = files()
    assert sorted(first) == ["branches/main.json", "branches/main.md", "status.json"]
    assert first == files()
    [status] = statuses_of(specs, desired, unit_statuses)
    assert json.loads(first["branches/main.json"]) == status.document()
    assert (
        first["branches/main.json"]
        == (json.dumps(status.document(), indent=2, sort_keys=True) + "\n").encode()
    )
    assert render_json({"b": 1, "a": [1]}) == b'{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'


def test_markdown_is_a_short_table_newest_first() -> None:
    specs, desired = farm()
    unit_statuses = stored(desired, origin="v1", commit_id=C0, verdicts=dict.fromkeys(ALL, P))
    stored(
        desired,
        origin="main",
        commit_id=C2,
        verdicts={**dict.fromkeys(ALL, P), ALL[1]: F},
        into=unit_statuses,
    )
    [status] = statuses_of(specs, desired, unit_statuses)

    b2, b1 = build_of(desired, C2), build_of(desired, C1)
    assert render_markdown(status) == (
        "# main\n"
        "\n"
        "host `farm-a` · spec revision `abababababab` · repo `r` · ref main · "
        "baseline v1 at `000000000000`\n"
        "\n"
        "| Condition | Status | Reason | Message |\n"
        "| --- | --- | --- | --- |\n"
        "| Ready | False | Pending | 4 of 8 results pending (8 results: 3 pass, 1 fail, "
        "4 pending) |\n"
        "| Reconciling | True | Progressing | 4 of 8 results pending |\n"
        "| Stalled | False | Progressing | 4 of 8 results pending |\n"
        "\n"
        "| Commit | Subject | Profile | Build | Pass | Fail | Skip | Timeout | Error | Pending "
        "| Blocked | New failures |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        f"| `{C2[:12]}` | commit 2 | default | `{b2}` | 3 | 1 | 0 | 0 | 0 | 0 | 0 | 1 |\n"
        f"| `{C1[:12]}` | commit 1 | default | `{b1}` | 0 | 0 | 0 | 0 | 0 | 4 | 0 | 0 |\n"
        "\n"
        "## New failures against v1\n"
        "\n"
        f"- `{C2[:12]}` default: t/a:a2 (fail)\n"
    )


def test_markdown_text_cannot_break_the_table_or_inject_markup() -> None:
    assert markdown_text("a | b <img src=x>\n[link](y) a_b `c`") == (
        "a \\| b \\<img src=x\\> \\[link\\](y) a\\_b \\`c\\`"
    )


def test_branch_file_stems_keep_names_readable_and_never_escape_the_directory() -> None:
    assert branch_file_stem("linux-6.9") == "linux-6.9"
    assert branch_file_stem("fs/next") == "fs%2Fnext"
    assert branch_file_stem("..") == "%2E."
    assert branch_file_stem(".git") == "%2Egit"
    assert branch_file_stem("50%") == "50%25"
    assert branch_file_stem("é") == "%C3%A9"


@given(st.text(min_size=1, max_size=40))
def test_branch_file_stems_are_injective_single_path_components(name: str) -> None:
    stem = branch_file_stem(name)
    assert unquote(stem, errors="strict") == name
    assert "/" not in stem and not stem.startswith(".")


def test_no_secret_reaches_any_status_file() -> None:
    secrets = ["https://user:token@host/x.git", "/etc/keys/id", "hunter2", "s3cr3t-flag"]
    specs, desired = farm()
    specs = SpecSet(
        spec_dir=Path("specs"),
        repos={"r": Repo(kind="Repo", name="r", url=secrets[0], fetch_url=secrets[0])},
        branches=specs.branches,
        baselines=specs.baselines,
        profiles={
            "default": Profile(
                kind="Profile",
                name="default",
                build_env={"CFLAGS": "-Ds3cr3t-flag"},
                runtime=Runtime(env={"TOKEN": "hunter2"}),
            )
        },
        harnesses=specs.harnesses,
        test_groups=specs.test_groups,
        worker_pools={
            "farm": WorkerPool(
                kind="WorkerPool",
                name="farm",
                hosts=[WorkerHost(host="w1.example.org", identity_file=secrets[1])],
            )
        },
    )
    branches = statuses_of(
        specs, desired, {}, stalled={"main": f"cannot fetch {secrets[0]}: refused"}
    )
    files = status_files(
        host_status(branches, host_id="farm-a", observed_revision=REVISION, reconciler_version="1")
    )

    for path, content in files.items():
        for secret in secrets:
            assert secret.encode() not in content, (path, secret)
        assert b"token" not in content and b"w1.example.org" not in content


def test_condition_enums_are_the_flux_vocabulary() -> None:
    assert [t.value for t in ConditionType] == ["Ready", "Reconciling", "Stalled"]
    assert [s.value for s in ConditionStatus] == ["True", "False", "Unknown"]
    assert all(r.value[0].isupper() and "-" not in r.value for r in ConditionReason)


def test_a_test_file_that_cannot_be_planned_stalls_the_branch_and_is_listed_without_urls() -> None:
    specs, desired = farm()
    blocked = BlockedWork(
        reason=BlockReason.DEPENDENCY_UNRESOLVED,
        message="needs dependency 'xfstests' (https://ci:s3cret@git.example.org/xfstests.git at"
        " 'master'), which did not resolve",
        harness="scripts",
        group="g",
        test="t/new",
        origins=(Origin(OriginKind.BRANCH, "main"), Origin(OriginKind.BASELINE, "v1")),
        commits=(C2, C1),
    )
    elsewhere = dataclasses.replace(
        blocked, test="t/other", origins=(Origin(OriginKind.BRANCH, "x"),)
    )
    desired = dataclasses.replace(desired, blocked=(blocked, elsewhere))
    unit_statuses = stored(desired, origin="v1", commit_id=C0, verdicts=dict.fromkeys(ALL, P))
    for commit_id in (C1, C2):
        stored(
            desired,
            origin="main",
            commit_id=commit_id,
            verdicts=dict.fromkeys(ALL, P),
            into=unit_statuses,
        )

    [status] = statuses_of(specs, desired, unit_statuses)

    assert conditions(status) == [
        ("Ready", "False", "TestsBlocked"),
        ("Reconciling", "False", "TestsBlocked"),
        ("Stalled", "True", "TestsBlocked"),
    ]
    assert status.condition(ConditionType.STALLED).message == (
        "1 test file could not be planned; see blocked_tests (8 results: 8 pass)"
    )
    assert status.document()["blocked_tests"] == [
        {
            "test": "t/new",
            "group": "g",
            "reason": "dependency-unresolved",
            "message": "needs dependency 'xfstests' (<url> at 'master'), which did not resolve",
            "commits": 2,
        }
    ]
    markdown = render_markdown(status)
    assert (
        "| t/new | dependency-unresolved | 2 | needs dependency 'xfstests' (\\<url\\> at"
        " 'master'), which did not resolve |"
    ) in markdown
    assert "example.org" not in markdown and "s3cret" not in json.dumps(status.document())


def test_status_markdown_shows_control_characters_as_text() -> None:
    """A commit subject with ESC, BEL or an RTL override reaches the status file escaped."""
    shown = markdown_text("calc: \x1b]0;pwned\x07 fix \u202eevil")
    assert not any(char in shown for char in "\x1b\x07\u202e")
    assert shown == "calc: \\\\x1b\\]0;pwned\\\\x07 fix \\\\x202eevil"
