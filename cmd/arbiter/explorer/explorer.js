// The decision explorer: one recipient's decision with its explanations,
// suppressions and why-not answers, consent ledger, touches and journeys,
// and a past decision's receipt. Everything is read from Arbiter's REST
// API (docs/http.md) with the user's bearer token, so the token's roles
// and territories govern what it shows, as they govern the API.
//
// Data is only ever put in the page as text (textContent, attributes),
// never as HTML. The only recipient data in a URL is the id typed, in
// the API's own paths.

const TOKEN_KEY = 'arbiter.explorer.token';
const SVG_NS = 'http://www.w3.org/2000/svg';

// ------------------------------------------------------------------ helpers

const $ = (selector) => document.querySelector(selector);

// h makes an element with attributes and children (strings become text).
function h(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// svg makes an SVG element the same way.
function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null && value !== false) {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child !== undefined && child !== null && child !== false) {
      el.append(child instanceof Node ? child : String(child));
    }
  }
  return el;
}

// words turns an enum name into words: CHANNEL_REP_VISIT is "rep visit".
function words(value, prefix) {
  if (!value || value.endsWith('_UNSPECIFIED')) return '';
  return value.slice(prefix.length).toLowerCase().replaceAll('_', ' ');
}

const channel = (c) => words(c, 'CHANNEL_');
const purpose = (p) => words(p, 'PURPOSE_');

const SUPPRESSION = {
  SUPPRESSION_REASON_NO_CONSENT: 'No consent',
  SUPPRESSION_REASON_CONSENT_EXPIRED: 'Consent expired',
  SUPPRESSION_REASON_CONSENT_PENDING: 'Consent awaits double opt-in',
  SUPPRESSION_REASON_CONSENT_UNKNOWN: 'Consent unknown, so denied',
  SUPPRESSION_REASON_CHANNEL_BARRED: 'Channel barred',
  SUPPRESSION_REASON_CONTENT_NOT_APPROVED: 'Content not MLR-approved',
  SUPPRESSION_REASON_CONTENT_EXPIRED: 'MLR approval not valid then',
  SUPPRESSION_REASON_NOT_ELIGIBLE: 'Not for this recipient',
  SUPPRESSION_REASON_CHANNEL_NOT_REQUESTED: 'Channel not asked about',
  SUPPRESSION_REASON_FREQUENCY_CAP: 'Frequency cap reached',
  SUPPRESSION_REASON_MIN_GAP: 'Too soon after another touch',
  SUPPRESSION_REASON_QUIET_HOURS: 'Quiet hours',
  SUPPRESSION_REASON_RULE: 'Held back by a rule',
  SUPPRESSION_REASON_JOURNEY_WAIT: 'Journey step not due',
  SUPPRESSION_REASON_JOURNEY: 'Journey run ended',
};
const reason = (r) => SUPPRESSION[r] ?? words(r, 'SUPPRESSION_REASON_');

// The reasons of candidates that do not apply to the recipient at all.
const NOT_APPLICABLE = new Set(['SUPPRESSION_REASON_NOT_ELIGIBLE', 'SUPPRESSION_REASON_CHANNEL_NOT_REQUESTED']);

// when shows a timestamp in UTC, with the reader's local time as its title.
function when(ts) {
  if (!ts) return h('span', { class: 'none' }, '—');
  const d = new Date(ts);
  const text = d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
  return h('time', { datetime: ts, title: d.toLocaleString() }, text);
}

// fromNow says how far a time is: "in 7 h 45 min", "3 d ago".
function fromNow(ts) {
  const ms = new Date(ts) - Date.now();
  const mins = Math.round(Math.abs(ms) / 60000);
  const span = mins < 60 ? `${mins} min` : mins < 48 * 60
    ? `${Math.floor(mins / 60)} h ${mins % 60} min` : `${Math.round(mins / 1440)} d`;
  return ms >= 0 ? `in ${span}` : `${span} ago`;
}

const num = (x, digits = 3) => (typeof x === 'number' ? x.toFixed(digits) : x ?? '');
const signed = (x) => (x >= 0 ? '+' : '−') + Math.abs(x).toFixed(2);
const short = (version) => (version && version.length > 19 ? version.slice(0, 19) + '…' : version);

