// The fleet dashboard. It follows GET /api/cluster/events with fetch() and a stream reader rather than
// EventSource, which cannot send an Authorization header. Everything shown is built with textContent
// (reasons and agent ids are user input), and every command carries the version on screen, so that a
// page that missed a change cannot overwrite someone else's command. The document counts come
// with the stream (`backlog`, the agent's cached read); the chart and the agents' rates from
// GET /api/cluster/throughput, read when the counts move and every 10 s; the failed list when the
// failed count moves, after an action on it, and every 10 s while any document is failed. The fleet
// policy (queue pauses, the throttle) comes with GET /api/cluster/control-state on connect, then from
// GET /api/cluster/policy whenever an agent applies a newer policy version than the one on screen and
// every 10 s; the queues' counts from GET /api/queues when the counts move and every 10 s. Queue
// pauses and the throttle go through the same dialog as the cluster's commands, against the policy
// version on screen.

const $ = (id) => document.getElementById(id);

const BY_KEY = 'pulling-agent.updated_by';
const TOKEN_KEY = 'pulling-agent.token';

const COMMANDS = {
  pause: {
    title: 'Pause the cluster',
    verb: 'Pause',
    what: 'Every agent finishes the documents it is processing, gives the rest of its batch back and claims nothing more.',
  },
  resume: {
    title: 'Resume the cluster',
    verb: 'Resume',
    what: 'Every agent starts claiming documents again.',
  },
  shutdown: {
    title: 'Shut the cluster down',
    verb: 'Shut down',
    what: 'Every agent drains and exits. Agents started later stay stopped until a resume.',
  },
  // Fleet policy commands: written against the policy version, beside the control document.
  'queue-pause': {
    policy: true,
    path: 'pause',
    title: (queue) => `Pause queue ${queue}`,
    verb: 'Pause',
    what: (queue) =>
      `Every agent stops claiming documents of ${queue}, gives back those it holds and lets its running ones finish; the other queues go on.`,
  },
  'queue-resume': {
    policy: true,
    path: 'resume',
    title: (queue) => `Resume queue ${queue}`,
    verb: 'Resume',
    what: (queue) => `Every agent claims documents of ${queue} again.`,
  },
  throttle: {
    policy: true,
    path: 'throttle',
    title: 'Throttle the fleet',
    verb: 'Throttle',
    what: "The fleet's rate is shared among the live agents; the slots cap applies to each agent, without a restart.",
  },
};

/** A command's title or description, for the queue it is about (if any). */
const phrase = (value, queue) => (typeof value === 'function' ? value(queue) : value);

/** The API token, when the agent asks for one: in memory and in this tab's sessionStorage only. */
let token = sessionStorage.getItem(TOKEN_KEY);
let tokenWaiters = [];

const view = {
  control: null, // the control document, from the last `control` event or command answer
  fleet: null, // the last `agents` event
  fleetAt: 0, // performance.now() when it arrived: heartbeat ages tick on from there
  historyVersion: null, // the control version the history table was read at
  historyRead: 0, // a counter, so that a slow answer never overwrites a newer one
  ageCells: [], // [cell, age in seconds at fleetAt]
  pending: null, // the command the dialog is about to send: { command, queue, expectedVersion }
  servedBy: null, // the id of the agent serving this page
  servedByListed: false, // whether the last `agents` event listed it
  stream: null, // the AbortController of the open events stream
  counts: null, // the last `backlog` event's counts
  rates: new Map(), // instance id -> processed per minute, from the last throughput read
  rateCells: [], // [cell, instance id]
  throughput: 'idle', // 'idle', 'busy', or 'again' when asked while busy
  failedRead: 0, // a counter, as historyRead
  discard: null, // the id the discard dialog is about
  policy: null, // the fleet policy: from control-state on connect, GET /api/cluster/policy, or an answer
  thisAgent: null, // the policy's this_agent (live agents sharing the rates, this agent's share)
  policyRead: 0, // a counter, as historyRead
  queues: [], // the last GET /api/queues: [{ queue, counts }]
  queuesRead: 0, // a counter, as historyRead
};

class ApiError extends Error {
  constructor(status, body) {
    const known = body && typeof body === 'object' && typeof body.error === 'string';
    super(known ? `${body.message} (${body.error})` : `the agent answered HTTP ${status}`);
    this.status = status;
    this.body = known ? body : null;
  }
}

function headers(accept) {
  return token ? { accept, authorization: `Bearer ${token}` } : { accept };
}

