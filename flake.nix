{
  description = "kernel-reconciler: a GitOps-style reconciler for Linux kernel test farms";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems =
        f:
        lib.genAttrs systems (
          system:
          f {
            inherit system;
            pkgs = nixpkgs.legacyPackages.${system};
          }
        );
    in
    {
      packages = forAllSystems ({ pkgs, ... }: {
        default = pkgs.callPackage ./nix/package.nix { };
      });

      apps = forAllSystems ({ system, ... }: {
        default = {
          type = "app";
          program = lib.getExe self.packages.${system}.default;
          meta.description = "the reconciler command";
        };
      });

      devShells = forAllSystems ({ pkgs, ... }: {
        default = pkgs.mkShell {
          packages = [
            # mypy checks against the same interpreter and libraries the tests import.
            (pkgs.python3.withPackages (
              ps:
              import ./nix/python-deps.nix ps
              ++ [
                ps.setuptools
                ps.pytest
                ps.pytest-timeout
                ps.hypothesis
                ps.mypy
                ps.types-jsonschema
              ]
            ))
            pkgs.ruff
            pkgs.git
            pkgs.openssh
            pkgs.gnumake
          ]
          # `lint-imports`, where this nixpkgs has it.
          ++ lib.optional (pkgs ? import-linter) pkgs.import-linter;
          shellHook = ''
            # Import the working tree, not an installed copy.
            export PYTHONPATH="$PWD''${PYTHONPATH:+:$PYTHONPATH}"
          '';
        };
      });

      # The module, with the package built by this flake's nixpkgs unless the host sets one.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.kernel-reconciler.package = lib.mkDefault (
            self.packages.${pkgs.stdenv.hostPlatform.system}.default
              or (pkgs.callPackage ./nix/package.nix { })
          );
        };

      checks = forAllSystems (
        { system, pkgs }:
        let
          package = self.packages.${system}.default;
          # A minimal host running the service, evaluated but never booted (no nixosTest: a
          # VM test needs KVM, and this check is about the module and the unit it renders).
          host = lib.nixosSystem {
            modules = [
              self.nixosModules.default
              {
                nixpkgs.hostPlatform = system;
                system.stateVersion = "25.05";
                boot.loader.grub.enable = false;
                fileSystems."/" = {
                  device = "none";
                  fsType = "tmpfs";
                };
                networking.hostName = "dashboard";
                services.kernel-reconciler = {
                  enable = true;
                  specRepoUrl = "https://git.example.org/kernel-ci/specs.git";
                  sshKeyFile = "/etc/kernel-reconciler/id_ed25519";
                };
              }
            ];
          };
          service = host.config.systemd.services.kernel-reconciler;
          unit = name: "${host.config.systemd.units.${name}.unit}/${name}";
        in
        {
          inherit package;

          # The installed command runs and validates the default spec set.
          smoke = pkgs.runCommand "kernel-reconciler-smoke" { nativeBuildInputs = [ package ]; } ''
            reconciler --version
            reconciler validate --specs ${./specs}
            touch $out
          '';

          # The module evaluates, and the unit it renders runs `reconciler watch` as documented.
          module =
            pkgs.runCommand "kernel-reconciler-module"
              {
                execStart = service.serviceConfig.ExecStart;
                expected = (import ./nix/exec-start.nix).execStart (
                  import ./nix/defaults.nix
                  // {
                    inherit package;
                    hostId = "dashboard";
                  }
                );
              }
              ''
                [ "$execStart" = "$expected" ] || {
                  echo "ExecStart is: $execStart"; echo "expected:     $expected"; exit 1; }
                watcher=${unit "kernel-reconciler.service"}
                specs=${unit "kernel-reconciler-specs.service"}
                timer=${unit "kernel-reconciler-specs.timer"}
                cat "$watcher" "$specs" "$timer"
                grep -qxF "ExecStart=$expected" "$watcher"
                grep -qx 'LoadCredential=worker-key:/etc/kernel-reconciler/id_ed25519' "$watcher"
                grep -qx 'KillMode=mixed' "$watcher"
                grep -q '^Wants=.*kernel-reconciler-specs.service' "$watcher"
                grep -q '^ExecStart=.*kernel-reconciler-fetch-specs" "https://git.example.org/kernel-ci/specs.git" "main" "/var/lib/kernel-reconciler/specs"$' "$specs"
                grep -qx 'OnUnitActiveSec=60s' "$timer"
                cat "$watcher" "$specs" "$timer" > $out
              '';
        }
      );

      formatter = forAllSystems ({ pkgs, ... }: pkgs.nixfmt-rfc-style);
    };
}