function table(headers, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))),
    h('tbody', {}, rows));
}

function note(text, cls = 'note') {
  return h('p', { class: cls }, text);
}

// ---------------------------------------------------------------------- API

class APIError extends Error {
  constructor(rpc, status, message) {
    super(message);
    this.rpc = rpc;
    this.status = status;
  }
}

const seg = encodeURIComponent;

// The RPCs the page calls: each one's REST form, and its Connect form for
// an id with a colon (which the last segment of a REST path cannot carry).
const RPC = {
  decide: {
    name: 'Decide', connect: 'nba.v1.DecisionService/Decide',
    rest: ({ hcp_id, ...body }) => ['POST', `/v1/recipients/${seg(hcp_id)}:decide`, body],
  },
  whyNot: {
    name: 'WhyNot', connect: 'nba.v1.DecisionService/WhyNot',
    rest: ({ hcp_id, ...body }) => ['POST', `/v1/recipients/${seg(hcp_id)}:whyNot`, body],
  },
  consentHistory: {
    name: 'GetConsentHistory', connect: 'nba.v1.ConsentService/GetConsentHistory',
    rest: ({ hcp_id, limit }) => ['GET', `/v1/recipients/${seg(hcp_id)}/consent/history?limit=${limit}`],
  },
  profile: {
    name: 'GetProfile', connect: 'nba.v1.ProfileService/GetProfile',
    rest: ({ hcp_id }) => ['GET', `/v1/recipients/${seg(hcp_id)}`],
  },
  journeys: {
    name: 'GetJourneyProgress', connect: 'nba.v1.JourneyService/GetJourneyProgress',
    rest: ({ recipient_id }) => ['GET', `/v1/recipients/${seg(recipient_id)}/journeys`],
  },
  decision: {
    name: 'GetDecision', connect: 'nba.v1.DecisionLogService/GetDecision',
    rest: ({ decision_id }) => ['GET', `/v1/decisions/${seg(decision_id)}`],
  },
};

// call sends one request with the token, if any, and returns its JSON.
async function call(rpc, req) {
  const headers = { Accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const id = req.hcp_id ?? req.recipient_id ?? '';
  let method, path, body;
  if (id.includes(':')) {
    [method, path, body] = ['POST', `/${rpc.connect}`, req];
    headers['Connect-Protocol-Version'] = '1';
  } else {
    [method, path, body] = rpc.rest(req);
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store', credentials: 'omit',
    });
  } catch (err) {
    throw new APIError(rpc.name, 0, `the server could not be reached (${err.message})`);
  }
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* a plain-text error */ }
  if (!res.ok) throw new APIError(rpc.name, res.status, json?.message ?? text.trim());
  return json;
}

// problem says what went wrong, in words.
function problem(err) {
  if (!(err instanceof APIError)) return `The page failed: ${err.message}`;
  const said = err.message ? `: ${err.message}` : '';
  switch (err.status) {
    case 0: return `${err.rpc}: ${err.message}`;
    case 401: return `${err.rpc}: not authenticated (401). Give a token above${said}`;
    case 403: return `${err.rpc}: your token's roles may not call it (403)${said}`;
    case 404: return `${err.rpc}: not found (404): unknown, or outside your token's territories${said}`;
    case 429: return `${err.rpc}: rate limited (429); try again shortly${said}`;
    default: return `${err.rpc}: HTTP ${err.status}${said}`;
  }
}

// fill shows what promise resolves to (a node, or a list of them) in
// target, or the problem; of two fills of a target, the later one wins
// even when the earlier one's answer comes last.
const latest = new WeakMap();
async function fill(target, promise) {
  const mine = {};
  latest.set(target, mine);
  target.replaceChildren(note('Loading…', 'loading'));
  target.setAttribute('aria-busy', 'true');
  let nodes;
  try {
    nodes = [await promise].flat();
  } catch (err) {
    nodes = [h('p', { class: 'error', role: 'alert' }, problem(err))];
  }
  if (latest.get(target) === mine) {
    target.replaceChildren(...nodes);
    target.removeAttribute('aria-busy');
  }
}

