# kernel-reconciler built from pyproject.toml (setuptools), for callPackage.
{
  lib,
  python3Packages,
  git,
}:

let
  project = (lib.importTOML ../pyproject.toml).project;
in
python3Packages.buildPythonApplication {
  pname = project.name;
  inherit (project) version;
  pyproject = true;

  # Only what the wheel is built from (README.md: pyproject.toml names it as the long
  # description), so changing tests, specs or nix/ does not rebuild the package.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../pyproject.toml
      ../README.md
      ../reconciler
    ];
  };

  build-system = [ python3Packages.setuptools ];

  dependencies = import ./python-deps.nix python3Packages;

  # The git adapter runs git itself (and GitPython needs it too).
  makeWrapperArgs = [
    "--prefix"
    "PATH"
    ":"
    (lib.makeBinPath [ git ])
  ];

  # The test suite is not run here: the SSH executor tests start OpenSSH's sshd from
  # /usr/sbin, and other tests run `#!/usr/bin/env` scripts and a fixed /usr/bin PATH, none
  # of which exist in the build sandbox. CI runs it with `make test` (.ci/run); the flake's
  # `checks` build this package and smoke-test the installed command instead.
  doCheck = false;

  pythonImportsCheck = [
    "reconciler"
    "reconciler.cli.main"
  ];

  meta = {
    inherit (project) description;
    mainProgram = "reconciler";
    platforms = lib.platforms.linux;
  };
}