async function api(method, path) {
  const sent = token;
  const response = await fetch(path, { method, headers: headers('application/json'), cache: 'no-store' });
  const body = await response.json().catch(() => null);
  if (response.status === 401) askForToken(sent);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function describe(error) {
  if (error instanceof ApiError) return error.message;
  return `cannot reach the agent (${error instanceof Error ? error.message : String(error)})`;
}

// ---- the events stream ----

/** Calls onEvent(type, data) for each server-sent event of the response, until the stream ends. */
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let type = '';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // A trailing \r may be the first half of \r\n: keep it until the next chunk.
    const end = buffer.endsWith('\r') ? buffer.length - 1 : buffer.length;
    const lines = buffer.slice(0, end).split(/\r\n|\r|\n/);
    buffer = lines.pop() + buffer.slice(end);
    for (const line of lines) {
      if (line === '') {
        if (data.length > 0) onEvent(type || 'message', data.join('\n'));
        type = '';
        data = [];
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + (line[colon + 1] === ' ' ? 2 : 1));
        if (field === 'event') type = text;
        else if (field === 'data') data.push(text);
        // `id` and `retry` are not needed: every connection starts with the full current state.
      }
    }
  }
}

function onEvent(type, text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return;
  }
  if (type === 'control') showControl(data);
  else if (type === 'agents') {
    showFleet(data);
    // The stream carries no policy: an agent applying a newer version than the one on screen says
    // that it moved (a queue paused elsewhere, a throttle that ran out).
    const applied = Math.max(-1, ...data.agents.map((agent) => agent.applied_policy_version ?? -1));
    if (view.policy && applied > view.policy.version) void readPolicy();
  } else if (type === 'backlog') showBacklog(data);
}

/** Follows the stream for as long as the page is open, reconnecting with backoff when it drops. */
async function follow() {
  let delay = 500;
  for (;;) {
    let received = false;
    let problem = 'the agent closed the stream';
    view.stream = new AbortController();
    view.servedByListed = false;
    try {
      setConnection('connecting', view.fleet ? 'reconnecting…' : 'connecting…');
      const sent = token;
      const response = await fetch('/api/cluster/events', {
        headers: headers('text/event-stream'),
        cache: 'no-store',
        signal: view.stream.signal,
      });
      if (response.status === 401) {
        askForToken(sent);
        await new Promise((resolve) => tokenWaiters.push(resolve));
        continue;
      }
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      setConnection('live', 'live');
      hideAlert('stream');
      void readAgentInfo();
      await readEvents(response, (type, data) => {
        received = true;
        onEvent(type, data);
      });
    } catch (error) {
      problem = view.stream.signal.aborted ? view.stream.signal.reason : describe(error);
      if (error instanceof ApiError) showAlert(`Live updates failed: ${problem}`, 'stream');
    }
    if (received) delay = 500;
    const wait = delay * (0.8 + Math.random() * 0.4);
    delay = Math.min(delay * 2, 15_000);
    const until = performance.now() + wait;
    for (let left = wait; left > 0; left = until - performance.now()) {
      setConnection('reconnecting', `reconnecting… ${Math.ceil(left / 1000)} s`, problem);
      await new Promise((resolve) => setTimeout(resolve, Math.min(1000, left)));
    }
  }
}

function setConnection(state, text, title = '') {
  document.body.dataset.connection = state;
  const element = $('connection');
  element.dataset.state = state;
  element.textContent = text;
  element.title = title;
}

/** This agent's watch mode and id, read once per connection (the stream does not carry them). */
async function readAgentInfo() {
  try {
    const [control, agent] = await Promise.all([
      api('GET', '/api/cluster/control-state'),
      api('GET', '/api/agent/state'),
    ]);
    $('watch-mode').textContent = control.watch_mode;
    view.servedBy = agent.instance_id ?? agent.agent_id;
    $('served-by').textContent = `via ${agent.agent_id}`;
    if (control.policy) {
      ++view.policyRead; // an older read still on its way must not replace this one
      showPolicy(control.policy);
    }
  } catch {
    // The stream shows the rest; these two stay as they were.
  }
  void readPolicy(); // for this_agent's share, which control-state does not carry
  void readQueues();
}

// ---- the token ----

/** After a 401 to a request that carried `sent` (or no token): ask, unless a new token came meanwhile. */
function askForToken(sent) {
  if (token !== sent) return;
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $('token-label').textContent = sent
    ? 'The agent refused the token: enter another'
    : 'This agent asks for an API token';
  $('token-form').hidden = false;
  setConnection('auth', 'token needed');
  $('token-input').focus();
}

