/*
 * The ops listener: /metrics (Prometheus text), /healthz (the process runs)
 * and /readyz (it accepts mail: listener up, rules loaded, not draining).
 * Read-only and unauthenticated by design, so it binds loopback by default.
 */
import { createServer, type Server } from 'node:http';
import type { Endpoint } from '../config/address';
import type { Metrics } from './metrics';

export interface Readiness {
  ready(): { ok: boolean; detail: Record<string, unknown> };
}

export function startOpsServer(at: Endpoint, metrics: Metrics, readiness: Readiness): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end('metrics collection failed\n'),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}\n');
    } else if (path === '/readyz') {
      const r = readiness.ready();
      res.writeHead(r.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: r.ok, ...r.detail }) + '\n');
    } else {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
