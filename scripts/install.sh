#!/usr/bin/env bash
# Install the ocibuild release binary for this machine (linux x86_64 or aarch64), checked
# against the release's SHA256SUMS; where the release has no asset for this machine, build it
# with `cargo install`. A checksum that does not match stops the install (never a fallback).
#
# Settings (environment):
#   OCIBUILD_VERSION      the release tag, e.g. v0.2.0 (required)
#   OCIBUILD_REPO         owner/name on GitHub (default: the repository this script is in, as
#                         GITHUB_ACTION_REPOSITORY says inside the action; else ocibuild/ocibuild)
#   OCIBUILD_BASE_URL     where the assets are (default: the GitHub release of that tag);
#                         file:// works, for tests and mirrors
#   OCIBUILD_INSTALL_DIR  where the binary goes (default: ~/.local/bin)
set -euo pipefail

version="${OCIBUILD_VERSION:?set OCIBUILD_VERSION to a release tag, e.g. v0.2.0}"
repo="${OCIBUILD_REPO:-${GITHUB_ACTION_REPOSITORY:-ocibuild/ocibuild}}"
base="${OCIBUILD_BASE_URL:-https://github.com/$repo/releases/download/$version}"
dest="${OCIBUILD_INSTALL_DIR:-$HOME/.local/bin}"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64 | Linux-amd64) target=x86_64-unknown-linux-gnu ;;
  Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
  *) target="" ;;
esac
asset="ocibuild-${version#v}-$target.tar.gz"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fetched=false
if [[ -n $target ]] \
  && curl -fsSL "$base/SHA256SUMS" -o "$tmp/SHA256SUMS" \
  && curl -fsSL "$base/$asset" -o "$tmp/$asset"; then
  fetched=true
fi

if $fetched; then
  want="$(awk -v a="$asset" '$2 == a || $2 == "*" a { print $1 }' "$tmp/SHA256SUMS")"
  if [[ -z $want ]]; then
    echo "error: $asset is not listed in $base/SHA256SUMS: refusing to install it" >&2
    exit 1
  fi
  got="$(sha256sum "$tmp/$asset" | cut -d' ' -f1)"
  if [[ $want != "$got" ]]; then
    echo "error: $asset has sha256 $got but SHA256SUMS says $want: refusing to install it" >&2
    exit 1
  fi
  tar -xzf "$tmp/$asset" -C "$tmp"
  install -D -m 0755 "$tmp/ocibuild" "$dest/ocibuild"
else
  echo "no release asset for ${target:-this machine} at $base: building ocibuild $version with cargo install" >&2
  cargo install --locked --git "https://github.com/$repo" --tag "$version" --root "$(dirname "$dest")" ocibuild
fi
echo "installed $("$dest/ocibuild" --version) in $dest"
