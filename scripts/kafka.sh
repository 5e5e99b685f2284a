#!/usr/bin/env bash
# Provisions a real Apache Kafka broker for the Kafka bridge tests (issue 8), without a Kafka distribution:
# the server jars and every runtime dependency come from Maven Central (org.apache.kafka:kafka_2.13 and the
# log4j2 binding the distribution ships), resolved by Maven from a tiny generated pom, and land in a cache
# outside the repo:
#
#   ${SMQ_KAFKA_CACHE:-${XDG_CACHE_HOME:-~/.cache}/smq}/kafka-<version>/lib/*.jar   (about 45 MB)
#
# Maven's own download cache stays where Maven keeps it (~/.m2/repository), and Maven reaches the registry
# through whatever this machine configures (settings.xml, mirrors, proxies): no repository is named here.
# test/helpers/kafka.ts runs `java -cp <cache>/lib/* kafka.Kafka` from that directory, in KRaft mode.
#
# Next to lib/ it keeps kafka.jsa, a class-data-sharing archive of the classes a starting broker loads, made
# by one throwaway broker on loopback: with it the JVM reaches "Kafka Server started" in about half the time.
# It belongs to one JVM build (recorded in kafka.jsa.java) and is remade when `java` changes; without it, or
# when the JVM rejects it, Kafka simply starts slower.
#
# Also installs what it needs when missing: a Java runtime (Debian's openjdk-17-jre-headless; Kafka 4 brokers
# need Java 17+) and Maven (Debian's maven). Safe to run repeatedly: when the cache is complete it checks the
# jars and does nothing else. Called from scripts/provision.sh.
#
# Usage: scripts/kafka.sh              ensure the cache (and Java, Maven)
#        scripts/kafka.sh --print-home  print the cache directory for this version, change nothing
# Environment: SMQ_KAFKA_VERSION (default below), SMQ_KAFKA_CACHE (parent of kafka-<version>).
set -euo pipefail

# Kafka 4.x is KRaft only. LOG4J_VERSION is the log4j2 that this Kafka's pom pulls in (log4j-api/core): the
# SLF4J binding below must match it, as in the binary distribution's libs/.
KAFKA_VERSION="${SMQ_KAFKA_VERSION:-4.4.0}"
SCALA_VERSION=2.13
LOG4J_VERSION=2.25.5

CACHE_ROOT="${SMQ_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smq}"
KAFKA_HOME="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIB="$KAFKA_HOME/lib"
# Written last, listing every jar: its presence means a complete download.
MANIFEST="$KAFKA_HOME/jars.txt"

if [ "${1:-}" = "--print-home" ]; then
  printf '%s\n' "$KAFKA_HOME"
  exit 0
fi
if [ $# -gt 0 ]; then
  printf 'usage: %s [--print-home]\n' "$0" >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
log() { printf '[kafka] %s\n' "$*"; }
die() { printf '[kafka] ERROR: %s\n' "$*" >&2; exit 1; }

# A complete cache: the manifest exists and every jar it names is still there.
cache_complete() {
  [ -s "$MANIFEST" ] || return 1
  local jar
  while IFS= read -r jar; do
    [ -s "$LIB/$jar" ] || return 1
  done <"$MANIFEST"
}

# Major version of `java` on PATH (8 for "1.8.0_x", 17 for "17.0.15"), empty when there is none.
java_major() {
  command -v java >/dev/null 2>&1 || return 0
  java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9.]*\).*/\1/p' | head -1 |
    awk -F. '{ print ($1 == 1 ? $2 : $1) }'
}

