# syntax=docker/dockerfile:1
# The pulling-agent image: one agent process, configured by environment variables
# (docs/configuration.md; Kubernetes manifests in deploy/kubernetes, docs/kubernetes.md).
#   build   compiles the TypeScript with every dependency
#   deps    installs the production dependencies only, with better-sqlite3's native addon
#   (final) node:<version>-bookworm-slim with dist/, those node_modules and the dashboard's files,
#           run as the unprivileged user 10001, writing only to DATA_DIR (/data) and /tmp
# No Docker engine runs in this project's CI, so this file is reviewed by reading, not built there.
#   docker build -t pulling-agent:0.1.0 .
#   docker run --read-only --tmpfs /tmp -v pa-data:/data -p 8000:8000 pulling-agent:0.1.0

# One Node.js major for every stage: the native addon built in `deps` must match the runtime's
# ABI, and bookworm and bookworm-slim share the C library it links against. 24 is the newest line
# CI tests; 22 and 20 build too (--build-arg NODE_VERSION=22), 20 being past its end of life.
ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `npm ci` would run our `prepare` script (a build) before the sources are here,
# and compiling TypeScript needs no native addon.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM node:${NODE_VERSION}-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only. --ignore-scripts skips our `prepare` (tsc, a dev dependency, is not
# installed here) and every dependency's install script; then only better-sqlite3's runs: a
# prebuilt binary, or a compile with the python3, make and g++ of this full image, against the
# headers it ships (nodedir, so node-gyp downloads none). The last line proves the addon loads.
ENV npm_config_nodedir=/usr/local
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm rebuild better-sqlite3 \
  && node -e "new (require('better-sqlite3'))(':memory:').close()"

FROM node:${NODE_VERSION}-bookworm-slim
# tini as PID 1 forwards SIGTERM (and SIGUSR1/SIGUSR2, local pause/resume) to Node and reaps
# zombies. Node itself as PID 1 would ignore a SIGTERM that arrives before its handlers are
# installed (the kernel gives PID 1 no default actions), and the kubelet would wait for SIGKILL.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/* \
  && groupadd --system --gid 10001 agent \
  && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin agent \
  && mkdir /data \
  && chown 10001:10001 /data
WORKDIR /app
# The code stays owned by root: the agent can read it, not change it.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# Read at run time: the dashboard's static files (tsc does not copy them into dist/), and
# package.json ("type": "module" for dist/, and the version the agent reports).
COPY --from=build /app/src/http/dashboard ./src/http/dashboard
COPY package.json ./
ENV NODE_ENV=production \
  PORT=8000 \
  HOST=0.0.0.0 \
  DATA_DIR=/data \
  CONTROL_FILE=/tmp/control/state
USER 10001:10001
# The embedded SQLite store's folder; a shared store (STORE_URL=postgres://… or mongodb://…) writes
# nothing there. /tmp must be writable too (docker run --tmpfs /tmp; an emptyDir in Kubernetes).
VOLUME ["/data"]
EXPOSE 8000
# For Docker only: Kubernetes uses the Deployment's probes and ignores this.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/src/cli/pulling-agent.js"]
