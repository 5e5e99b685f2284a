#!/usr/bin/env bash
# Installs what the black-box tests need when it is missing, so a fresh machine (or CI) can run `npm test`:
#   - mosquitto_pub / mosquitto_sub (Debian's mosquitto-clients): real third-party clients in test/20-*;
#   - mosquitto itself: the reference broker for SMQ_TEST_AGAINST=mosquitto and the benchmarks;
#   - etcd (Debian's etcd-server): the cluster tests (test/60-*) start their own on loopback;
#   - python3 with paho-mqtt 2.x: test/21-paho drives test/fixtures/paho_client.py;
#   - chromium (Debian's): test/72 opens Swagger UI in it headless, through playwright-core (an npm dev
#     dependency, which never downloads a browser of its own here);
#   - promtool (Debian's prometheus package): test/74 lints the /metrics page with `promtool check metrics`;
#   - schemathesis 4.x (PyPI): test/73 fuzzes the HTTP API against its OpenAPI document;
#   - node_modules (npm ci) when absent;
#   - Apache Kafka's jars from Maven Central, with Java and Maven (scripts/kafka.sh): the Kafka bridge tests
#     start a KRaft broker on loopback through test/helpers/kafka.ts; cached in ~/.cache/smq/kafka-<version>.
#   - kube-apiserver, etcd and helm built from the Go module proxy (scripts/kube.sh; it fetches a new enough Go itself when needed): the operator
#     and chart tests start an API server on loopback through test/helpers/kube.ts; cached in
#     ~/.cache/smq/kube-<version>/bin. The first build takes about ten minutes on two cores.
# Caches stay where the tools keep them by default (~/.npm, ~/.cache/pip, /var/cache/apt), outside the repo.
# Safe to run repeatedly: every step checks first and does nothing when the tool is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive

log() { printf '[provision] %s\n' "$*"; }
die() { printf '[provision] ERROR: %s\n' "$*" >&2; exit 1; }

# apt needs root; use sudo when it is there and needs no password, otherwise say what to install by hand.
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    SUDO=(__no_root__)
  fi
fi

# apt_install PKG...: tries the install as is first (fast when the package lists are present) and runs
# `apt-get update` only if that fails, then tries once more.
apt_install() {
  if [ "${SUDO[0]:-}" = "__no_root__" ]; then
    die "need root (or passwordless sudo) to install: $* — install them by hand and re-run"
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: $*"
  log "installing Debian packages: $*"
  local apt=("${SUDO[@]}" apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if ! "${apt[@]}" install --no-install-recommends "$@" </dev/null; then
    log "install failed; refreshing package lists (apt-get update) and retrying"
    "${SUDO[@]}" apt-get update -q </dev/null
    "${apt[@]}" install --no-install-recommends "$@" </dev/null
  fi
}

# --- Debian packages -------------------------------------------------------------------------------
missing=()
if ! command -v mosquitto_pub >/dev/null 2>&1 || ! command -v mosquitto_sub >/dev/null 2>&1; then
  missing+=(mosquitto-clients)
fi
# The broker binary lives in /usr/sbin, which is not always on a non-root PATH.
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  missing+=(mosquitto)
fi
if ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3 python3-pip)
fi
if ! command -v etcd >/dev/null 2>&1; then
  missing+=(etcd-server)
fi
if [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
# promtool comes with Debian's server package (there is no promtool-only package). The tests never start
# the server; in containers policy-rc.d keeps the package's service from starting at install.
if ! command -v promtool >/dev/null 2>&1; then
  missing+=(prometheus)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
else
  log "mosquitto, mosquitto_pub, mosquitto_sub, etcd, chromium, promtool and python3 present"
fi

# --- paho-mqtt 2.x for python3 ---------------------------------------------------------------------
paho_ok() {
  python3 - <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import paho.mqtt.client  # noqa: F401
sys.exit(0 if version("paho-mqtt").split(".")[0] == "2" else 1)
PY
}
if paho_ok; then
  log "python3 paho-mqtt 2.x present"
else
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  log "installing python3 paho-mqtt>=2,<3 (pip)"
  pip_args=(install --quiet --disable-pip-version-check --no-input 'paho-mqtt>=2,<3')
  # A Debian system python refuses plain pip installs (PEP 668); fall back to overriding that, since
  # Debian's own python3-paho-mqtt is 1.x and the fixture needs the 2.x callback API.
  if ! python3 -m pip "${pip_args[@]}"; then
    log "plain pip install failed; retrying with --break-system-packages"
    python3 -m pip "${pip_args[@]}" --break-system-packages
  fi
  paho_ok || die "paho-mqtt 2.x still not importable by python3"
fi

# --- schemathesis 4.x for python3 ------------------------------------------------------------------
# test/73 runs it as `python3 -m schemathesis.cli`, so it needs no bin directory on PATH.
schemathesis_ok() {
  python3 - <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import schemathesis.cli  # noqa: F401
sys.exit(0 if version("schemathesis").split(".")[0] == "4" else 1)
PY
}
if schemathesis_ok; then
  log "python3 schemathesis 4.x present"
else
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  log "installing python3 schemathesis>=4,<5 (pip)"
  pip_args=(install --quiet --disable-pip-version-check --no-input 'schemathesis>=4,<5')
  # As for paho-mqtt: Debian's system python refuses plain pip installs (PEP 668), and Debian has no
  # schemathesis package.
  if ! python3 -m pip "${pip_args[@]}"; then
    log "plain pip install failed; retrying with --break-system-packages"
    python3 -m pip "${pip_args[@]}" --break-system-packages
  fi
  schemathesis_ok || die "schemathesis 4.x still not importable by python3"
fi

# --- node dependencies -----------------------------------------------------------------------------
if [ ! -d node_modules ]; then
  log "node_modules missing: npm ci"
  npm ci --no-audit --no-fund
else
  log "node_modules present"
fi

# --- Jazzer.js libFuzzer addon (fuzzing, issue 10: test/97-fuzz, scripts/fuzz.sh) --- begin -------------
# Jazzer.js 4 ships its libFuzzer addon prebuilt for glibc 2.38 and GCC 13's libstdc++. Where it does not
# load as shipped (Debian 12), test/fuzz/jazzer/build.sh makes a copy that does, in
# ~/.cache/smq/jazzer/<hash of the addon>/ (never in the repository or node_modules); it needs g++, python3
# and patchelf. Does nothing when the addon loads, or when the copy is already there.
jazzer_addon=node_modules/@jazzer.js/fuzzer/prebuilds/fuzzer-linux-x64.node
if [ -f "$jazzer_addon" ] && ! node -e 'process.dlopen({ exports: {} }, process.argv[1])' "$PWD/$jazzer_addon" 2>/dev/null; then
  jazzer_missing=()
  command -v g++ >/dev/null 2>&1 || jazzer_missing+=(g++)
  command -v patchelf >/dev/null 2>&1 || jazzer_missing+=(patchelf)
  if [ "${#jazzer_missing[@]}" -gt 0 ]; then
    apt_install "${jazzer_missing[@]}"
  fi
  log "Jazzer.js addon that loads here: $(bash test/fuzz/jazzer/build.sh)"
else
  log "Jazzer.js addon loads as shipped (or Jazzer.js is not installed)"
fi
# --- Jazzer.js libFuzzer addon --- end ----------------------------------------------------------------------

# --- Apache Kafka (jars from Maven Central, Java, Maven) ---------------------------------------------
bash scripts/kafka.sh

# --- Kubernetes API server, etcd and helm (built from the Go module proxy) ----------------------------
bash scripts/kube.sh

log "done"