// receiptOf reads a decision's receipt. The server writes receipts in
// batches a few milliseconds after it answers, so a receipt asked for
// right after its decision may not be there yet: a NOT_FOUND is retried
// a few times, a little later each time.
async function receiptOf(decisionId, retries = 0) {
  for (let delay = 100; ; delay *= 2) {
    try {
      return await call(RPC.decision, { decision_id: decisionId });
    } catch (err) {
      if (!(err instanceof APIError) || err.status !== 404 || retries-- <= 0) throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

// -------------------------------------------------------------------- token

function showToken() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const state = $('#token-state');
  if (!token) {
    state.textContent = 'No token: calls go without one, as on a loopback demo without authentication.';
    return;
  }
  // What the token says of itself (not verified here: the server verifies it).
  let about = '';
  try {
    const claims = JSON.parse(atob(token.split('.')[1].replaceAll('-', '+').replaceAll('_', '/')));
    const roles = [claims.roles ?? claims.role ?? []].flat().join(', ');
    const territories = [claims.territories ?? []].flat().join(', ');
    about = ` for ${claims.sub ?? 'an unnamed subject'}` + (roles ? `, roles ${roles}` : '') +
      (territories ? `, territories ${territories}` : '') +
      (claims.exp ? `, expires ${new Date(claims.exp * 1000).toISOString().slice(0, 16).replace('T', ' ')} UTC` : '');
  } catch { /* not a JWT the page can read: the server decides */ }
  state.textContent = `A token is in use${about} (kept in this tab's session storage).`;
}

$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('#token').value.trim().replace(/^Bearer\s+/i, '');
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  $('#token').value = '';
  showToken();
});

$('#forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  $('#token').value = '';
  showToken();
});

// ----------------------------------------------------------- ranked actions

// bar is a contribution's bar: from the middle, right when it raises the
// propensity, left when it lowers it, scaled to the largest shown.
function bar(weight, largest) {
  const width = 160, mid = width / 2, len = largest > 0 ? (Math.abs(weight) / largest) * (mid - 2) : 0;
  return svg('svg', { class: 'bar', width, height: 14, viewBox: `0 0 ${width} 14`, role: 'img', 'aria-label': signed(weight) },
    svg('line', { x1: mid, x2: mid, y1: 0, y2: 14, class: 'axis' }),
    svg('rect', { x: weight >= 0 ? mid : mid - len, y: 2, width: Math.max(len, 1), height: 10, class: weight >= 0 ? 'up' : 'down' }));
}

function scoreBar(score, top) {
  const width = 160, len = top > 0 ? (score / top) * width : 0;
  return svg('svg', { class: 'score', width, height: 8, viewBox: `0 0 ${width} 8`, 'aria-hidden': 'true' },
    svg('rect', { x: 0, y: 0, width, height: 8, class: 'track' }),
    svg('rect', { x: 0, y: 0, width: Math.max(len, 1), height: 8, class: 'fill' }));
}

function renderDecision(d) {
  const recs = d.recommendations ?? [];
  const top = Math.max(0, ...recs.map((r) => r.score));
  const largest = Math.max(0, ...recs.flatMap((r) => (r.contributions ?? []).map((c) => Math.abs(c.weight))));
  const about = h('p', { class: 'meta' },
    'Decision ', h('code', { id: 'decision-id' }, d.decision_id), ' ',
    h('button', { type: 'button', class: 'link', id: 'open-receipt', 'data-decision': d.decision_id }, 'open its receipt'),
    ' · made ', when(d.decision_time),
    d.persona ? ` · persona ${d.persona}` : '',
    ` · model ${d.model_version}`,
    ' · definitions ', h('code', { title: d.definitions_version }, short(d.definitions_version)));
  if (recs.length === 0) {
    return [about, note('Nothing may go to this recipient now: see the suppressions.')];
  }
  const list = h('ol', { class: 'actions' }, recs.map((r) => h('li', { class: 'action', 'data-action': r.action_id },
    h('h4', {}, h('span', { class: 'rank' }, `#${r.rank}`), ' ', r.action_id),
    h('p', { class: 'meta' }, [channel(r.channel), purpose(r.purpose), r.topic && `topic ${r.topic}`, r.content_id && `content ${r.content_id}`]
      .filter(Boolean).join(' · ')),
    r.reason && h('p', { class: 'reason' }, r.reason),
    h('p', { class: 'score-line' }, scoreBar(r.score, top),
      ` score ${num(r.score)} = propensity ${num(r.propensity)} × value ${num(r.value, 2)} × context ${num(r.context_weight, 2)}`),
    r.journey && h('p', { class: 'journey' }, `Journey: ${r.journey.description || r.journey.journey_name}`),
    (r.rules ?? []).length > 0 && h('p', { class: 'rules' }, `Rules that moved it: ${r.rules.join(', ')}`),
    (r.contributions ?? []).length > 0 && table(['Feature', 'Effect on the propensity (log-odds)', ''],
      r.contributions.map((c) => h('tr', {},
        h('td', {}, h('code', {}, c.feature)),
        h('td', {}, bar(c.weight, largest)),
        h('td', { class: 'num' }, signed(c.weight)))),
      { class: 'contributions' }))));
  return [about, list];
}