apt_install() {
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      die "need root (or passwordless sudo) to install: $* — install them by hand and re-run"
    fi
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: $*"
  log "installing Debian packages: $*"
  local apt=("${sudo[@]}" apt-get -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  if ! "${apt[@]}" install --no-install-recommends "$@" </dev/null; then
    log "install failed; refreshing package lists (apt-get update) and retrying"
    "${sudo[@]}" apt-get update -q </dev/null
    "${apt[@]}" install --no-install-recommends "$@" </dev/null || die "apt-get could not install: $*"
  fi
}

# Whatever this run leaves behind when it stops early: Maven's work directory, the throwaway broker.
work=""
archive_dir=""
archive_pid=""
cleanup() {
  if [ -n "$archive_pid" ]; then
    kill -KILL "$archive_pid" 2>/dev/null || true
    wait "$archive_pid" 2>/dev/null || true
  fi
  [ -z "$archive_dir" ] || rm -rf "$archive_dir"
  [ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The class-data archive is current when it exists and was made by the `java` now on PATH.
ARCHIVE="$KAFKA_HOME/kafka.jsa"
java_build() { java -version 2>&1 | tr '\n' ' '; }
archive_current() {
  [ -s "$ARCHIVE" ] && [ -f "$ARCHIVE.java" ] && [ "$(cat "$ARCHIVE.java")" = "$(java_build)" ]
}

# A free loopback port from the kernel (node is there: the tests run on it).
free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# Starts one broker with -XX:ArchiveClassesAtExit, waits for "Kafka Server started", stops it with SIGTERM
# (the JVM writes the archive as it exits) and moves the archive into place. The JVM options and classpath
# match test/helpers/kafka.ts's defaults, as the JVM requires. A failure here only costs start-up time, so
# it warns and goes on.
make_archive() {
  local dir port cport pid i cluster
  local jvm=()
  if ! command -v node >/dev/null 2>&1; then
    log "WARNING: node not on PATH (needed to pick free ports); no class archive, Kafka will start slower"
    return 0
  fi
  log "making the class-data archive (one broker on loopback, a few seconds)"
  dir="$(mktemp -d "$KAFKA_HOME/.archive.XXXXXX")"
  [ -n "$dir" ] && [ -d "$dir" ] || die "could not make a temporary directory in $KAFKA_HOME"
  archive_dir="$dir"
  port="$(free_port)"
  cport="$(free_port)"
  cluster="$(node -e 'console.log(require("crypto").randomBytes(16).toString("base64url"))')"
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
PROPS
  cat >"$dir/log4j2.properties" <<'LOG4J'
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = %p %m (%c)%n
LOG4J
  jvm=(-Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -Djava.awt.headless=true
       "-Dlog4j2.configurationFile=$dir/log4j2.properties" -cp "$LIB/*")
  if ! java "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster" -c "$dir/server.properties" \
      >"$dir/format.log" 2>&1; then
    tail -n 20 "$dir/format.log" >&2
    log "WARNING: kafka.tools.StorageTool format failed (above); no class archive, Kafka will start slower"
    rm -rf "$dir"
    return 0
  fi
  java -XX:ArchiveClassesAtExit="$dir/kafka.jsa" "${jvm[@]}" kafka.Kafka "$dir/server.properties" \
    >"$dir/kafka.log" 2>&1 &
  pid=$!
  archive_pid=$pid
  for i in $(seq 1 1200); do
    grep -q 'Kafka Server started' "$dir/kafka.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q 'Kafka Server started' "$dir/kafka.log"; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    tail -n 30 "$dir/kafka.log" >&2
    log "WARNING: the throwaway broker did not start (above); no class archive, Kafka will start slower"
    rm -rf "$dir"
    return 0
  fi
  # Controlled shutdown, then the JVM writes the archive: seconds. SIGKILL after 60 s.
  kill -TERM "$pid"
  for i in $(seq 1 600); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -s "$dir/kafka.jsa" ]; then
    java_build >"$dir/java"
    mv "$dir/kafka.jsa" "$ARCHIVE"
    mv "$dir/java" "$ARCHIVE.java"
    log "class archive ready: $ARCHIVE ($(du -sh "$ARCHIVE" | cut -f1))"
  else
    tail -n 10 "$dir/kafka.log" >&2
    log "WARNING: the JVM wrote no class archive (above); Kafka will start slower"
  fi
  rm -rf "$dir"
  archive_dir=""
  archive_pid=""
}

# --- Java: needed by the tests on every run, so checked even when the jars are cached ------------------
major="$(java_major)"
if [ -z "$major" ] || [ "$major" -lt 17 ]; then
  apt_install openjdk-17-jre-headless
  major="$(java_major)"
  [ -n "$major" ] && [ "$major" -ge 17 ] ||
    die "\`java\` on PATH is ${major:-missing} after installing openjdk-17-jre-headless; Kafka $KAFKA_VERSION needs 17+ (select it with update-alternatives --config java)"
fi

if cache_complete && archive_current; then
  log "Kafka $KAFKA_VERSION present in $LIB ($(wc -l <"$MANIFEST") jars, class archive), java $major"
  exit 0
fi
if cache_complete; then
  make_archive
  exit 0
fi

# --- Maven -------------------------------------------------------------------------------------------
if ! command -v mvn >/dev/null 2>&1; then
  apt_install maven
fi
command -v mvn >/dev/null 2>&1 || die "mvn still missing after installing Debian's maven"

log "fetching Kafka $KAFKA_VERSION (kafka_$SCALA_VERSION) and its runtime dependencies from Maven Central into $LIB"
mkdir -p "$KAFKA_HOME"
work="$(mktemp -d "$KAFKA_HOME/.fetch.XXXXXX")"

# A pom with no code of its own: its dependencies are what a KRaft broker and the storage tool load
# (kafka_2.13 brings kafka-server, -metadata, -raft, -storage, the coordinators, clients, scala-library,
# log4j-api/core and slf4j-api); log4j-slf4j-impl routes Kafka's SLF4J logging into log4j2.
cat >"$work/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>smq.test</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_$SCALA_VERSION</artifactId>
      <version>$KAFKA_VERSION</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>$LOG4J_VERSION</version>
    </dependency>
  </dependencies>
</project>
EOF

# -B: no progress bars or colours; the full output goes to a file and is shown only when Maven fails.
if ! mvn -B -q -Dstyle.color=never -f "$work/pom.xml" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$work/lib" \
    >"$work/mvn.log" 2>&1; then
  tail -n 40 "$work/mvn.log" >&2
  die "Maven could not resolve org.apache.kafka:kafka_$SCALA_VERSION:$KAFKA_VERSION (output above); is Maven Central reachable with this machine's Maven settings?"
fi

main_jar="kafka_$SCALA_VERSION-$KAFKA_VERSION.jar"
[ -s "$work/lib/$main_jar" ] || die "Maven finished but $main_jar is not among the copied jars"
# The helper starts these two classes; a future Kafka that moves them should fail here, not in a test.
jar_list() {
  if command -v unzip >/dev/null 2>&1; then
    unzip -Z1 "$1"
  elif command -v python3 >/dev/null 2>&1; then
    python3 -c 'import sys, zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$1"
  fi
}
classes="$(jar_list "$work/lib/$main_jar")"
if [ -n "$classes" ]; then
  for cls in kafka/Kafka.class kafka/tools/StorageTool.class; do
    grep -qx "$cls" <<<"$classes" ||
      die "$main_jar has no $cls: this Kafka version is not laid out as test/helpers/kafka.ts expects"
  done
fi

# Replace any partial lib/ by the complete one, then write the manifest last.
rm -rf "$LIB" "$MANIFEST"
mv "$work/lib" "$LIB"
(cd "$LIB" && ls -1 -- *.jar) >"$MANIFEST.tmp"
mv "$MANIFEST.tmp" "$MANIFEST"
log "Kafka $KAFKA_VERSION ready: $(wc -l <"$MANIFEST") jars, $(du -sh "$LIB" | cut -f1) in $LIB"
# New jars invalidate any old archive.
rm -f "$ARCHIVE" "$ARCHIVE.java"
make_archive
