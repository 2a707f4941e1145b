"""The `vm` harness: enumeration, the vmrun command it builds, and verdicts from real VMs.

The slow tests run the harness's batch command exactly as a worker does (`sh -c`, in the tests
checkout) on the kernel from `kernel_tree.vm_kernel()` and hand its output to `reported` and
`parse_results`, the two calls the batch runner makes. The fast ones read vmrun transcripts
written out by hand, with kernel lines in the formats real kernels print.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.adapters.harness.base import BatchContext, SubtestOutcome
from reconciler.adapters.harness.enumeration_cache import MemoryEnumerationCache
from reconciler.adapters.harness.vm import VmHarness, VmInfrastructureError
from reconciler.adapters.vm.program import vmrun_program
from reconciler.model.desired import EnumeratedTest
from reconciler.model.errors import HarnessError
from reconciler.model.results import Status
from reconciler.model.specs import Harness, TestGroup

from .kernel_tree import vm_kernel
from .test_command_harness import commit_all, git
from .vm_guest import write_tests

NOT_REACHED = "not reached: vmrun's watchdog stopped the VM"


def make_harness(**fields: Any) -> VmHarness:
    values: dict[str, Any] = {"kind": "Harness", "name": "guest", "type": "vm", **fields}
    return VmHarness(Harness.model_validate(values), cache=MemoryEnumerationCache())


def context(
    *,
    test: str,
    subtests: tuple[str, ...],
    tests_dir: Path,
    output_dir: Path,
    kernel: Path | None,
    runtime: dict[str, Any] | None = None,
    timeout: int = 30,
) -> BatchContext:
    return BatchContext(
        test=test,
        subtests=subtests,
        runtime=runtime or {},
        source_dir=str(tests_dir),
        tests_dir=str(tests_dir),
        output_dir=str(output_dir),
        timeout=timeout,
        kernel_image=str(kernel) if kernel else None,
    )


def vmrun_config(command: str) -> dict[str, Any]:
    python, option, program, config = shlex.split(command)
    assert (python, option, program) == ("python3", "-c", vmrun_program())
    loaded: dict[str, Any] = json.loads(config)
    return loaded


# --- no VM ------------------------------------------------------------------------------------


def test_the_batch_command_runs_vmrun_with_the_batch_and_profile(tmp_path: Path) -> None:
    harness = make_harness(run="sh {test} --quick {subtests}", output="ktest")
    batch = context(
        test="suite/it's here.sh",
        subtests=("a", "b; rm -rf /"),
        tests_dir=tmp_path / "src",
        output_dir=tmp_path / "out",
        kernel=tmp_path / "bzImage",
        runtime={
            "mem": "1G",
            "cpus": 2,
            "kernel_cmdline": "quiet",
            "qemu_args": ["-cpu", "max"],
            "scratch_disks": ["64M", "1G"],
            "env": {"FSTYP": "ext2"},
        },
        timeout=45,
    )
    assert vmrun_config(harness.batch_command(batch)) == {
        "kernel": str(tmp_path / "bzImage"),
        "tests_dir": str(tmp_path / "src"),
        "output_dir": str(tmp_path / "out"),
        "command": "sh 'suite/it'\"'\"'s here.sh' --quick a 'b; rm -rf /'",
        "payload": ["suite"],
        "subtests": ["a", "b; rm -rf /"],
        "output": "ktest",
        "env": {"FSTYP": "ext2"},
        "subtest_timeout": 45,
        "boot_timeout": 120,
        "batch_timeout": 45 * 2 + 120,
        "mem": "1G",
        "cpus": 2,
        "kernel_cmdline": "quiet",
        "qemu_args": ["-cpu", "max"],
        "scratch_disks": ["64M", "1G"],
    }


def test_the_payload_is_the_checkout_or_the_test_directory() -> None:
    in_tree = make_harness()
    assert in_tree.payload("tools/testing/selftests/x/run.sh") == ["tools/testing/selftests/x"]
    assert in_tree.payload("run.sh") == ["run.sh"]  # never the whole kernel tree
    own_repo = make_harness(url="https://example.org/tests.git", ref="main")
    assert own_repo.payload("run.sh") == ["."]


def test_a_batch_without_a_kernel_image_is_a_harness_error(tmp_path: Path) -> None:
    batch = context(
        test="t.sh", subtests=("a",), tests_dir=tmp_path, output_dir=tmp_path, kernel=None
    )
    with pytest.raises(HarnessError, match="no kernel image") as caught:
        make_harness().batch_command(batch)
    assert caught.value.hint == "build with the `kbuild` recipe, which records the boot image"


def test_junit_output_is_refused() -> None:
    with pytest.raises(HarnessError, match="reads `tap` or `ktest` output, not 'junit'"):
        make_harness(output="junit")


def test_enumeration_lists_on_the_host_like_the_command_harness(tmp_path: Path) -> None:
    repo = write_tests(tmp_path / "repo")
    git(repo, "-c", "init.defaultBranch=main", "init", "-q")
    tree = commit_all(repo, "tests")
    harness = make_harness(list="sh {test} --list")
    group = TestGroup.model_validate(
        {
            "kind": "TestGroup",
            "name": "guest",
            "harness": "guest",
            "tests": ["suite/tap.sh", "suite/ext2.sh"],
            "subtests": {"suite/ext2.sh": ["ext2-roundtrip"]},
            "exclude": ["suite/tap.sh:skip-c"],
        }
    )
    expected = (
        EnumeratedTest("suite/ext2.sh", ("ext2-roundtrip",)),
        EnumeratedTest("suite/tap.sh", ("a", "fail-b")),
    )
    assert harness.enumerate(group=group, tree=tree) == expected
    assert harness.enumerate(group=group, tree=tree) == expected
    assert tree.exports == 1  # the second answer came from the cache


def transcript(*lines: str) -> str:
    start = '[vmrun] start {"accel": "tcg", "argv": [], "initramfs_bytes": 1, "subtests": %s}'
    return "\n".join([start % json.dumps(["a", "b", "c"]), *lines])


def test_a_kernel_warning_fails_the_subtest_its_own_line_passed() -> None:
    output = transcript(
        '[vmrun] ready {"seconds": 1.0}',
        "[console] ------------[ cut here ]------------",
        "[console] WARNING: CPU: 0 PID: 42 at fs/ext2/super.c:10 ext2_fill_super+0x1/0x2",
        '[vmrun] kernel-error {"boot": false, "kind": "warning", "line": "WARNING: CPU: 0 PID:'
        ' 42 at fs/ext2/super.c:10 ext2_fill_super+0x1/0x2", "subtest": "a"}',
        "ok 1 - a",
        "[test] [console] a test line that looks like vmrun's",
        "ok 2 - b",
    )
    warning = (
        "kernel warning while it ran: WARNING: CPU: 0 PID: 42 at fs/ext2/super.c:10"
        " ext2_fill_super+0x1/0x2; the test reported pass"
    )
    harness = make_harness()
    assert harness.reported(output=output) == [
        SubtestOutcome("a", Status.FAIL, None, warning),
        SubtestOutcome("b", Status.PASS, None, None),
    ]
    # The VM is still running, and `c` has no line: only the end can say it was not reached.
    assert harness.parse_results(output=output, files={}, expected=["a", "b", "c"]) == [
        SubtestOutcome("a", Status.FAIL, None, warning),
        SubtestOutcome("b", Status.PASS, None, None),
        SubtestOutcome("c", Status.ERROR, None, "not reached: the VM stopped early"),
    ]


def test_a_guest_hung_while_booting_times_out_its_first_subtest() -> None:
    output = transcript(
        "[console] Linux version 6.1.192 (reconciler@reconciler)",
        '[vmrun] watchdog {"phase": "boot", "seconds": 120, "subtest": null}',
        '[vmrun] vm-exit {"reason": "watchdog", "seconds": 120.4, "status": null}',
    )
    outcomes = make_harness().parse_results(output=output, files={}, expected=["a", "b", "c"])
    assert outcomes == [
        SubtestOutcome(
            "a", Status.TIMEOUT, None, "the guest did not boot within 120 s (watchdog stopped it)"
        ),
        SubtestOutcome("b", Status.ERROR, None, "not reached: the guest did not boot within 120 s"),
        SubtestOutcome("c", Status.ERROR, None, "not reached: the guest did not boot within 120 s"),
    ]


def test_vmrun_events_that_are_not_verdicts_raise() -> None:
    harness = make_harness()
    infra = transcript(
        '[vmrun] infra-error {"hint": "install QEMU", "message": "qemu-system-x86_64 is not'
        ' installed on this worker"}'
    )
    with pytest.raises(VmInfrastructureError, match="qemu-system-x86_64 is not installed") as err:
        harness.parse_results(output=infra, files={}, expected=["a"])
    assert err.value.hint == "install QEMU"
    assert harness.reported(output=infra) == []
    config = '[vmrun] config-error {"message": "the initramfs (300 MiB ...) does not fit"}'
    with pytest.raises(HarnessError, match="does not fit"):
        harness.parse_results(output=config, files={}, expected=["a"])


# --- real VMs ---------------------------------------------------------------------------------


# The first test's set-up may build the test kernel from nothing (2-3 minutes on 2 cores, as
# in CI): more than the suite's default 120 s per test, which still bounds the tests themselves
# through vmrun's own watchdogs.
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def kernel() -> Path:
    return vm_kernel()


@pytest.fixture
def tests_dir(tmp_path: Path) -> Path:
    return write_tests(tmp_path / "checkout")


def run_batch(
    harness: VmHarness,
    batch: BatchContext,
    *,
    env: dict[str, str] | None = None,
) -> tuple[list[SubtestOutcome], list[SubtestOutcome], str]:
    """(streamed, final) outcomes and the output of one batch run as a worker runs it."""
    completed = subprocess.run(
        ["/bin/sh", "-c", harness.batch_command(batch)],
        cwd=batch.tests_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        timeout=90,
        check=False,
    )
    output = completed.stdout.decode()
    final = harness.parse_results(output=output, files={}, expected=list(batch.subtests))
    return harness.reported(output=output), final, output


@pytest.mark.slow
def test_tap_pass_fail_and_skip_from_inside_the_guest(
    kernel: Path, tests_dir: Path, tmp_path: Path
) -> None:
    harness = make_harness()
    batch = context(
        test="suite/tap.sh",
        subtests=("a", "fail-b", "skip-c"),
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        kernel=kernel,
    )
    streamed, final, _ = run_batch(harness, batch)
    assert final == [
        SubtestOutcome("a", Status.PASS, None, None),
        SubtestOutcome("fail-b", Status.FAIL, None, None),
        SubtestOutcome("skip-c", Status.SKIP, None, "not here"),
    ]
    assert streamed == final


@pytest.mark.slow
def test_ext2_on_a_scratch_disk(kernel: Path, tests_dir: Path, tmp_path: Path) -> None:
    batch = context(
        test="suite/ext2.sh",
        subtests=("ext2-roundtrip",),
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        kernel=kernel,
        runtime={"scratch_disks": ["32M"], "mem": "128M"},
    )
    _, final, output = run_batch(make_harness(), batch)
    assert final == [SubtestOutcome("ext2-roundtrip", Status.PASS, None, None)], output


@pytest.mark.slow
def test_ktest_lines_from_the_guest(kernel: Path, tests_dir: Path, tmp_path: Path) -> None:
    batch = context(
        test="suite/ktest.sh",
        subtests=("one", "fail-two", "skip-three"),
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        kernel=kernel,
    )
    _, final, _ = run_batch(make_harness(output="ktest"), batch)
    assert final == [
        SubtestOutcome("one", Status.PASS, 1.0, None),
        SubtestOutcome("fail-two", Status.FAIL, 0.0, None),
        SubtestOutcome("skip-three", Status.SKIP, 0.0, "not supported here"),
    ]


@pytest.mark.slow
def test_a_hung_subtest_times_out_and_the_rest_are_not_reached(
    kernel: Path, tests_dir: Path, tmp_path: Path
) -> None:
    batch = context(
        test="suite/tap.sh",
        subtests=("a", "hang-b", "c"),
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        kernel=kernel,
        timeout=3,
    )
    streamed, final, _ = run_batch(make_harness(), batch)
    timeout = "no result within 3.0 s (vmrun's watchdog stopped the VM)"
    assert final == [
        SubtestOutcome("a", Status.PASS, None, None),
        SubtestOutcome("hang-b", Status.TIMEOUT, None, timeout),
        SubtestOutcome("c", Status.ERROR, None, NOT_REACHED),
    ]
    assert streamed == final[:2]


@pytest.mark.slow
def test_a_kernel_warning_in_the_guest_fails_its_subtest_only(
    kernel: Path, tests_dir: Path, tmp_path: Path
) -> None:
    batch = context(
        test="suite/tap.sh",
        subtests=("a", "warn-b", "c"),
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        kernel=kernel,
    )
    _, final, _ = run_batch(make_harness(), batch)
    assert final == [
        SubtestOutcome("a", Status.PASS, None, None),
        SubtestOutcome(
            "warn-b",
            Status.FAIL,
            None,
            "kernel warning while it ran: WARNING: CPU: 0 PID: 1 at fs/fake.c:1"
            " fake+0x0/0x10; the test reported pass",
        ),
        SubtestOutcome("c", Status.PASS, None, None),
    ]


@pytest.mark.slow
def test_a_panic_during_a_subtest_fails_it_and_leaves_the_rest(
    kernel: Path, tests_dir: Path, tmp_path: Path
) -> None:
    batch = context(
        test="suite/oom.sh",
        subtests=("before", "exhaust-memory", "after"),
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        kernel=kernel,
    )
    streamed, final, _ = run_batch(make_harness(), batch)
    panic = (
        "kernel panic while it ran: Kernel panic - not syncing: Out of memory: system-wide"
        " panic_on_oom is enabled"
    )
    assert final == [
        SubtestOutcome("before", Status.PASS, None, None),
        SubtestOutcome("exhaust-memory", Status.FAIL, None, panic),
        SubtestOutcome("after", Status.ERROR, None, "not reached: the kernel panicked"),
    ]
    assert streamed == final[:2]


@pytest.mark.slow
def test_a_kernel_that_panics_at_boot_fails_every_subtest(
    kernel: Path, tests_dir: Path, tmp_path: Path
) -> None:
    batch = context(
        test="suite/tap.sh",
        subtests=("a", "fail-b"),
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        kernel=kernel,
        runtime={"kernel_cmdline": "rdinit=/nonexistent"},
    )
    streamed, final, output = run_batch(make_harness(), batch)
    panic = (
        "kernel panic during boot: Kernel panic - not syncing: VFS: Unable to mount root fs"
        " on unknown-block(0,0)"
    )
    assert final == [
        SubtestOutcome("a", Status.FAIL, None, panic),
        SubtestOutcome("fail-b", Status.FAIL, None, panic),
    ]
    assert streamed == final
    assert '[console] Please append a correct "root=" boot option' in output  # the log


@pytest.mark.slow
def test_a_worker_without_qemu_is_an_infrastructure_error(
    kernel: Path, tests_dir: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # The real interpreter, not a wrapper (pyenv's shims put their own PATH back).
    (bin_dir / "python3").symlink_to(os.path.realpath(sys.executable))
    (bin_dir / "busybox").symlink_to(shutil.which("busybox") or "/bin/busybox")
    batch = context(
        test="suite/tap.sh",
        subtests=("a",),
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        kernel=kernel,
    )
    with pytest.raises(VmInfrastructureError) as caught:
        run_batch(make_harness(), batch, env={**os.environ, "PATH": str(bin_dir)})
    assert str(caught.value) == (
        "harness 'guest': vmrun: qemu-system-x86_64 is not installed on this worker (hint:"
        " install QEMU on the worker (Debian: qemu-system-x86))"
    )


@pytest.mark.slow
def test_qemu_refusing_the_profiles_arguments_is_an_infrastructure_error(
    kernel: Path, tests_dir: Path, tmp_path: Path
) -> None:
    batch = context(
        test="suite/tap.sh",
        subtests=("a",),
        tests_dir=tests_dir,
        output_dir=tmp_path / "out",
        kernel=kernel,
        runtime={"qemu_args": ["-no-such-option"]},
    )
    with pytest.raises(VmInfrastructureError, match="QEMU exited with status 1") as caught:
        run_batch(make_harness(), batch)
    assert "-no-such-option" in str(caught.value)