// ------------------------------------------------------------- suppressions

function suppressionRows(list) {
  return list.map((s) => h('tr', { 'data-action': s.action_id },
    h('td', {}, h('code', {}, s.action_id)),
    h('td', { class: 'cause' }, reason(s.reason)),
    h('td', {}, s.detail),
    h('td', {}, s.clears_at ? [when(s.clears_at), h('br'), h('small', {}, fromNow(s.clears_at))] : h('span', { class: 'none' }, 'not by itself')),
    h('td', {}, h('button', { type: 'button', class: 'why-not', 'data-action': s.action_id }, 'Why not?'))));
}

function renderSuppressions(d) {
  const all = d.suppressed ?? [];
  const held = all.filter((s) => !NOT_APPLICABLE.has(s.reason));
  const other = all.filter((s) => NOT_APPLICABLE.has(s.reason));
  const headers = ['Action', 'Reason', 'In words', 'Clears', ''];
  const out = [];
  out.push(held.length > 0
    ? table(headers, suppressionRows(held), { class: 'suppressed' })
    : note('No candidate that applies to this recipient is held back.'));
  if (other.length > 0) {
    out.push(h('details', {},
      h('summary', {}, `${other.length} candidates do not apply to this recipient (audience, specialty, market or channel)`),
      table(headers, suppressionRows(other), { class: 'not-applicable' })));
  }
  return out;
}

// ------------------------------------------------------------------ why not

function renderWhyNot(actionId, w) {
  const blocks = w.blocks ?? [];
  return h('div', { class: `answer ${w.allowed ? 'allowed' : 'blocked'}`, 'data-action': actionId },
    h('h4', {}, `Why not ${actionId}?`),
    h('p', { class: 'verdict' }, w.allowed ? 'Nothing blocks it at ' : 'It may not go at ', when(w.at),
      w.allowed ? '.' : `: ${blocks.length} ${blocks.length === 1 ? 'gate blocks' : 'gates block'} it.`),
    blocks.length > 0 && h('ul', {}, blocks.map((b) => h('li', {},
      h('strong', {}, reason(b.reason)), b.detail ? ` — ${b.detail}` : '',
      b.clears_at ? [' (clears ', when(b.clears_at), `, ${fromNow(b.clears_at)})`] : ' (does not clear by itself)'))),
    !w.allowed && (w.clears_at
      ? h('p', {}, 'The earliest it could go, if nothing else blocks it then: ', when(w.clears_at), ` (${fromNow(w.clears_at)}).`)
      : h('p', {}, 'It does not clear by itself: it takes a new consent record or approval.')),
    h('p', { class: 'meta' }, 'Definitions ', h('code', { title: w.definitions_version }, short(w.definitions_version))));
}

function whyNot(actionId) {
  const recipient = current;
  const target = $('#whynot .body');
  $('#whynot-action').value = actionId;
  fill(target, call(RPC.whyNot, { hcp_id: recipient, action_id: actionId }).then((w) => renderWhyNot(actionId, w)));
  $('#whynot').scrollIntoView({ block: 'nearest' });
}

