# NixOS module: `reconciler watch` as a hardened systemd service on the dashboard host.
#
# The service keeps a checkout of the spec repo (cloned, then fast-forwarded every fetchInterval
# by fetch-specs.sh in a oneshot on a timer), runs `reconciler watch` on it against a local
# result store, and reaches the workers over SSH. The worker key never enters the Nix store: `sshKeyFile` names a file on the
# host, which systemd hands to the service as a credential (LoadCredential=), readable only by
# the service, at `sshKeyPath`; WorkerPool specs name that path as each host's identity_file.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.kernel-reconciler;
  defaults = import ./defaults.nix;
  command = import ./exec-start.nix;
  inherit (defaults) stateDir;
  inherit (lib) mkOption types;

  inStateDir = path: path == stateDir || lib.hasPrefix "${stateDir}/" path;
  # Directories outside StateDirectory= the service writes: the checkout (and the mirrors and
  # caches `reconciler` keeps beside the spec directory in it), and the store's parent, which
  # holds its journal (`<store>.journal.sqlite`) beside it.
  writableOutsideState = lib.unique (
    lib.filter (path: !inStateDir path) [
      cfg.checkoutPath
      (dirOf cfg.storeDir)
    ]
  );
  # Created for the service when they lie outside its state directory (inside, it makes them).
  createdOutsideState = lib.filter (path: !inStateDir path) [
    cfg.checkoutPath
    cfg.storeDir
  ];

  fetchSpecs = pkgs.writeShellApplication {
    name = "kernel-reconciler-fetch-specs";
    runtimeInputs = [
      pkgs.git
      pkgs.openssh
      pkgs.coreutils
    ];
    text = builtins.readFile ./fetch-specs.sh;
  };

  specsUnit = lib.optional (cfg.specRepoUrl != null) "kernel-reconciler-specs.service";

  # Identity, state and confinement shared by the watcher and the checkout updater. The network
  # stays open (workers over SSH, git remotes), so no PrivateNetwork= or IPAddressDeny=; the
  # rest of the system is read-only or hidden.
  sandbox = {
    User = cfg.user;
    Group = cfg.group;
    WorkingDirectory = stateDir;
    StateDirectory = "kernel-reconciler";
    StateDirectoryMode = "0750";
    ReadWritePaths = writableOutsideState;
    UMask = "0027";

    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    RestrictSUIDSGID = true;
    RestrictNamespaces = true;
    RestrictRealtime = true;
    LockPersonality = true;
    RemoveIPC = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [
      "@system-service"
      "~@privileged"
    ];
    CapabilityBoundingSet = "";
    AmbientCapabilities = "";
    RestrictAddressFamilies = [
      "AF_INET"
      "AF_INET6"
      "AF_UNIX"
    ];
  };

  absolute = path: lib.hasPrefix "/" path;
  noWhitespace = path: builtins.match ".*[[:space:]].*" path == null;
  pathOptions = {
    inherit (cfg) checkoutPath storeDir knownHostsFile;
  }
  // lib.optionalAttrs (cfg.sshKeyFile != null) { inherit (cfg) sshKeyFile; };
