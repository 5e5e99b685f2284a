# syntax=docker/dockerfile:1
#
# smq: the MQTT broker and its Kubernetes operator in one image.
#
#   docker build -t smq:0.1.0 .
#   docker run --rm -p 1883:1883 -p 8083:8083 -p 8888:8888 smq:0.1.0        # the broker (entrypoint `smq`)
#   docker run --rm smq:0.1.0 -v                                           # any smq arguments replace CMD
#   docker run --rm --entrypoint node smq:0.1.0 bin/smq-operator.js          # the operator
#
# In Kubernetes the chart's operator Deployment sets `command: [node, bin/smq-operator.js]`, and the operator
# gives broker pods the default entrypoint with their own `-c`.

ARG NODE_VERSION=20

# --- build: compile TypeScript, then keep only the production dependencies -----------------------------
# The full Debian image has python3, make and g++, should a native module (lmdb, msgpackr-extract) find no
# prebuilt binary for the target platform. Same Debian release as the runtime stage, so same glibc.
FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /src
# swagger-ui-express pulls in @scarf/scarf, whose install script reports the installation home.
ENV SCARF_ANALYTICS=false \
    npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
# Manifests first: the dependency layer is reused until package*.json change (and npm's download cache
# across builds, through BuildKit's cache mount).
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci
COPY tsconfig.json ./
COPY broker ./broker
COPY operator ./operator
# .dockerignore keeps *.test.ts, test/ and bench/ out of the context, so dist/ holds only what runs.
RUN npm run build \
 && npm prune --omit=dev

# --- runtime ------------------------------------------------------------------------------------------
FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production
# A fixed, non-root uid/gid (10001, no clash with the image's `node` user 1000), so that Kubernetes'
# runAsNonRoot can check it and fsGroup can give it the volume. No home directory, no login shell.
RUN groupadd --system --gid 10001 smq \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin smq \
 && mkdir -p /etc/smq /var/lib/smq \
 && chown 10001:10001 /var/lib/smq
WORKDIR /app
# Everything the process runs is owned by root and read-only to it; only /var/lib/smq is its own.
# What runs: the compiled code, the launchers, production node_modules, package.json (smq -v reads its
# version) and the gRPC .proto of notifications (loaded at run time, relative to dist/).
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY broker/proto ./broker/proto
COPY docker/smq.yaml /etc/smq/smq.yaml
USER 10001:10001
# 1883 MQTT, 8883 MQTT over TLS, 8083 MQTT over WebSocket, 8888 HTTP API, health and metrics.
EXPOSE 1883 8883 8083 8888
# /var/lib/smq is store.dir: mount a volume there to keep sessions, retained messages and the node id (no
# VOLUME instruction, which would give every `docker run` an anonymous volume no derived image can remove).
# The same V8 flags as bin/smq.js's shebang (measured there; test 94 checks they match). node is PID 1 and
# smq handles SIGTERM itself (drain, then exit), so no init process is needed. No HEALTHCHECK: Kubernetes
# ignores it and probes /healthz and /readyz on 8888 itself.
ENTRYPOINT ["node", "--max-semi-space-size=4", "--interrupt-budget=8192", "bin/smq.js"]
CMD ["-c", "/etc/smq/smq.yaml"]
