# pyproject.toml's [project] dependencies by their nixpkgs names, for the package and the dev
# shell. Takes a Python package set (python3Packages, or `ps` in python3.withPackages).
ps: with ps; [
  pydantic
  ruamel-yaml
  jsonschema
  tenacity
  watchfiles
  asyncssh
  brotli
  rich
  tappy # PyPI "tap.py", imported as `tap`
  defusedxml
  jinja2
  pygal
]