// ------------------------------------------------------------------ consent

function consentChange(r) {
  if (!r) return h('em', {}, 'completeness marker only');
  return [h('strong', {}, words(r.status, 'CONSENT_STATUS_')), ' ', channel(r.channel),
    r.purpose && r.purpose !== 'PURPOSE_UNSPECIFIED' ? ` · ${purpose(r.purpose)}` : '',
    r.topic ? ` · topic ${r.topic}` : '', r.address_ref ? ` · address ${r.address_ref}` : ''];
}

function renderLedger(res) {
  const entries = res.entries ?? [];
  if (entries.length === 0) return note('The ledger is empty: no consent was ever recorded for this recipient.');
  const rows = entries.map((e) => h('tr', { class: e.applied ? '' : 'superseded' },
    h('td', { class: 'num' }, e.seq),
    h('td', {}, when(e.recorded_at)),
    h('td', {}, consentChange(e.record)),
    h('td', {}, e.record ? when(e.record.captured_at) : ''),
    h('td', {}, e.record ? [e.record.source, e.record.captured_by ? ` (${e.record.captured_by})` : ''] : ''),
    h('td', {}, e.record?.notice_version ?? ''),
    h('td', {}, e.record?.expires_at ? when(e.record.expires_at) : ''),
    h('td', {}, e.principal || h('span', { class: 'none' }, 'none')),
    h('td', {}, [e.applied ? 'applied' : 'not applied (a newer record was current)',
      e.marked_complete ? 'marks the data complete' : '', e.erased ? 'erased recipient' : ''].filter(Boolean).join('; '))));
  return [
    table(['#', 'Recorded', 'Change', 'Captured', 'Source', 'Notice', 'Expires', 'Principal', ''], rows, { class: 'ledger' }),
    note(`${entries.length} of ${res.total} entries.`),
  ];
}

// ---------------------------------------------------------------- touches

function renderTouches(inputs, decisionTime) {
  if (!inputs) return note('The receipt holds no inputs.');
  const items = [
    ...(inputs.touches ?? []).map((t) => ({
      at: t.at, kind: `touch, ${words(t.state, 'RESERVATION_STATE_') || 'sent'}`, channel: t.channel, purpose: t.purpose,
      topic: t.topic, action: t.action_id, ref: t.message_id || t.reservation_id,
    })),
    ...(inputs.recent_events ?? []).map((e) => ({
      at: e.at, kind: `event, ${words(e.type, 'EVENT_TYPE_')}`, channel: e.channel, purpose: e.purpose,
      topic: e.topic, action: e.action_id, ref: '',
    })),
  ].sort((a, b) => new Date(b.at) - new Date(a.at));
  const out = [];
  if (inputs.touches_unreadable) out.push(note('The touch ledger could not be read: every cap and gap counted as reached.', 'error'));
  if (inputs.touches_horizon) out.push(h('p', { class: 'note' }, 'Touches at or before ', when(inputs.touches_horizon), ' were dropped by the ledger\'s size bound.'));
  out.push(items.length === 0
    ? note('No touches and no recent events.')
    : h('ol', { class: 'timeline' }, items.map((i) => h('li', {},
      when(i.at), ' ', h('strong', {}, i.kind), ` · ${channel(i.channel)}`,
      purpose(i.purpose) ? ` · ${purpose(i.purpose)}` : '', i.topic ? ` · topic ${i.topic}` : '',
      i.action ? [' · ', h('code', {}, i.action)] : '', i.ref ? ` · ${i.ref}` : ''))));
  out.push(h('p', { class: 'note' }, 'As read by the decision made ', when(decisionTime), '.'));
  return out;
}

