#!/usr/bin/env bash
# Prints the path of a libFuzzer addon of Jazzer.js that loads on this machine, building it first if needed.
#
# Jazzer.js 4 ships its native addon prebuilt (node_modules/@jazzer.js/fuzzer/prebuilds/fuzzer-linux-x64.node),
# linked against glibc 2.38 and GCC 13's libstdc++. On an older system (Debian 12: glibc 2.36, GCC 12) it fails
# to load for three symbols: __isoc23_strtol, __isoc23_strtoul (GLIBC_2.38) and std::ios_base_library_init()
# (GLIBCXX_3.4.32). When that is so, this script makes a copy that loads, outside the repository:
#   1. compat.cc, compiled here, defines the three symbols;
#   2. relax-versions.py marks those two versions weak in the copy and unversions the three symbols;
#   3. patchelf makes the copy load the compat library from its own directory.
# Nothing patched is committed: the copy lives in ~/.cache/smq/jazzer/<hash of the stock addon>/, so a new
# Jazzer.js gets a new one. Where the stock addon loads as it is, its own path is printed and nothing is built.
# Needs g++, python3 and patchelf (scripts/provision.sh installs them). Safe to run repeatedly and at once.
set -euo pipefail
cd "$(dirname "$0")/../../.."

die() { printf '[jazzer] ERROR: %s\n' "$*" >&2; exit 1; }
loads() { node -e 'process.dlopen({ exports: {} }, process.argv[1])' "$1" 2>/dev/null; }

stock="$PWD/node_modules/@jazzer.js/fuzzer/prebuilds/fuzzer-linux-x64.node"
[ -f "$stock" ] || die "$stock not found: is @jazzer.js/core installed (npm ci)?"
if loads "$stock"; then
  echo "$stock"
  exit 0
fi

key="$(sha256sum "$stock" | cut -c1-16)"
dir="${SMQ_CACHE_DIR:-$HOME/.cache/smq}/jazzer/$key"
addon="$dir/fuzzer-linux-x64.node"
if [ -f "$addon" ] && loads "$addon"; then
  echo "$addon"
  exit 0
fi

for tool in g++ python3 patchelf; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/provision.sh installs it)"
done
mkdir -p "$(dirname "$dir")"
tmp="$(mktemp -d "$dir.XXXXXX")"
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
src=test/fuzz/jazzer
g++ -O2 -shared -fPIC -o "$tmp/libjazzer-compat.so" "$src/compat.cc"
cp "$stock" "$tmp/fuzzer-linux-x64.node"
python3 "$src/relax-versions.py" "$tmp/fuzzer-linux-x64.node" GLIBC_2.38 GLIBCXX_3.4.32 >&2
# Two calls: patchelf 0.14 given both options at once writes the wrong string into RUNPATH.
patchelf --set-rpath '$ORIGIN' "$tmp/fuzzer-linux-x64.node"
patchelf --add-needed libjazzer-compat.so "$tmp/fuzzer-linux-x64.node"
if ! loads "$tmp/fuzzer-linux-x64.node"; then
  node -e 'process.dlopen({ exports: {} }, process.argv[1])' "$tmp/fuzzer-linux-x64.node" || true
  die "the patched addon still does not load (a Jazzer.js version that needs more than these three symbols?)"
fi
# Another run may have finished first; either copy is the same.
mv -T "$tmp" "$dir" 2>/dev/null || true
[ -f "$addon" ] || die "could not place the addon in $dir"
echo "$addon"
