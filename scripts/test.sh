#!/usr/bin/env bash
# The whole test suite, runnable on a fresh Debian machine with a Rust toolchain:
# installs what the tests need (skopeo, umoci, podman, qemu-user-static, an arm64 cross compiler,
# the CNCF registry docker-registry and htpasswd, Debian trixie's skopeo (scripts/skopeo-trixie.sh,
# a cache directory), a JDK 17 runtime as a real tree with absolute symlinks, and from PyPI
# moto[server], spdx-tools and cyclonedx-python-lib),
# then checks formatting and lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: command (or file) -> package.
declare -A want=(
  [skopeo]=skopeo
  [umoci]=umoci
  [podman]=podman
  [qemu-aarch64-static]=qemu-user-static
  [aarch64-linux-gnu-gcc]=gcc-aarch64-linux-gnu
  [/usr/aarch64-linux-gnu/lib/libc.a]=libc6-dev-arm64-cross
  [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev
  [cc]=gcc
  [setpriv]=util-linux
  [mkfifo]=coreutils
  [pigz]=pigz
  [docker-registry]=docker-registry
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [python3]=python3
  [git]=git
  [curl]=curl
  [gzip]=gzip
  [zstd]=zstd
  [igzip]=isal
  ["/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)/bin/java"]=openjdk-17-jre-headless
)
missing=()
for what in "${!want[@]}"; do
  if [[ $what == /* ]]; then [[ -e $what ]] && continue; else command -v "$what" >/dev/null 2>&1 && continue; fi
  missing+=("${want[$what]}")
done
if ((${#missing[@]})); then
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The ECR control plane for the tests: moto in server mode, from PyPI.
if ! python3 -c "import moto.server, boto3" >/dev/null 2>&1; then
  echo "installing: moto[server] (PyPI)" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'moto[server]'
fi

# Debian trixie's skopeo (sigstore signing and verification; bookworm's has it patched out), in a
# cache directory for the signing tests, never installed system-wide.
bash scripts/skopeo-trixie.sh >/dev/null

# The SBOM validators for the tests: spdx-tools (pyspdxtools) and cyclonedx-python-lib's JSON
# schema validation, from PyPI.
if ! { command -v pyspdxtools >/dev/null 2>&1 \
       && python3 -c "from cyclonedx.validation.json import JsonStrictValidator; import jsonschema" >/dev/null 2>&1; }; then
  echo "installing: spdx-tools, cyclonedx-python-lib[json-validation] (PyPI)" >&2
  python3 -m pip install --quiet --disable-pip-version-check spdx-tools 'cyclonedx-python-lib[json-validation]' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages spdx-tools 'cyclonedx-python-lib[json-validation]'
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