in
{
  options.services.kernel-reconciler = {
    enable = lib.mkEnableOption "kernel-reconciler's `reconciler watch` service";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { } (the flake's nixosModules.default sets its own package)";
      description = "The kernel-reconciler package whose `reconciler` the service runs.";
    };

    specRepoUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://git.example.org/kernel-ci/specs.git";
      description = ''
        Git URL of the spec repository. `kernel-reconciler-specs.service` clones it into
        `checkoutPath` before the watcher starts, then fetches `specBranch` and fast-forwards
        the checkout every `fetchInterval` seconds (a checkout that cannot fast-forward fails
        that unit with a message; the watcher goes on with the checkout it has). For an SSH URL,
        set `GIT_SSH_COMMAND` in the `environment` of both kernel-reconciler services.
        `null`: nothing updates `checkoutPath`; keep it current yourself.
      '';
    };

    specBranch = mkOption {
      type = types.str;
      default = defaults.specBranch;
      description = "Branch of the spec repository the service checks out and follows.";
    };

    checkoutPath = mkOption {
      type = types.str;
      default = defaults.checkoutPath;
      description = ''
        Where the spec repository is checked out. Outside ${stateDir} it is created owned by
        the service user and made writable to the service.
      '';
    };

    specsSubdir = mkOption {
      type = types.str;
      default = defaults.specsSubdir;
      description = ''
        The spec directory inside the checkout (`--specs checkoutPath/specsSubdir`); `""` for
        the checkout's top directory.
      '';
    };

    storeDir = mkOption {
      type = types.str;
      default = defaults.storeDir;
      description = ''
        The result store (`--store`). Its journal and lock live beside it, so its parent
        directory must be writable by the service user too.
      '';
    };

    interval = mkOption {
      type = types.ints.positive;
      default = defaults.interval;
      description = "Seconds between reconcile passes when nothing changed (`--interval`).";
    };

    fetchInterval = mkOption {
      type = types.ints.positive;
      default = defaults.fetchInterval;
      description = ''
        Seconds between polls of the tracked branches' remotes (`--fetch-interval`), and
        between updates of the spec checkout from `specRepoUrl`.
      '';
    };

    hostId = mkOption {
      type = types.str;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = ''
        Names this reconciler in the status it writes back (`--host-id`), so two hosts never
        overwrite each other's status.
      '';
    };

    user = mkOption {
      type = types.str;
      default = defaults.user;
      description = ''
        User the service runs as. The default user is created (a system user, home ${stateDir});
        another must exist already.
      '';
    };

    group = mkOption {
      type = types.str;
      default = defaults.group;
      description = "Group the service runs as; the default group is created.";
    };

    sshKeyFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/etc/kernel-reconciler/id_ed25519";
      description = ''
        Path, on this host, of the private key for the worker hosts, as a string: never a Nix
        path literal, which would copy the key into the world-readable Nix store. It may stay
        readable by root alone (for example a sops-nix or agenix secret): systemd reads it at
        start and hands the service its own copy at `sshKeyPath` (LoadCredential=). Name
        `sshKeyPath` as `identity_file` in the WorkerPool specs.
      '';
    };

    sshKeyPath = mkOption {
      type = types.str;
      default = defaults.sshKeyPath;
      readOnly = true;
      description = ''
        Where the service reads the key given by `sshKeyFile`: the path to write as
        `identity_file` for each host of a WorkerPool spec run by this service.
      '';
    };

    knownHostsFile = mkOption {
      type = types.str;
      default = defaults.knownHostsFile;
      description = ''
        known_hosts file the workers' host keys are checked against (`--known-hosts`). Fill it
        with `ssh-keyscan -H HOST >> FILE` (checked by hand), or pass `--accept-new-host-keys`
        in `extraArgs` once, which needs the file inside ${stateDir} (writable).
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = defaults.extraArgs;
      example = [ "--accept-new-host-keys" ];
      description = "Further arguments appended to `reconciler watch`.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions =
      lib.mapAttrsToList (name: path: {
        assertion = absolute path && noWhitespace path;
        message = "services.kernel-reconciler.${name} must be an absolute path without whitespace, not \"${path}\".";
      }) pathOptions
      ++ [
        {
          assertion = cfg.sshKeyFile == null || !lib.hasPrefix "${builtins.storeDir}/" cfg.sshKeyFile;
          message = "services.kernel-reconciler.sshKeyFile is in the Nix store, where every user can read it; keep the key outside it and give its path as a string.";
        }
        {
          assertion = !absolute cfg.specsSubdir && !lib.elem ".." (lib.splitString "/" cfg.specsSubdir);
          message = "services.kernel-reconciler.specsSubdir must be relative to the checkout, not \"${cfg.specsSubdir}\".";
        }
        {
          assertion = cfg.hostId != "";
          message = "services.kernel-reconciler.hostId is empty: set it, or networking.hostName.";
        }
      ];

    users.users = lib.mkIf (cfg.user == defaults.user) {
      ${cfg.user} = {
        isSystemUser = true;
        inherit (cfg) group;
        home = stateDir;
        description = "kernel-reconciler watch service";
      };
    };
    users.groups = lib.mkIf (cfg.group == defaults.group) { ${cfg.group} = { }; };

    systemd.tmpfiles.rules = map (path: "d ${path} 0750 ${cfg.user} ${cfg.group} - -") createdOutsideState;

    # The spec checkout is kept current by its own oneshot, run before the watcher starts and
    # every fetchInterval after: `reconciler watch` reacts to changes in the checkout's files
    # but does not pull it. A failed update leaves the watcher running on the checkout it has.
    systemd.services.kernel-reconciler-specs = lib.mkIf (cfg.specRepoUrl != null) {
      description = "kernel-reconciler: update the spec checkout";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      environment.HOME = stateDir;
      serviceConfig = sandbox // {
        Type = "oneshot";
        ExecStart = command.escapeSystemdExecArgs [
          (lib.getExe fetchSpecs)
          cfg.specRepoUrl
          cfg.specBranch
          cfg.checkoutPath
        ];
        # A first clone of the spec repo may take a while.
        TimeoutStartSec = "10min";
      };
    };

    systemd.timers.kernel-reconciler-specs = lib.mkIf (cfg.specRepoUrl != null) {
      description = "kernel-reconciler: update the spec checkout every fetchInterval";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnActiveSec = "${toString cfg.fetchInterval}s";
        OnUnitActiveSec = "${toString cfg.fetchInterval}s";
        AccuracySec = "1s";
      };
    };

    systemd.services.kernel-reconciler = {
      description = "kernel-reconciler: keep kernel branches tested (reconciler watch)";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ] ++ specsUnit;
      after = [ "network-online.target" ] ++ specsUnit;
      # git for the tracked repos and the status branch, ssh for git remotes reached over SSH.
      path = [
        pkgs.git
        pkgs.openssh
      ];
      # ProtectHome= hides a home under /home; git and `~` in specs resolve here instead.
      environment.HOME = stateDir;

      serviceConfig = sandbox // {
        Type = "exec";
        ExecStart = command.execStart cfg;
        LoadCredential = lib.optional (
          cfg.sshKeyFile != null
        ) "${defaults.sshKeyCredential}:${cfg.sshKeyFile}";

        # Until the spec checkout exists (first clone failing at boot), and after a crash.
        Restart = "on-failure";
        RestartSec = "30s";
        # On SIGTERM `watch` stops dispatching and lets running batches finish; give them time.
        # mixed: only the main process gets SIGTERM, so local batch processes are not killed
        # under it; whatever is left when it exits (or at the timeout) gets SIGKILL.
        KillSignal = "SIGTERM";
        KillMode = "mixed";
        TimeoutStopSec = "15min";
      };
    };
  };
}
