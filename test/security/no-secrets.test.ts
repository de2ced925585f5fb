// No secret in any response, log line or metric (issue 7, "Authentication and roles", 6): a run of
// real agent processes on each store, configured with tokens from API_TOKENS and API_TOKENS_FILE
// and with the store's password, is driven through every GET route the OpenAPI document lists,
// the events stream, commands, documents, agentctl, wrong and malformed credentials, bad
// configuration and an unreachable store. Everything that comes back (bodies, headers, the agents'
// and agentctl's output, at log level trace, in both log formats) is then searched for every
// secret it configured.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import { agentctl } from '../cli/run-agentctl.js';
import { type AgentProcess, CLI, Fleet } from '../helpers/processes.js';
import { type TargetDatabase, TARGETS } from '../helpers/targets.js';
import { waitFor } from '../helpers/wait.js';

const secret = (label: string) => `${label}-${randomBytes(16).toString('hex')}`;

/** The store password in a URL, if it is one a search can find without false alarms. */
function passwordOf(url: string | undefined): string | null {
  if (!url) return null;
  const { username, password, pathname, hostname } = new URL(url);
  const value = decodeURIComponent(password);
  if (value.length < 8) return null;
  if ([username, pathname, hostname].some((part) => part.includes(value))) return null;
  return value;
}

/** Collects every byte a client or an operator could see. */
class Transcript {
  readonly #parts: string[] = [];

  add(where: string, text: string): void {
    this.#parts.push(`--- ${where}\n${text}`);
  }

  async fetch(where: string, url: string, init: RequestInit = {}): Promise<Response> {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
    const body = await response.text();
    // The label leaves the query out: a credential the test sends there is no leak of the agent's.
    this.add(
      `${where}: ${init.method ?? 'GET'} ${url.split('?')[0]} -> ${response.status}`,
      [...[...response.headers].map(([k, v]) => `${k}: ${v}`), body].join('\n'),
    );
    const empty = [101, 204, 205, 304].includes(response.status);
    return new Response(empty ? null : body, { status: response.status, headers: response.headers });
  }

  /** For each secret, where it was found (at most three places each). */
  leaks(secrets: Record<string, string>): string[] {
    const found: string[] = [];
    for (const [name, value] of Object.entries(secrets)) {
      const encoded = [value, encodeURIComponent(value), Buffer.from(value).toString('base64')];
      const places = this.#parts
        .filter((part) => encoded.some((form) => part.includes(form)))
        .map((part) => part.split('\n', 1)[0]);
      if (places.length > 0) found.push(`${name} in ${places.slice(0, 3).join(' | ')}`);
    }
    return found;
  }

  get size(): number {
    return this.#parts.reduce((n, part) => n + part.length, 0);
  }
}

