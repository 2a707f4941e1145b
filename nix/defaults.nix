# The watch service's default settings as plain data. module.nix uses them as its option
# defaults and tests/test_nix.py evaluates them with builtins alone (nixpkgs is not needed), so
# the command the README documents is checked against the defaults the module really has.
rec {
  user = "kernel-reconciler";
  group = "kernel-reconciler";
  # Fixed: systemd's StateDirectory=kernel-reconciler creates and owns it.
  stateDir = "/var/lib/kernel-reconciler";
  specBranch = "main";
  checkoutPath = "${stateDir}/specs";
  specsSubdir = "specs";
  storeDir = "${stateDir}/store";
  interval = 300;
  fetchInterval = 60;
  knownHostsFile = "${stateDir}/known_hosts";
  extraArgs = [ ];
  # LoadCredential= name of the worker SSH key; the service reads it at sshKeyPath.
  sshKeyCredential = "worker-key";
  sshKeyPath = "/run/credentials/kernel-reconciler.service/worker-key";
}