function useToken(event) {
  event.preventDefault();
  const value = $('token-input').value.trim();
  if (!value) return;
  token = value;
  sessionStorage.setItem(TOKEN_KEY, value);
  $('token-input').value = '';
  $('token-form').hidden = true;
  const waiters = tokenWaiters;
  tokenWaiters = [];
  for (const resolve of waiters) resolve();
}

// ---- rendering ----

function badge(element, value) {
  element.className = 'badge';
  element.dataset.value = value;
  element.textContent = value;
  return element;
}

function badgeCell(row, value) {
  const td = row.insertCell();
  td.append(badge(document.createElement('span'), value));
  return td;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso ?? '–';
  return date.toLocaleString([], { dateStyle: 'medium', timeStyle: 'medium' });
}

function span(seconds) {
  if (seconds < 120) return `${Math.floor(seconds)} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86_400)} d`;
}

function ago(seconds) {
  return seconds < 1 ? 'just now' : `${span(seconds)} ago`;
}

/** Who wrote a command: with tokens, the token's name, on behalf of the name typed in. */
function author(entry) {
  return entry.on_behalf_of ? `${entry.updated_by} (for ${entry.on_behalf_of})` : entry.updated_by;
}

function heartbeatAge(seconds) {
  if (seconds < 10) return `${seconds.toFixed(1)} s ago`;
  return ago(seconds);
}

function showControl(control, fromAnswer = false) {
  // A command's answer can arrive after the event of a newer command: never step back for it.
  if (fromAnswer && view.control && control.version <= view.control.version) return;
  view.control = control;
  badge($('command'), control.command);
  $('version').textContent = String(control.version);
  $('reason').textContent = control.reason ?? 'none given';
  $('reason').classList.toggle('muted', control.reason == null);
  $('updated-by').textContent = author(control);
  // A pause with an expiry (expires_in) resumes by itself then.
  $('expires-label').hidden = $('expires').hidden = !control.expires_at;
  $('expires-at').textContent = control.expires_at ? formatTime(control.expires_at) : '';
  $('when').textContent = formatTime(control.timestamp);
  $('when').title = control.timestamp;
  for (const button of document.querySelectorAll('[data-command]')) button.disabled = false;
  showQueuesNote();
  tick();
  if (view.historyVersion !== control.version) void readHistory();
}

function showFleet(fleet) {
  view.fleet = fleet;
  view.fleetAt = performance.now();
  const { desired, summary, agents } = fleet;
  const live = summary.live;
  $('sum-live').textContent = String(live);
  $('sum-live-note').textContent = summary.lost > 0 ? `${summary.lost} lost` : `of ${summary.total}`;
  $('sum-applied').textContent = `${summary.applied}/${live}`;
  $('sum-applied-note').textContent = `on version ${desired.version}`;
  $('sum-drained').textContent = `${summary.drained}/${live}`;
  $('sum-drained-note').textContent = 'no batch in flight';
  $('sum-stragglers').textContent = String(summary.stragglers.length);
  $('sum-stragglers-note').textContent = summary.stragglers.join(', ') || 'none';
  $('sum-stragglers')
    .closest('.tile')
    .classList.toggle('warn', summary.stragglers.length > 0);
  $('sum-live')
    .closest('.tile')
    .classList.toggle('warn', summary.lost > 0);
  $('desired').textContent = `desired: ${desired.command} · version ${desired.version}`;

  // Two live processes with one AGENT_ID are two rows: tell them apart and say it is a mistake.
  const shared = new Set(summary.duplicate_agent_ids ?? []);
  if (shared.size > 0)
    showAlert(
      `More than one live process uses AGENT_ID ${[...shared].join(', ')}: each counts, but give each its own AGENT_ID`,
      'duplicates',
    );
  else hideAlert('duplicates');
  const body = $('agents').tBodies[0];
  const rows = [...agents].sort(
    (a, b) =>
      a.agent_id.localeCompare(b.agent_id) || (a.instance_id ?? '').localeCompare(b.instance_id ?? ''),
  );
  view.ageCells = [];
  view.rateCells = [];
  body.replaceChildren(
    ...rows.map((agent) => {
      const row = document.createElement('tr');
      row.dataset.agent = agent.agent_id;
      const twin = shared.has(agent.agent_id) && agent.instance_id;
      const id = cell(
        row,
        twin ? `${agent.agent_id} · ${agent.instance_id.slice(0, 8)}` : agent.agent_id,
        'id',
      );
      id.title = `software ${agent.software_version}, started ${formatTime(agent.started_at)}${agent.instance_id ? `, instance ${agent.instance_id}` : ''}`;
      if (twin) {
        const tag = id.appendChild(document.createElement('span'));
        tag.className = 'tag warn';
        tag.textContent = 'shared id';
      }
      // clock_offset_ms: this agent's clock minus the store's; more than 5 s either way is flagged.
      const offset = agent.clock_offset_ms;
      if (typeof offset === 'number' && Math.abs(offset) > 5000) {
        const tag = id.appendChild(document.createElement('span'));
        tag.className = 'tag warn clock';
        tag.textContent = 'clock off';
        tag.title = `this agent's clock is ${(Math.abs(offset) / 1000).toFixed(1)} s ${offset > 0 ? 'ahead of' : 'behind'} the store's; leases and heartbeats follow the store's clock`;
      }
      badgeCell(row, agent.state).className = 'state';
      const applied = cell(row, String(agent.applied_version), 'applied');
      const current = agent.applied_version >= desired.version;
      const tag = applied.appendChild(document.createElement('span'));
      tag.className = current ? 'tag ok' : 'tag warn';
      tag.textContent = current ? 'desired' : 'behind';
      view.ageCells.push([cell(row, '', 'age'), agent.heartbeat_age_seconds]);
      const draining = agent.batch_in_flight && (agent.state === 'paused' || agent.state === 'stopping');
      const batch = agent.batch_in_flight ? (draining ? 'draining' : 'working') : 'idle';
      cell(row, batch, `batch ${batch}`);
      cell(row, String(agent.counters.documents_processed ?? 0), 'num processed');
      view.rateCells.push([cell(row, '', 'num rate'), agent.instance_id]);
      cell(row, agent.watch_mode, 'muted');
      cell(row, agent.host, 'muted');
      return row;
    }),
  );
  $('agents-empty').hidden = rows.length > 0;
  showRates();
  tick();

  // An agent leaves the registry as it exits: let go of its stream, so that it can close (an open
  // stream holds its server), and reconnect to whatever answers at this address next.
  const listed = agents.some((agent) => (agent.instance_id ?? agent.agent_id) === view.servedBy);
  if (view.servedByListed && !listed)
    view.stream?.abort(`${view.servedBy} left the registry (shutting down)`);
  view.servedByListed = listed;
}

