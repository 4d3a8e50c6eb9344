#!/usr/bin/env bash
# Debian trixie's skopeo (1.18) for the signing tests, never installed system-wide.
#
# Debian bookworm's skopeo 1.9.3 is built without sigstore signing and verification, which the
# tests of cosign-format signatures need. This script fetches trixie's skopeo and the libraries
# it links (with trixie's libc6, whose glibc it needs) with `apt-get download` against a private
# apt state, unpacks them with `dpkg-deb -x` into a cache directory and writes a wrapper that
# runs the binary through trixie's dynamic loader:
#
#   ${OCIBUILD_TEST_CACHE:-$HOME/.cache/ocibuild-tests}/skopeo-trixie/skopeo
#
# Idempotent: when the wrapper exists and runs, it does nothing. Prints the wrapper's path.
set -euo pipefail

cache="${OCIBUILD_TEST_CACHE:-$HOME/.cache/ocibuild-tests}/skopeo-trixie"
wrapper="$cache/skopeo"
if [[ -x $wrapper ]] && "$wrapper" --version >/dev/null 2>&1; then
  echo "$wrapper"
  exit 0
fi

# The mirror this machine's apt uses (deb.debian.org when none is configured).
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts" "$work/prefs" "$work/debs"
echo "deb [arch=$arch] $mirror trixie main" >"$work/sources.list"
: >"$work/status"
apt_opts=(
  -o "Dir::Etc::sourcelist=$work/sources.list"
  -o "Dir::Etc::sourceparts=$work/parts"
  -o "Dir::Etc::preferencesparts=$work/prefs"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::State::status=$work/status"
  -o "Dir::Cache=$work/cache"
  -o "APT::Architecture=$arch"
  -o "APT::Architectures=$arch"
  -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=root"
)
echo "skopeo-trixie: fetching trixie's package lists from $mirror" >&2
apt-get "${apt_opts[@]}" -q update >&2

# skopeo and the library packages it needs, following only library packages (skopeo links
# libgpgme, libsqlite3 and libc; gpgme's own recommendation of gnupg would pull in hundreds).
deps_of() {
  apt-cache "${apt_opts[@]}" depends --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "$1" | sed -nE 's/^ +\|?(Pre)?Depends: ([^ <>]+)$/\2/p' \
    | grep -E '^(lib[^ ]*|gcc-[0-9]+-base)$' || true
}
declare -A seen=([skopeo]=1)
queue=(skopeo)
while ((${#queue[@]})); do
  pkg=${queue[0]}
  queue=("${queue[@]:1}")
  for dep in $(deps_of "$pkg"); do
    [[ -n ${seen[$dep]:-} ]] && continue
    seen[$dep]=1
    queue+=("$dep")
  done
done
pkgs=("${!seen[@]}")
echo "skopeo-trixie: downloading ${pkgs[*]}" >&2
(cd "$work/debs" && apt-get "${apt_opts[@]}" -q download "${pkgs[@]}" >&2)

rm -rf "$cache.new"
mkdir -p "$cache.new/root"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$cache.new/root"
done
case $arch in
  amd64) loader=lib64/ld-linux-x86-64.so.2; triplet=x86_64-linux-gnu ;;
  arm64) loader=lib/ld-linux-aarch64.so.1; triplet=aarch64-linux-gnu ;;
  *) echo "skopeo-trixie: unsupported architecture $arch" >&2; exit 1 ;;
esac
root="$cache/root"
libs="$root/usr/lib/$triplet:$root/lib/$triplet"
cat >"$cache.new/skopeo" <<WRAP
#!/bin/sh
# trixie's skopeo, run through trixie's loader and libraries (scripts/skopeo-trixie.sh).
exec "$root/usr/$loader" --library-path "$libs" "$root/usr/bin/skopeo" "\$@"
WRAP
# usrmerge: the loader may be under usr/lib64 or lib64 in the package.
if [[ ! -e $cache.new/root/usr/$loader ]]; then
  sed -i "s#$root/usr/$loader#$root/$loader#" "$cache.new/skopeo"
fi
chmod +x "$cache.new/skopeo"
rm -rf "$cache"
mv "$cache.new" "$cache"
"$wrapper" --version >&2
echo "$wrapper"
