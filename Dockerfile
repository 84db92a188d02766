# mailveil: multi-stage build on the current Node LTS, run as an unprivileged user.
FROM node:lts-bookworm-slim AS build
WORKDIR /app
# g++/make/python3 are for native addons (re2 builds from source).
RUN apt-get update && apt-get install -y --no-install-recommends g++ make python3 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN npm ci && npm prune --omit=dev

FROM node:lts-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json ./
COPY bin ./bin
COPY rules.d ./rules.d
RUN mkdir -p /var/lib/mailveil && chown node:node /var/lib/mailveil
USER node
VOLUME ["/var/lib/mailveil"]
EXPOSE 10025 9464
# In a container the listeners must bind all interfaces; `clients` (config)
# still decides who may send mail, so mount a config that names Postfix's network.
CMD ["node", "bin/mailveil", "serve", "--listen", "0.0.0.0:10025", "--metrics", "0.0.0.0:9464", "--state-dir", "/var/lib/mailveil", "--rules", "/app/rules.d"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:9464/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