// ---- documents: counts, throughput, failed ----

function showBacklog({ counts, oldest_pending_age_seconds: age }) {
  const before = view.counts;
  view.counts = counts;
  for (const tile of document.querySelectorAll('.backlog .tile'))
    tile.querySelector('strong').textContent = String(counts[tile.dataset.status] ?? 0);
  document.querySelector('.backlog [data-status="failed"]').classList.toggle('warn', counts.failed > 0);
  const held = heldBy();
  $('backlog-note').textContent =
    counts.pending === 0
      ? 'nothing due'
      : `oldest due for ${span(age)}${held ? ` · the cluster is ${held}: nothing is claimed` : ''}`;
  if (!before || before.failed !== counts.failed) void readFailed();
  void readQueues(); // the observer sends the backlog only when the counts moved
  if (!before || before.processed !== counts.processed || before.failed !== counts.failed)
    void readThroughput();
}

/** 'paused' or 'shut down' while the cluster's command holds every document back, else undefined. */
function heldBy() {
  return { pause: 'paused', shutdown: 'shut down' }[view.control?.command];
}

function showRates() {
  for (const [element, id] of view.rateCells) {
    const rate = view.rates.get(id);
    element.textContent = rate === undefined ? '–' : `${rate}/min`;
  }
}

async function readThroughput() {
  if (view.throughput !== 'idle') {
    view.throughput = 'again';
    return;
  }
  if (document.body.dataset.connection !== 'live') return;
  view.throughput = 'busy';
  try {
    const answer = await api('GET', '/api/cluster/throughput');
    view.rates = new Map(answer.agents.map((a) => [a.instance_id, a.processed_per_minute]));
    showRates();
    drawChart(answer);
    hideAlert('throughput');
  } catch (error) {
    showAlert(`Cannot read the throughput: ${describe(error)}`, 'throughput');
  } finally {
    const again = view.throughput === 'again';
    view.throughput = 'idle';
    if (again) void readThroughput();
  }
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

/** The last hour as two lines, with a dot on every minute that had any. */
function drawChart({ minutes, total }) {
  const [width, height, left, right, top, bottom] = [1160, 130, 40, 8, 8, 20];
  const max = Math.max(1, ...minutes.map((m) => Math.max(m.processed, m.failed)));
  const x = (i) => (left + (i * (width - left - right)) / Math.max(1, minutes.length - 1)).toFixed(1);
  const y = (value) => (top + (height - top - bottom) * (1 - value / max)).toFixed(1);
  const parts = [
    svg('line', { class: 'axis', x1: left, y1: height - bottom, x2: width - right, y2: height - bottom }),
    svg('line', { class: 'axis', x1: left, y1: top, x2: width - right, y2: top }),
    svg('text', { x: left - 6, y: top + 4, 'text-anchor': 'end' }, String(max)),
    svg('text', { x: left - 6, y: height - bottom + 4, 'text-anchor': 'end' }, '0'),
    svg('text', { x: left, y: height - 4 }, '60 min ago'),
    svg('text', { x: width - right, y: height - 4, 'text-anchor': 'end' }, 'now'),
  ];
  for (const key of ['processed', 'failed']) {
    const points = minutes.map((m, i) => `${x(i)},${y(m[key])}`).join(' ');
    parts.push(svg('polyline', { class: key, points }));
    minutes.forEach((m, i) => {
      if (m[key] === 0) return;
      const dot = svg('circle', { class: key, cx: x(i), cy: y(m[key]), r: 3 });
      const at = new Date(m.minute).toLocaleTimeString([], { timeStyle: 'short' });
      dot.append(svg('title', {}, `${at}: ${m[key]} ${key}`));
      parts.push(dot);
    });
  }
  $('throughput').replaceChildren(...parts);
  $('throughput-total').textContent = `${total.processed} processed · ${total.failed} failed this hour`;
}

function actionButton(text, action, id, className = '') {
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = text;
  button.dataset.action = action;
  button.dataset.id = id;
  button.className = className;
  return button;
}

async function readFailed() {
  const read = ++view.failedRead;
  try {
    const { counts, documents } = await api('GET', '/api/documents?status=failed&limit=20');
    if (read !== view.failedRead) return;
    documents.sort((a, b) => b.updated_at.localeCompare(a.updated_at));
    $('failed').tBodies[0].replaceChildren(
      ...documents.map((doc) => {
        const row = document.createElement('tr');
        row.dataset.id = doc.id;
        cell(row, doc.id, 'id');
        cell(row, String(doc.attempts), 'num');
        cell(row, doc.error ?? '–', 'error-text');
        cell(row, formatTime(doc.updated_at), 'muted').title = doc.updated_at;
        cell(row, '', 'acts').append(
          actionButton('Retry', 'retry', doc.id),
          actionButton('Discard', 'discard', doc.id, 'danger'),
        );
        return row;
      }),
    );
    $('failed-empty').hidden = documents.length > 0;
    $('failed-note').textContent =
      counts.failed > documents.length ? `${documents.length} of ${counts.failed} shown` : '';
    $('retry-all').disabled = counts.failed === 0;
    hideAlert('failed');
  } catch (error) {
    if (read === view.failedRead) showAlert(`Cannot read the failed documents: ${describe(error)}`, 'failed');
  }
}

/** The path with who acts, for the agent's log line (with a token, the token's name wins). */
function withActor(path) {
  const url = new URL(path, document.baseURI);
  const by = localStorage.getItem(BY_KEY);
  if (by) url.searchParams.set('updated_by', by);
  return url.pathname + url.search;
}

/** Runs one action on failed documents with its buttons disabled; says how it went in the alert area. */
async function act(buttons, method, path, said) {
  for (const button of buttons) button.disabled = true;
  try {
    showAlert(said(await api(method, withActor(path))), 'documents', 'info');
  } catch (error) {
    showAlert(describe(error), 'documents');
  } finally {
    for (const button of buttons) button.disabled = false;
    void readFailed();
  }
}

function onFailedClick(event) {
  const button = event.target.closest('button[data-action]');
  if (!button) return;
  const id = button.dataset.id;
  const path = `/api/documents/${encodeURIComponent(id)}`;
  const buttons = button.closest('tr').querySelectorAll('button');
  if (button.dataset.action === 'retry')
    void act(buttons, 'POST', `${path}/retry`, () => `Document ${id} is pending again.`);
  else {
    view.discard = { id, buttons };
    $('discard-id').textContent = id;
    $('discard-input').value = '';
    $('discard-error').hidden = true;
    $('discard-dialog').showModal();
    $('discard-input').focus();
  }
}

function discard(event) {
  event.preventDefault();
  if ($('discard-input').value.trim() !== 'discard') {
    $('discard-error').textContent = 'Type discard to confirm.';
    $('discard-error').hidden = false;
    return;
  }
  const { id, buttons } = view.discard;
  $('discard-dialog').close();
  void act(buttons, 'DELETE', `/api/documents/${encodeURIComponent(id)}`, () => `Document ${id} discarded.`);
}

// ---- the fleet policy: queues and the throttle ----

/** Who set a rule, why, and until when, as one line. */
function ruleNote(rule) {
  const parts = [rule.reason ?? 'no reason given', `by ${author(rule)}`];
  if (rule.expires_at) parts.push(`until ${formatTime(rule.expires_at)}`);
  return parts.join(' · ');
}

const perSecond = (rate) => `${rate}/s`;

function showPolicy(policy, fromAnswer = false) {
  // As for the control: an answer can arrive after a newer read, never step back for it.
  if (fromAnswer && view.policy && policy.version <= view.policy.version) return;
  view.policy = policy;
  $('policy-version').textContent = String(policy.version);
  const { throttle } = policy;
  const limits = [];
  if (throttle?.rate != null) {
    const live = view.thisAgent?.live_agents ?? 0;
    const share = live > 1 ? ` (${live} live agents share it)` : live === 1 ? ' (1 live agent takes it)' : '';
    limits.push(`${perSecond(throttle.rate)} for the fleet${share}`);
  }
  if (throttle?.concurrency != null) limits.push(`${throttle.concurrency} slots per agent at most`);
  $('throttle').textContent = limits.join(' · ') || 'none';
  $('throttle').classList.toggle('muted', limits.length === 0);
  $('throttle-note').textContent = throttle ? `— ${ruleNote(throttle)}` : '';
  $('throttle-button').disabled = false;
  if (policy.policy_error)
    showAlert(
      `The stored fleet policy is malformed: ${policy.policy_error}; the fleet follows the last good one`,
      'policy',
    );
  else hideAlert('policy');
  renderQueues();
}

async function readPolicy() {
  const read = ++view.policyRead;
  try {
    const answer = await api('GET', '/api/cluster/policy');
    if (read !== view.policyRead) return;
    view.thisAgent = answer.this_agent;
    showPolicy(answer);
  } catch (error) {
    if (read === view.policyRead) showAlert(`Cannot read the fleet policy: ${describe(error)}`, 'policy');
  }
}

async function readQueues() {
  const read = ++view.queuesRead;
  try {
    const { queues } = await api('GET', '/api/queues');
    if (read !== view.queuesRead) return;
    view.queues = queues;
    renderQueues();
    hideAlert('queues');
  } catch (error) {
    if (read === view.queuesRead) showAlert(`Cannot read the queues: ${describe(error)}`, 'queues');
  }
}

const QUEUE_STATUSES = ['pending', 'scheduled', 'processing', 'processed', 'failed'];

/** Every queue with documents, and every queue a rule names before it has any. */
function renderQueues() {
  const paused = view.policy?.paused_queues ?? {};
  const rates = view.policy?.queue_rates ?? {};
  const counts = new Map(view.queues.map((q) => [q.queue, q.counts]));
  const names = [...new Set([...counts.keys(), ...Object.keys(paused), ...Object.keys(rates)])].sort();
  $('queues').tBodies[0].replaceChildren(
    ...names.map((name) => {
      const row = document.createElement('tr');
      row.dataset.queue = name;
      cell(row, name, 'id');
      const of = counts.get(name);
      for (const status of QUEUE_STATUSES) cell(row, String(of?.[status] ?? 0), `num ${status}`);
      const rule = Object.hasOwn(paused, name) ? paused[name] : null;
      const state = badgeCell(row, rule ? 'paused' : 'serving');
      state.className = 'state';
      if (rule) {
        const note = state.appendChild(document.createElement('span'));
        note.className = 'rule muted small';
        note.textContent = ruleNote(rule);
      }
      const rate = Object.hasOwn(rates, name) ? rates[name] : null;
      const rateCell = cell(row, rate ? perSecond(rate.rate) : '–', 'num rate');
      if (rate) rateCell.title = ruleNote(rate);
      const command = rule ? 'queue-resume' : 'queue-pause';
      const button = actionButton(COMMANDS[command].verb, command, name);
      button.setAttribute('aria-label', `${COMMANDS[command].verb} queue ${name}`);
      button.disabled = !view.policy;
      cell(row, '', 'acts').append(button);
      return row;
    }),
  );
  $('queues-empty').hidden = names.length > 0;
  showQueuesNote();
}

function showQueuesNote() {
  const held = heldBy();
  const paused = Object.keys(view.policy?.paused_queues ?? {}).length;
  $('queues-note').textContent = held
    ? `the cluster is ${held}: every queue is held`
    : paused > 0
      ? `${paused} paused`
      : '';
}

function onQueuesClick(event) {
  const button = event.target.closest('button[data-action]');
  if (button) openDialog(button.dataset.action, button.dataset.id);
}

async function readHistory() {
  const read = ++view.historyRead;
  const version = view.control?.version ?? null;
  try {
    const { history } = await api('GET', '/api/cluster/history?limit=20');
    if (read !== view.historyRead) return;
    view.historyVersion = version;
    $('history').tBodies[0].replaceChildren(
      ...history.map((entry) => {
        const row = document.createElement('tr');
        cell(row, String(entry.version), 'num');
        badgeCell(row, entry.command);
        cell(row, entry.reason ?? '–', entry.reason == null ? 'muted' : 'reason');
        cell(row, author(entry));
        cell(row, formatTime(entry.timestamp), 'muted').title = entry.timestamp;
        return row;
      }),
    );
    $('history-empty').hidden = history.length > 0;
  } catch (error) {
    if (read === view.historyRead) showAlert(`Cannot read the history: ${describe(error)}`, 'history');
  }
}

/** Once a second: heartbeat ages and "how long ago" move on between events. */
function tick() {
  const elapsed = (performance.now() - view.fleetAt) / 1000;
  for (const [element, age] of view.ageCells) element.textContent = heartbeatAge(age + elapsed);
  if (view.control) {
    const seconds = Math.max(0, (Date.now() - Date.parse(view.control.timestamp)) / 1000);
    $('when-ago').textContent = `(${ago(seconds)})`;
    const left = (Date.parse(view.control.expires_at ?? '') - Date.now()) / 1000;
    $('expires-in').textContent = left > 0 ? `(in ${span(left)})` : left <= 0 ? '(due)' : '';
  }
}

let alertTimer;

/** Errors stay until their cause goes away; news (kind 'info') fades after a few seconds. */
function showAlert(text, source, kind = 'error') {
  const element = $('alert');
  element.textContent = text;
  element.dataset.kind = kind;
  element.dataset.source = source;
  element.hidden = false;
  clearTimeout(alertTimer);
  if (kind === 'info') alertTimer = setTimeout(() => hideAlert(source), 8000);
}

function hideAlert(source) {
  if ($('alert').dataset.source === source) $('alert').hidden = true;
}

// ---- commands ----

/** The commands that may end by themselves (expires_in), and how the dialog says it. */
const EXPIRY_LABELS = {
  pause: 'Resume by itself after (optional: 90s, 30m, 2h, 1h30m)',
  'queue-pause': 'Resume by itself after (optional: 90s, 30m, 2h, 1h30m)',
  throttle: 'End by itself after (optional: 90s, 30m, 2h, 1h30m)',
};

function describePending() {
  const { command, queue, expectedVersion } = view.pending;
  const { policy, what } = COMMANDS[command];
  $('dialog-what').textContent =
    `${phrase(what, queue)} Written as ${policy ? 'policy ' : ''}version ${expectedVersion + 1} only if ` +
    `the ${policy ? 'fleet policy' : 'cluster'} is still at version ${expectedVersion}.`;
}

/** Opens the command dialog for a cluster command, a queue's pause or resume, or the throttle. */
function openDialog(command, queue = null) {
  const { title, verb, policy } = COMMANDS[command];
  const current = policy ? view.policy : view.control;
  if (!current) return;
  view.pending = { command, queue, expectedVersion: current.version };
  $('dialog-title').textContent = phrase(title, queue);
  describePending();
  $('reason-input').value = '';
  $('by-input').value = localStorage.getItem(BY_KEY) ?? '';
  $('confirm-input').value = '';
  $('confirm-field').hidden = command !== 'shutdown';
  $('expiry-field').hidden = !Object.hasOwn(EXPIRY_LABELS, command);
  $('expires-input-label').textContent = EXPIRY_LABELS[command] ?? '';
  $('expires-input').value = '';
  $('throttle-fields').hidden = command !== 'throttle';
  const throttle = view.policy?.throttle;
  for (const [field, now] of [
    ['rate-input', throttle?.rate],
    ['concurrency-input', throttle?.concurrency],
  ]) {
    $(field).value = '';
    $(field).placeholder = `now ${now ?? 'off'}`;
  }
  $('dialog-error').hidden = true;
  $('dialog-submit').textContent = verb;
  $('dialog-submit').className = command === 'shutdown' ? 'danger' : 'primary';
  $('dialog-submit').disabled = false;
  $('command-dialog').showModal();
  $('reason-input').focus();
}

function dialogError(text) {
  $('dialog-error').textContent = text;
  $('dialog-error').hidden = false;
}

/** Where a command goes: the cluster's own path, or a policy command's (with queue=, rate=…). */
function commandPath(command, queue, query) {
  const { policy, path } = COMMANDS[command];
  if (queue) query.set('queue', queue);
  if (command === 'throttle') {
    for (const name of ['rate', 'concurrency']) {
      // Sent as typed: the agent says what is wrong with a bad value, and writes nothing.
      const value = $(`${name}-input`).value.trim();
      if (value) query.set(name, value);
    }
  }
  return `/api/cluster/${policy ? path : command}?${query}`;
}

async function sendCommand(event) {
  event.preventDefault();
  const { command, queue, expectedVersion } = view.pending;
  const { policy, verb } = COMMANDS[command];
  const reason = $('reason-input').value.trim();
  const by = $('by-input').value.trim();
  if (!reason) return dialogError('Give a reason: it goes into the history.');
  if (command === 'shutdown' && $('confirm-input').value.trim() !== 'shutdown') {
    $('confirm-input').focus();
    return dialogError('Type shutdown in the last field to confirm.');
  }
  if (by) localStorage.setItem(BY_KEY, by);
  const query = new URLSearchParams({ reason, expected_version: String(expectedVersion) });
  if (by) query.set('updated_by', by);
  const expiresIn = $('expires-input').value.trim();
  if (Object.hasOwn(EXPIRY_LABELS, command) && expiresIn) query.set('expires_in', expiresIn);
  $('dialog-submit').disabled = true;
  try {
    const answer = await api('POST', commandPath(command, queue, query));
    $('command-dialog').close();
    if (policy) {
      showAlert(
        `${verb}${queue ? ` of queue ${queue}` : ''} written as policy version ${answer.policy_version}; ` +
          'every agent applies it live.',
        'command',
        'info',
      );
      ++view.policyRead; // a read still on its way holds an older policy
      showPolicy(answer.policy, true);
      return;
    }
    showAlert(
      `${verb} written as version ${answer.version}; the agents below follow it live.`,
      'command',
      'info',
    );
    showControl(
      {
        command: answer.command,
        version: answer.version,
        timestamp: answer.timestamp,
        reason: answer.reason,
        updated_by: answer.updated_by,
        on_behalf_of: answer.on_behalf_of ?? null,
        expires_at: answer.expires_at ?? null,
      },
      true,
    );
  } catch (error) {
    if (error instanceof ApiError && error.body?.error === 'PA_VERSION_CONFLICT') {
      const now = error.body.current_version;
      dialogError(
        `The ${policy ? 'fleet policy' : 'cluster'} changed meanwhile (now version ${now}); nothing was written. ` +
          `Check the state behind this dialog; ${verb} again writes over it.`,
      );
      view.pending.expectedVersion = now;
      describePending();
      if (policy) void readPolicy();
      else
        void api('GET', '/api/cluster/control-state')
          .then((state) => showControl(state))
          .catch(() => undefined);
    } else if (error instanceof ApiError && error.status === 401) {
      dialogError('The agent asks for an API token: cancel, enter it at the top of the page, then retry.');
    } else {
      dialogError(describe(error));
    }
  } finally {
    $('dialog-submit').disabled = false;
  }
}

for (const button of document.querySelectorAll('[data-command], [data-policy-command]')) {
  button.addEventListener('click', () => openDialog(button.dataset.command ?? button.dataset.policyCommand));
}
$('queues').addEventListener('click', onQueuesClick);
$('command-form').addEventListener('submit', (event) => void sendCommand(event));
$('dialog-cancel').addEventListener('click', () => $('command-dialog').close());
$('token-form').addEventListener('submit', useToken);
$('failed').addEventListener('click', onFailedClick);
$('discard-form').addEventListener('submit', discard);
$('discard-cancel').addEventListener('click', () => $('discard-dialog').close());
$('retry-all').addEventListener(
  'click',
  (event) =>
    void act([event.currentTarget], 'POST', '/api/documents/retry?status=failed', ({ count }) =>
      count === 1 ? '1 failed document is pending again.' : `${count} failed documents are pending again.`,
    ),
);
setInterval(tick, 1000);
setInterval(() => {
  if (document.body.dataset.connection !== 'live') return;
  void readThroughput();
  void readPolicy();
  void readQueues();
  // A retried document that failed again leaves the counts as they were: look again while any is listed.
  if (view.counts?.failed > 0 || $('failed').tBodies[0].rows.length > 0) void readFailed();
}, 10_000);
void follow();