function renderCounters(res) {
  const c = res.counters ?? {};
  const rows = (c.channels ?? []).map((ch) => h('tr', {},
    h('td', {}, channel(ch.channel)), h('td', { class: 'num' }, num(ch.engagement, 2)),
    h('td', { class: 'num' }, num(ch.sent, 2)), h('td', {}, when(ch.last_contact))));
  const topics = Object.entries(c.topics ?? {}).sort((a, b) => b[1] - a[1]).map(([t, v]) => `${t} ${num(v, 2)}`).join(', ');
  const p = res.profile ?? {};
  return [
    h('h4', {}, 'Engagement counters, decayed to now'),
    rows.length > 0 ? table(['Channel', 'Engagement', 'Sent', 'Last contact'], rows, { class: 'counters' }) : note('No counters.'),
    h('p', { class: 'note' }, topics ? `Topics: ${topics}. ` : '', 'Last engagement ', when(c.last_engagement), '. ',
      [p.audience && words(p.audience, 'AUDIENCE_'), p.specialty, p.market, p.segment && `segment ${p.segment}`,
        res.persona && `persona ${res.persona}`, p.time_zone].filter(Boolean).join(' · ')),
  ];
}

// ---------------------------------------------------------------- journeys

const JOURNEY_ORDER = ['JOURNEY_STATUS_ACTIVE', 'JOURNEY_STATUS_ELIGIBLE', 'JOURNEY_STATUS_COMPLETED', 'JOURNEY_STATUS_EXITED', 'JOURNEY_STATUS_EXPIRED'];

function renderJourneys(res) {
  const all = res.journeys ?? [];
  const shown = all.filter((j) => JOURNEY_ORDER.includes(j.status))
    .sort((a, b) => JOURNEY_ORDER.indexOf(a.status) - JOURNEY_ORDER.indexOf(b.status));
  const out = [];
  if (shown.length > 0) {
    out.push(table(['Journey', 'Status', 'Next step', 'Due', 'Entered', 'Ended', 'Where it stands'],
      shown.map((j) => h('tr', { 'data-journey': j.journey_id },
        h('td', {}, j.journey_name || j.journey_id),
        h('td', {}, words(j.status, 'JOURNEY_STATUS_') + (j.paused ? ' (paused)' : '')),
        h('td', {}, j.step ? `${j.step} (${j.step_id})` : ''),
        h('td', {}, j.due_at ? when(j.due_at) : j.waiting_for && j.waiting_for !== 'EVENT_TYPE_UNSPECIFIED'
          ? `waits for ${words(j.waiting_for, 'EVENT_TYPE_')}` : ''),
        h('td', {}, j.entered_at ? when(j.entered_at) : ''),
        h('td', {}, j.ended_at ? when(j.ended_at) : ''),
        h('td', {}, j.description, j.off_ramp_id ? ` (off-ramp ${j.off_ramp_id})` : '', j.moved_by ? ` (moved by ${j.moved_by})` : ''))),
      { class: 'journeys' }));
  } else {
    out.push(note('In no journey.'));
  }
  const outside = all.filter((j) => !JOURNEY_ORDER.includes(j.status));
  if (outside.length > 0) out.push(note(`Not entered: ${outside.map((j) => j.journey_name || j.journey_id).join(', ')}.`));
  return out;
}

// ------------------------------------------------------------------ receipt

