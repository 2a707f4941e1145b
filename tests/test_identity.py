"""Identity laws: changing any one input changes the identity; nothing else does."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.desired import _UnitTemplate
from reconciler.core.identity import (
    ResultIdentities,
    build_identity,
    canonical_json,
    diff_preimages,
    identity_of,
    normalize_kconfig,
    result_identity,
    runtime_inputs,
    unit_fields,
    unit_identity,
)
from reconciler.core.toolchain import toolchain_identity
from reconciler.model.desired import ResolvedToolchain
from reconciler.model.specs import Profile, Runtime

hexes = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
# Any text a process environment can hold (no NUL).
words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=12,
)
names = st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True)
# What validate lets through as make flags: scheduling options and plain definitions.
plain_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 -=.,:/+", max_size=12)
make_flags = st.lists(
    st.sampled_from(["-j4", "-j", "--jobs=8", "-k", "-s", "--no-print-directory", "-Oline"])
    | st.builds(lambda name, value: f"{name}={value}", names, plain_values),
    max_size=3,
)


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    return Profile(
        kind="Profile",
        name=draw(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)),
        arch=draw(st.sampled_from(["x86_64", "aarch64", "riscv64"])),
        base_config=draw(st.none() | st.sampled_from(["defconfig", "tinyconfig"])),
        kconfig=[
            f"{name}={value}"
            for name, value in draw(
                st.dictionaries(names, st.sampled_from("ynm"), max_size=4)
            ).items()
        ],
        toolchain=draw(st.sampled_from(["gcc-12", "gcc-14", "clang-18"])),
        make_flags=draw(make_flags),
        build_env=draw(st.dictionaries(names, words, max_size=3)),
        runtime=Runtime(
            mem=draw(st.none() | st.sampled_from(["1G", "4G"])),
            cpus=draw(st.none() | st.integers(1, 64)),
            fstype=draw(st.none() | st.sampled_from(["xfs", "ext4", "bcachefs"])),
            env=draw(st.dictionaries(names, words, max_size=3)),
        ),
    )


def _mutations(profile: Profile) -> list[tuple[str, Profile]]:
    """One profile per build or runtime input, each differing from `profile` in that input only."""
    runtime = profile.runtime
    options = normalize_kconfig(profile.kconfig)
    return [
        ("arch", profile.model_copy(update={"arch": profile.arch + "x"})),
        (
            "base_config",
            profile.model_copy(update={"base_config": (profile.base_config or "") + "allno"}),
        ),
        ("kconfig", profile.model_copy(update={"kconfig": [*options, "ZZZ_NEW_OPTION=y"]})),
        ("toolchain", profile.model_copy(update={"toolchain": profile.toolchain + ".1"})),
        ("make_flags", profile.model_copy(update={"make_flags": [*profile.make_flags, "W=1"]})),
        (
            "build_env",
            profile.model_copy(update={"build_env": {**profile.build_env, "ZZ_CFLAGS": "-O3"}}),
        ),
        (
            "runtime.mem",
            profile.model_copy(
                update={"runtime": runtime.model_copy(update={"mem": (runtime.mem or "") + "9"})}
            ),
        ),
        (
            "runtime.cpus",
            profile.model_copy(
                update={"runtime": runtime.model_copy(update={"cpus": (runtime.cpus or 0) + 1})}
            ),
        ),
        (
            "runtime.fstype",
            profile.model_copy(
                update={
                    "runtime": runtime.model_copy(update={"fstype": (runtime.fstype or "") + "2"})
                }
            ),
        ),
        (
            "runtime.env",
            profile.model_copy(
                update={"runtime": runtime.model_copy(update={"env": {**runtime.env, "ZZ": "1"}})}
            ),
        ),
    ]


# kbuild: the recipe that uses every build input (config, toolchain, make flags, env).
RECIPE = {"recipe": "kbuild", "version": 2}
HARNESS = {"type": "command", "run": "sh {test}", "revision": "a" * 64}


def planning_host_version(name: str) -> str:
    """What `<cc> --version` says on the planning host, made up per name."""
    return f"{name} (Debian {len(name)}.2.0-14) {len(name)}.2.0"


def concrete(name: str, *, version: str | None = None) -> dict[str, str]:
    resolved = ResolvedToolchain(name, version=version or planning_host_version(name))
    return toolchain_identity(resolved)


def _result_id(
    profile: Profile,
    *,
    tree: str,
    harness: dict[str, Any],
    test: str,
    subtest: str,
    timeout: int = 600,
    version: str | None = None,
) -> str:
    build = build_identity(
        source_tree=tree,
        profile=profile,
        recipe=RECIPE,
        toolchain=concrete(profile.toolchain, version=version),
    )
    fields = unit_fields(
        build=build.hex,
        runtime=runtime_inputs(profile),
        harness=harness,
        test=test,
        timeout=timeout,
    )
    return result_identity(fields, subtest).hex


@settings(max_examples=40, deadline=None)
@given(profiles(), hexes)
def test_changing_any_one_profile_input_changes_build_or_result_identity(
    profile: Profile, tree: str
) -> None:
    base = _result_id(profile, tree=tree, harness=HARNESS, test="t/a.t", subtest="one")
    for field, changed in _mutations(profile):
        other = _result_id(changed, tree=tree, harness=HARNESS, test="t/a.t", subtest="one")
        assert other != base, f"changing {field} left the result identity unchanged"


@settings(max_examples=40, deadline=None)
@given(profiles(), hexes, hexes, words, words)
def test_changing_source_harness_test_subtest_or_timeout_changes_identity(
    profile: Profile, tree: str, other_tree: str, test: str, subtest: str
) -> None:
    base = _result_id(profile, tree=tree, harness=HARNESS, test=test, subtest=subtest)
    changes = {
        "source tree": dict(tree=other_tree if other_tree != tree else tree[::-1] + "0"),
        "harness revision": dict(harness={**HARNESS, "revision": "b" * 64}),
        "harness run command": dict(harness={**HARNESS, "run": "bash {test}"}),
        "test": dict(test=test + "x"),
        "subtest": dict(subtest=subtest + "x"),
        "timeout": dict(timeout=601),
    }
    for what, change in changes.items():
        args: dict[str, Any] = dict(tree=tree, harness=HARNESS, test=test, subtest=subtest)
        args.update(change)
        if args["tree"] == tree and what == "source tree":
            continue
        assert _result_id(profile, **args) != base, f"changing {what} left the identity unchanged"


@settings(max_examples=40, deadline=None)
@given(profiles(), hexes, st.randoms(use_true_random=False))
def test_non_inputs_leave_identity_unchanged(profile: Profile, tree: str, rng: Any) -> None:
    base = _result_id(profile, tree=tree, harness=HARNESS, test="t/a.t", subtest="one")
    shuffled_kconfig = list(profile.kconfig)
    rng.shuffle(shuffled_kconfig)
    same_inputs = [
        profile.model_copy(update={"name": profile.name + "-renamed"}),
        profile.model_copy(update={"description": "a description is never an input"}),
        # Order of a config fragment and the CONFIG_ prefix are spelling, not inputs.
        profile.model_copy(update={"kconfig": [f"CONFIG_{line}" for line in shuffled_kconfig]}),
        profile.model_copy(update={"kconfig": [*profile.kconfig, "LOCALVERSION=-ci"]}),
    ]
    for same in same_inputs:
        assert _result_id(same, tree=tree, harness=HARNESS, test="t/a.t", subtest="one") == base


@settings(max_examples=40, deadline=None)
@given(profiles(), hexes, words)
def test_a_new_compiler_version_changes_the_build_and_nothing_else_about_it_does(
    profile: Profile, tree: str, suffix: str
) -> None:
    """The identity holds the concrete compiler: the same name resolving to another version
    (an upgraded package) is another build; the same version found again is the same one."""
    base = _result_id(profile, tree=tree, harness=HARNESS, test="t/a.t", subtest="one")
    upgraded = planning_host_version(profile.toolchain) + suffix + "-1"
    assert (
        _result_id(
            profile, tree=tree, harness=HARNESS, test="t/a.t", subtest="one", version=upgraded
        )
        != base
    )
    again = planning_host_version(profile.toolchain)
    assert (
        _result_id(profile, tree=tree, harness=HARNESS, test="t/a.t", subtest="one", version=again)
        == base
    )


def test_the_build_preimage_holds_the_concrete_compiler_not_a_name() -> None:
    profile = Profile(kind="Profile", name="p", toolchain="clang")
    build = build_identity(
        source_tree="t" * 40,
        profile=profile,
        recipe=RECIPE,
        toolchain=concrete("clang", version="Debian clang version 14.0.6"),
    )
    assert build.preimage["toolchain"] == {
        "name": "clang",
        "version": "Debian clang version 14.0.6",
    }
    store = "/nix/store/" + "a" * 32 + "-gcc-wrapper-13.2.0"
    nix = toolchain_identity(ResolvedToolchain(store, store_path=store))
    assert nix == {"name": store, "store_path": store}


def test_a_recipe_holds_only_the_inputs_it_uses() -> None:
    """A `command` build configures no kernel: its identity holds no config, so a kconfig
    cannot make two identical builds look different; a build compiling nothing holds no
    toolchain."""
    plain = Profile(kind="Profile", name="p")
    configured = Profile(kind="Profile", name="p", kconfig=["KASAN=y"], base_config="tinyconfig")
    command = {"recipe": "command", "version": 2, "command": "make"}

    def build(profile: Profile, recipe: dict[str, Any], toolchain: dict[str, str] | None) -> Any:
        return build_identity(
            source_tree="t" * 40, profile=profile, recipe=recipe, toolchain=toolchain
        )

    gcc = concrete("gcc")
    assert build(plain, command, gcc) == build(configured, command, gcc)
    assert "config" not in build(configured, command, gcc).preimage
    assert build(configured, RECIPE, gcc).preimage["config"] == {
        "base": "tinyconfig",
        "fragment": ["CONFIG_KASAN=y"],
    }
    assert "toolchain" not in build(plain, {"recipe": "command", "version": 2}, None).preimage


def test_normalize_kconfig() -> None:
    assert normalize_kconfig(["KASAN=y", "CONFIG_DEBUG_INFO=n", "KASAN=n", "LOCALVERSION=-x"]) == [
        "CONFIG_DEBUG_INFO=n",
        "CONFIG_KASAN=n",
    ]


def test_canonical_json_is_sorted_and_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == (
        '{"a":[1,{"c":null,"d":"\\u00e9"}],"b":1}'
    )


@settings(max_examples=100, deadline=None)
@given(profiles(), hexes, words, st.lists(words, min_size=1, max_size=5))
def test_spliced_identities_equal_full_serialisation(
    profile: Profile, tree: str, test: str, subtests: list[str]
) -> None:
    build = build_identity(
        source_tree=tree, profile=profile, recipe=RECIPE, toolchain=concrete(profile.toolchain)
    )
    fields = unit_fields(
        build=build.hex, runtime=runtime_inputs(profile), harness=HARNESS, test=test, timeout=5
    )
    splicer = ResultIdentities(fields)
    for subtest in subtests:
        assert splicer.of(subtest) == result_identity(fields, subtest).hex
    base = {key: value for key, value in fields.items() if key != "test"}
    assert _UnitTemplate(base).unit_id(test) == unit_identity(fields).hex


def test_source_is_the_tree_not_the_commit() -> None:
    profile = Profile(kind="Profile", name="p")
    build = build_identity(
        source_tree="t" * 40, profile=profile, recipe=RECIPE, toolchain=concrete("gcc")
    )
    assert build.preimage["source_tree"] == "t" * 40
    assert "commit" not in canonical_json(build.preimage)


def test_diff_preimages_names_each_differing_input() -> None:
    left = {"v": 1, "runtime": {"env": {"A": "1"}, "mem": "1G"}, "test": "x"}
    right = {"v": 1, "runtime": {"env": {"A": "2"}}, "test": "x", "timeout": 5}
    assert [(d.path, d.left, d.right) for d in diff_preimages(left, right)] == [
        ("runtime.env.A", "1", "2"),
        ("runtime.mem", "1G", None),
        ("timeout", None, 5),
    ]
    assert diff_preimages(left, dict(left)) == []


def test_identity_hex_is_sha256_of_canonical_preimage() -> None:
    import hashlib

    preimage = {"v": 1, "kind": "build", "source_tree": "abc"}
    identity = identity_of(preimage)
    assert identity.hex == hashlib.sha256(canonical_json(preimage).encode()).hexdigest()
    assert identity.short == identity.hex[:12]
