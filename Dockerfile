# mailveil: multi-stage build on Node.js 24 LTS (pinned major, both stages
# alike), run as the unprivileged `node` user with its config at
# /etc/mailveil/mailveil.yaml (docker/mailveil.yaml; mount your own over it).
#
#   docker build --build-arg MAILVEIL_SOURCE=<repository URL> -t mailveil .
#   docker run -d --stop-timeout 75 \
#     -v /srv/mailveil/mailveil.yaml:/etc/mailveil/mailveil.yaml:ro \
#     -v mailveil-state:/var/lib/mailveil -p 10025:10025 -p 9464:9464 mailveil
#
# --stop-timeout: SIGTERM drains (in-flight messages finish, up to
# timeouts.drain, 60s by default); Docker's own default of 10s would SIGKILL
# a drain half-way.

FROM node:24-bookworm-slim AS build
WORKDIR /app
# g++/make/python3 are for native addons (re2 builds from source when no
# prebuilt binary can be fetched).
RUN apt-get update && apt-get install -y --no-install-recommends g++ make python3 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
# `npm ci` builds dist/ through the prepare script (tsconfig covers src, test
# and bench, hence the copies above); only dist/src goes into the image.
RUN npm ci && npm prune --omit=dev

FROM node:24-bookworm-slim
# Keep MAILVEIL_VERSION in step with package.json's version.
ARG MAILVEIL_VERSION=0.1.0
ARG MAILVEIL_SOURCE=""
LABEL org.opencontainers.image.title="mailveil" \
      org.opencontainers.image.description="SMTP privacy-and-DLP filtering relay for Postfix: header anonymisation, PII detection, quarantine, enforced TLS" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${MAILVEIL_VERSION}" \
      org.opencontainers.image.source="${MAILVEIL_SOURCE}"
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json LICENSE ./
COPY bin ./bin
COPY rules.d ./rules.d
# Root-owned and read-only for the service user, like any file under /etc.
COPY docker/mailveil.yaml /etc/mailveil/mailveil.yaml
# state_dir: created empty and owned by the service user, so that `serve`
# takes it as its own on first start.
RUN mkdir -p /var/lib/mailveil && chown node:node /var/lib/mailveil && chmod 0750 /var/lib/mailveil
USER node
VOLUME ["/var/lib/mailveil"]
EXPOSE 10025 9464
# Every setting comes from the config file, so a mounted config takes effect
# whole; the shipped one listens on 0.0.0.0 and keeps `clients` at loopback.
# Other commands find the same file by default:
#   docker exec <container> node bin/mailveil quarantine list
CMD ["node", "bin/mailveil", "serve", "--config", "/etc/mailveil/mailveil.yaml"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:9464/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