function renderReceipt(res) {
  const r = res.receipt ?? {};
  const req = r.decide ?? r.check_send ?? {};
  const answer = r.decided ?? {};
  const recs = answer.recommendations ?? [];
  const byReason = {};
  for (const s of answer.suppressed ?? []) byReason[reason(s.reason)] = (byReason[reason(s.reason)] ?? 0) + 1;
  const facts = [
    ['Kind', words(r.kind, 'RECEIPT_KIND_')],
    ['Recipient', r.hcp_id],
    ['Decision time', when(r.decision_time)],
    ['Server time', when(r.server_time)],
    ['Caller', r.principal || 'none (no authentication)'],
    ['Territories', r.territory_scoped ? (r.territories ?? []).join(', ') : 'not scoped'],
    ['Definitions', h('code', { title: r.definitions_version }, short(r.definitions_version))],
    ['Build', r.build],
    ['Asked', r.decide ? `limit ${req.limit || 3}, explain ${req.explain ? 'yes' : 'no'}` +
      (req.candidate_set ? `, candidate set ${req.candidate_set}` : '') +
      ((req.candidates ?? []).length ? `, ${req.candidates.length} candidates` : ', every action')
      : `check send of ${req.action_id || req.content_id}`],
  ];
  const out = [h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))];
  if (r.checked) {
    out.push(h('p', {}, `Answered: ${r.checked.allowed ? 'allowed' : 'not allowed'}` +
      (r.checked.reservation_id ? `, reservation ${r.checked.reservation_id}` : '') + '.'));
  } else {
    out.push(h('h4', {}, 'What it answered'));
    out.push(recs.length > 0
      ? h('ol', { class: 'answered' }, recs.map((x) => h('li', {}, h('code', {}, x.action_id), ` · ${channel(x.channel)} · score ${num(x.score)}`,
        x.reason ? h('div', { class: 'reason' }, x.reason) : '')))
      : note('No recommendation.'));
    const counts = Object.entries(byReason).map(([k, n]) => `${k} ${n}`).join(', ');
    if (counts) out.push(note(`Held back: ${counts}.`));
  }
  out.push(h('h4', {}, 'Evidence: what allowed each action'));
  const evidence = res.evidence ?? [];
  out.push(evidence.length === 0 ? note('No evidence: nothing was recommended or allowed.') : table(
    ['Action', 'Consent', 'Ledger entry', 'MLR approval', 'Valid'],
    evidence.map((e) => h('tr', { 'data-action': e.action_id },
      h('td', {}, h('code', {}, e.action_id)),
      h('td', {}, e.unavailable ? h('span', { class: 'error' }, e.unavailable)
        : e.by_default ? 'the market\'s opt-out default (no record needed)'
        : e.consent_record ? [consentChange(e.consent_record), ', captured ', when(e.consent_record.captured_at), ` from ${e.consent_record.source}`] : ''),
      h('td', { class: 'num' }, e.by_default || e.unavailable ? '' : e.consent_ledger_seq === '-1' ? 'not found' : `#${e.consent_ledger_seq}`),
      h('td', {}, e.approval_id ? `${e.approval_id} (${e.approval_status})` : ''),
      h('td', {}, e.approval_valid_from ? [when(e.approval_valid_from), ' to ', when(e.approval_valid_until)] : ''))),
    { class: 'evidence' }));
  if (r.inputs) {
    out.push(h('details', {}, h('summary', {}, 'The touches and events it read'), renderTouches(r.inputs, r.decision_time)));
  }
  return out;
}

function openReceipt(decisionId) {
  $('#receipt-id').value = decisionId;
  fill($('#receipt .body'), receiptOf(decisionId, 4).then(renderReceipt));
  $('#receipt').scrollIntoView({ block: 'nearest' });
}

// ------------------------------------------------------------------- lookup

let current = '';

function lookUp(id) {
  current = id;
  $('#results').hidden = false;
  $('#recipient-title').textContent = id;
  $('#whynot .body').replaceChildren();
  const decided = call(RPC.decide, { hcp_id: id, limit: 5, explain: true });
  decided.then((d) => {
    $('#action-ids').replaceChildren(...[...(d.recommendations ?? []), ...(d.suppressed ?? [])]
      .map((x) => h('option', { value: x.action_id })));
  }, () => {});
  fill($('#actions .body'), decided.then(renderDecision));
  fill($('#suppressions .body'), decided.then(renderSuppressions));
  fill($('#touches .body'), decided.then((d) => receiptOf(d.decision_id, 4)
    .then((r) => renderTouches(r.receipt?.inputs, d.decision_time))));
  fill($('#touches .counters'), call(RPC.profile, { hcp_id: id }).then(renderCounters));
  fill($('#consent .body'), call(RPC.consentHistory, { hcp_id: id, limit: 1000 }).then(renderLedger));
  fill($('#journeys .body'), call(RPC.journeys, { recipient_id: id }).then(renderJourneys));
}

$('#lookup-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const id = $('#recipient').value.trim();
  if (id) lookUp(id);
});

$('#whynot-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const action = $('#whynot-action').value.trim();
  if (action && current) whyNot(action);
});

$('#receipt-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const id = $('#receipt-id').value.trim();
  if (id) openReceipt(id);
});

// One listener for the buttons the results hold (no inline handlers).
document.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action].why-not, button[data-decision]');
  if (!button) return;
  if (button.dataset.decision) openReceipt(button.dataset.decision);
  else whyNot(button.dataset.action);
});

showToken();
