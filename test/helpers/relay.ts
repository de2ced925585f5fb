// A TCP relay between agents and their store that can forget its connections the way a NAT or a
// firewall does: on `freeze()` every connection open at that moment stops carrying bytes in both
// directions, without a FIN or a RST to either side, while connections opened afterwards work.
// Bytes sent into a frozen connection are read and dropped, so the sender's writes succeed and its
// TCP keep-alive probes are answered by this machine's kernel: only the agent's own deadlines
// (STORE_TIMEOUT, the listen connection's keep-alive query, the driver's monitoring) can notice,
// which is stricter than a real NAT, where keep-alive probes would fail after a few minutes.
// The server's side of a frozen connection stays open until the relay closes: the server does not
// learn either, as it would not behind a NAT.

import { connect, createServer, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
  frozen: boolean;
}

export interface Relay {
  /** 127.0.0.1 port agents connect to instead of the store's. */
  readonly port: number;
  /** Connections relayed so far, open ones, frozen ones. */
  stats(): { opened: number; open: number; frozen: number; openedSinceFreeze: number };
  /** Every connection open now stops carrying bytes; new ones keep working. Returns how many. */
  freeze(): number;
  /** Closes the listener and every connection, frozen or not. Idempotent. */
  close(): Promise<void>;
}

export async function startRelay(targetHost: string, targetPort: number): Promise<Relay> {
  const pairs = new Set<Pair>();
  let opened = 0;
  let openedAtFreeze: number | null = null;
  const server: Server = createServer((client) => {
    opened++;
    const upstream = connect({ host: targetHost, port: targetPort });
    const pair: Pair = { client, upstream, frozen: false };
    pairs.add(pair);
    const forward = (from: Socket, to: Socket) => {
      from.on('data', (chunk) => {
        if (!pair.frozen) to.write(chunk);
      });
      // A close from either side travels to the other only while the connection is carried: the
      // far side of a forgotten connection hears nothing.
      from.on('end', () => {
        if (!pair.frozen) to.end();
      });
      from.on('close', () => {
        if (!pair.frozen) to.destroy();
        if (client.destroyed && upstream.destroyed) pairs.delete(pair);
      });
      from.on('error', () => undefined);
    };
    forward(client, upstream);
    forward(upstream, client);
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('relay: no port');
  let closed = false;
  return {
    port: address.port,
    stats() {
      const open = [...pairs].filter((p) => !p.client.destroyed).length;
      const frozen = [...pairs].filter((p) => p.frozen && !p.client.destroyed).length;
      return {
        opened,
        open,
        frozen,
        openedSinceFreeze: openedAtFreeze === null ? 0 : opened - openedAtFreeze,
      };
    },
    freeze() {
      openedAtFreeze = opened;
      let n = 0;
      for (const pair of pairs) {
        if (pair.client.destroyed || pair.frozen) continue;
        pair.frozen = true;
        n++;
      }
      return n;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The URL with its host and port replaced by the relay's (PostgreSQL and MongoDB URLs). */
export function throughRelay(url: string, port: number): string {
  const parsed = new URL(url);
  parsed.hostname = '127.0.0.1';
  parsed.port = String(port);
  return parsed.toString();
}