/** Reads the events stream for a moment, as the dashboard does. */
async function readEvents(transcript: Transcript, agent: AgentProcess, token: string): Promise<void> {
  const controller = new AbortController();
  const response = await fetch(`${agent.url}/api/cluster/events`, {
    headers: { authorization: `Bearer ${token}` },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  let text = '';
  const decoder = new TextDecoder();
  await waitFor(
    async () => {
      const { value, done } = await reader.read();
      if (value) text += decoder.decode(value, { stream: true });
      return done || text.includes('\n\n');
    },
    { what: 'the first event' },
  );
  controller.abort();
  transcript.add(`${agent.id}: events stream`, text);
}

for (const target of TARGETS) {
  describe(`secrets on ${target.name}`, { skip: target.skip ?? false }, () => {
    let db: TargetDatabase | undefined;
    let fleet: Fleet | undefined;
    after(async () => {
      await fleet?.stopAll();
      await db?.cleanup();
    });

    it('never appear in a response, a log line, a metric or agentctl output', async (t) => {
      db = await target.create();
      const transcript = new Transcript();
      const tokens = {
        admin: secret('admin'),
        operator: secret('operator'),
        viewer: secret('viewer'),
        fromFile: secret('file'),
      };
      const secrets: Record<string, string> = { ...tokens };
      const storePassword = passwordOf(db.env.STORE_URL ?? db.env.MONGODB_URI);
      if (storePassword) secrets.storePassword = storePassword;
      else if (target.name !== 'sqlite') {
        t.diagnostic(`${target.name}: the test server's URL has no password worth searching for`);
      }

      fleet = new Fleet(db.env);
      const tokenFile = join(fleet.dir, 'tokens');
      writeFileSync(tokenFile, `# mounted Secret\nfiler:admin:${tokens.fromFile}\n`);
      const env = {
        API_TOKENS: `ada:admin:${tokens.admin},otto:operator:${tokens.operator},vic:viewer:${tokens.viewer}`,
        API_TOKENS_FILE: tokenFile,
        METRICS_AUTH: 'true',
        LOG_LEVEL: 'trace',
      };
      const [text, json] = [
        await fleet.start({ ...env, LOG_FORMAT: 'text' }),
        await fleet.start({ ...env, LOG_FORMAT: 'json' }),
      ];
      const agents = [text!, json!];
      await Promise.all(
        agents.map((a) => waitFor(() => /Agent \S+ started/.test(a.output()), { what: `${a.id} started` })),
      );
      const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

      // Documents and commands, with every token.
      const stored = await transcript.fetch('documents', `${text!.url}/api/documents`, {
        method: 'POST',
        headers: { ...bearer(tokens.operator), 'content-type': 'application/json' },
        body: JSON.stringify([{ n: 1 }, { n: 2 }]),
      });
      assert.equal(stored.status, 201, await stored.clone().text());
      const { ids } = (await stored.json()) as { ids: string[] };
      for (const [path, token] of [
        ['/api/cluster/pause?reason=maintenance', tokens.operator],
        ['/api/cluster/resume', tokens.fromFile],
        ['/api/agent/pause', tokens.admin],
        ['/api/agent/resume', tokens.admin],
      ] as const) {
        const response = await transcript.fetch('command', text!.url + path, {
          method: 'POST',
          headers: bearer(token),
        });
        assert.equal(response.status, 200, `${path}: ${await response.text()}`);
      }
      await waitFor(
        async () =>
          (await fetch(`${json!.url}/api/cluster/control-state`, { headers: bearer(tokens.viewer) })).ok,
        {
          what: 'the viewer to read the state',
        },
      );

      // Every GET route the API documents, on both agents, with a viewer token and with none.
      const openapi = (await (await fetch(`${text!.url}/openapi.json`)).json()) as {
        paths: Record<string, object>;
      };
      const gets = Object.entries(openapi.paths)
        .filter(([path, operations]) => 'get' in operations && path !== '/api/cluster/events')
        .map(([path]) => path.replace(/\{[^}]+\}/g, ids[0]!));
      assert.ok(gets.length >= 10, `the OpenAPI document lists ${gets.length} GET routes`);
      for (const agent of agents) {
        for (const path of [...gets, '/', '/docs']) {
          await transcript.fetch(agent.id, agent.url + path, { headers: bearer(tokens.viewer) });
          await transcript.fetch(`${agent.id} (anonymous)`, agent.url + path);
        }
        await readEvents(transcript, agent, tokens.viewer);
      }

      // Credentials that are wrong, too weak or in the wrong place: the answer must not echo them.
      const wrong: [string, Record<string, string>][] = [
        ['a token with one more character', bearer(`${tokens.admin}x`)],
        ['a viewer token for a shutdown', bearer(tokens.viewer)],
        ['the token without Bearer', { authorization: tokens.admin }],
        [
          'the token as Basic credentials',
          { authorization: `Basic ${Buffer.from(`ada:${tokens.admin}`).toString('base64')}` },
        ],
        ['the token as a cookie', { cookie: `token=${tokens.admin}` }],
      ];
      for (const [what, headers] of wrong) {
        const response = await transcript.fetch(what, `${json!.url}/api/cluster/shutdown`, {
          method: 'POST',
          headers,
        });
        assert.ok([401, 403].includes(response.status), `${what}: ${response.status}`);
      }
      await transcript.fetch(
        'the token in the query',
        `${json!.url}/api/cluster/pause?token=${tokens.operator}x`,
        {
          method: 'POST',
        },
      );

      // agentctl, with the flag, the variable and a wrong token.
      for (const [args, runEnv] of [
        [['status', '--url', text!.url, '--token', tokens.viewer], {}],
        [['pause', '--url', json!.url, '--reason', 'secrets test'], { AGENT_TOKEN: tokens.operator }],
        [['resume', '--url', json!.url, '--wait'], { AGENT_TOKEN: tokens.admin }],
        [['history', '--url', text!.url, '--token', `${tokens.viewer}x`], {}],
      ] as const) {
        const run = await agentctl([...args], { env: runEnv });
        transcript.add(`agentctl ${args[0]} (exit ${run.code})`, run.stdout + run.stderr);
      }

      // Let the documents be processed, then stop the fleet and keep what it printed.
      await waitFor(
        async () => {
          const r = await fetch(`${text!.url}/api/documents/${ids[1]}`, { headers: bearer(tokens.viewer) });
          return ((await r.json()) as { status: string }).status === 'processed';
        },
        { what: 'the documents to be processed' },
      );
      await fleet.stopAll();
      for (const agent of agents) transcript.add(`${agent.id} output`, agent.output());

      // Agents that cannot start or cannot reach their store say so, without the secret.
      const refused = await startAndStop({ ...db.env, API_TOKENS: `eve:root:${tokens.admin}` });
      transcript.add('an agent with a bad API_TOKENS', refused);
      assert.match(refused, /API_TOKENS/);
      // A store that does not answer, reached with a password: the errors name the store, not it.
      const password = secret('pw');
      const unreachable: Record<string, Record<string, string>> = {
        postgres: { STORE_URL: `postgres://agent:${password}@127.0.0.1:1/db` },
        'mongodb (FerretDB)': {
          MONGODB_URI: `mongodb://agent:${password}@127.0.0.1:1/?serverSelectionTimeoutMS=500`,
          MONGODB_DATABASE: 'db',
        },
      };
      const storeEnv = unreachable[target.name];
      if (storeEnv) {
        secrets.unreachablePassword = password;
        const output = await startAndStop(storeEnv);
        transcript.add(`an agent whose ${target.name} is unreachable`, output);
        assert.match(output, /127\.0\.0\.1:1|unavailable|ECONNREFUSED/i);
      }

      const leaks = transcript.leaks(secrets);
      t.diagnostic(
        `${target.name}: searched ${Math.round(transcript.size / 1024)} KiB for ${Object.keys(secrets).join(', ')}`,
      );
      assert.deepEqual(leaks, [], `secrets found: ${leaks.join('; ')}`);
      // The search itself works: a token the transcript does contain is found.
      transcript.add('control', `ok ${tokens.viewer}`);
      assert.equal(transcript.leaks({ viewer: tokens.viewer }).length, 1);
    });
  });
}

/** Starts an agent that is expected to refuse to start or to fail to reach its store. */
async function startAndStop(env: Record<string, string>): Promise<string> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [CLI], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'trace', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // It either exits (bad configuration) or keeps retrying its store, which it says.
  await Promise.race([
    exited,
    waitFor(() => /unavailable|retrying|ECONNREFUSED/i.test(output), {
      what: 'a store error',
      timeoutMs: 30_000,
    }),
  ]);
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
  return output;
}
