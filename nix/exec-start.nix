# How the watch service's command lines are built: pure functions of the module's settings,
# with builtins only, so tests/test_nix.py evaluates the very code module.nix uses without
# nixpkgs (`nix-instantiate --eval --strict --json`).
#
# systemd's Exec*= lines are not shell: systemd expands `%` specifiers and `$VAR`s in them and
# unquotes with its own C-like rules, under which lib.escapeShellArgs' `'\''` for an embedded
# quote is invalid (systemd.syntax(7)). So each argument is JSON-quoted (a subset of systemd's
# double-quoted syntax) with `%` and `$` doubled, as NixOS's own utils.escapeSystemdExecArgs.
let
  escapeSystemdExecArg =
    arg:
    let
      text =
        if builtins.isString arg then
          arg
        else if builtins.isInt arg then
          toString arg
        else
          throw "kernel-reconciler: a command argument must be a string or an integer, not ${builtins.typeOf arg}";
    in
    builtins.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON text);

  escapeSystemdExecArgs = args: builtins.concatStringsSep " " (map escapeSystemdExecArg args);

  # The spec directory inside the checkout; "" or "." mean the checkout's top directory.
  specsDir =
    cfg:
    if cfg.specsSubdir == "" || cfg.specsSubdir == "." then
      cfg.checkoutPath
    else
      "${cfg.checkoutPath}/${cfg.specsSubdir}";

  # The command the service runs, one list element per argument (`cfg.package` may be a
  # derivation or, in tests, a store path string).
  watchArgv =
    cfg:
    [
      "${cfg.package}/bin/reconciler"
      "watch"
      "--specs"
      (specsDir cfg)
      "--store"
      cfg.storeDir
      "--interval"
      (toString cfg.interval)
      "--fetch-interval"
      (toString cfg.fetchInterval)
      "--host-id"
      cfg.hostId
      "--known-hosts"
      cfg.knownHostsFile
    ]
    ++ cfg.extraArgs;
in
{
  inherit
    escapeSystemdExecArg
    escapeSystemdExecArgs
    specsDir
    watchArgv
    ;
  execStart = cfg: escapeSystemdExecArgs (watchArgv cfg);
}
