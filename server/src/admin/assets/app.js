// Converger admin console: a hash-routed page over the admin JSON API.
// Every tenant-supplied string goes into the page through textContent (the
// el() helper); nothing is ever parsed as HTML. The admin token lives in this
// tab's sessionStorage and travels only in the Authorization header.
'use strict';

const TOKEN_KEY = 'converger-admin-token';
const main = () => document.getElementById('main');
let cleanup = [];

// Each channel type's config fields, from server/src/adapters/*.rs.
const CHANNEL_TYPES = {
  echo: [{ key: 'sender', hint: 'sender id of the replies (default echo)' }, { key: 'prefix', hint: 'text put before the echoed text' }],
  webhook: [{ key: 'url', required: true, hint: 'https URL activities are POSTed to' }, { key: 'method', hint: 'POST (default) or PUT' }, { key: 'headers', json: true, hint: 'JSON object of extra headers' }],
  websocket: [],
  whatsapp_meta: [{ key: 'phone_number_id', required: true, hint: 'digits' }, { key: 'access_token', required: true }, { key: 'verify_token', required: true }, { key: 'app_secret', hint: 'signs inbound webhooks' }, { key: 'api_base', hint: 'default https://graph.facebook.com' }, { key: 'api_version', hint: 'like v18.0' }],
  whatsapp_infobip: [{ key: 'api_key', required: true }, { key: 'sender', required: true, hint: 'digits' }, { key: 'base_url', hint: 'your Infobip base URL' }, { key: 'notify_url', hint: 'delivery reports URL' }],
};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'class') node.className = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status; this.code = e.code; this.field = e.field;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ''}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(`/admin/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, { error: { message: `the server did not answer (${e.message})` } });
  }
  const data = await res.json().catch(() => null);
  if (res.status === 401 && path !== '/stats') logout('The admin token was refused: log in again.');
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

function describe(err) {
  return err.code ? `${err.message} (${err.status} ${err.code})` : err.message;
}

function errorBox() { return el('p', { class: 'error', role: 'alert' }); }

// Runs `work` with the button disabled and shows a failure in `box`.
async function busy(button, box, work) {
  if (box) box.textContent = '';
  if (button) button.disabled = true;
  try { return await work(); } catch (e) { if (box) box.textContent = describe(e); else throw e; } finally { if (button) button.disabled = false; }
}

function fmtTime(t) { return t ? new Date(t).toLocaleString() : '—'; }
function statusCell(s) { return el('span', { class: `status-${s}` }, s); }
function table(headers, rows) {
  return el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, el('tr', {}, headers.map((h) => el('th', { class: h === 'id' || h === 'config' ? 'id' : undefined }, h)))), el('tbody', {}, rows)));
}
function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) p.set(k, v);
  const s = p.toString();
  return s ? `?${s}` : '';
}
function secretBox(label, value) {
  const copy = el('button', { type: 'button', class: 'secondary', onclick: async () => {
    try { await navigator.clipboard.writeText(value); copy.textContent = 'Copied'; } catch { copy.textContent = 'Select and copy by hand'; }
  } }, 'Copy');
  return el('div', { class: 'card', 'data-secret': label }, el('strong', {}, `${label} (shown once, keep it now):`), el('div', { class: 'secret' }, value), copy);
}

// ---------- login ----------
function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  location.hash = '';
  showLogin(message);
}

function showLogin(message) {
  runCleanup();
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  const box = errorBox();
  box.id = 'login-error';
  if (message) box.textContent = message;
  const input = el('input', { id: 'token', type: 'password', autocomplete: 'off', required: true });
  const button = el('button', { type: 'submit' }, 'Log in');
  const form = el('form', { id: 'login', class: 'card narrow' }, el('h1', {}, 'Admin console'), el('label', { for: 'token' }, 'Admin token'), input, button, box,
    el('p', { class: 'hint' }, 'The token stays in this tab (sessionStorage) and is sent as an Authorization header.'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    await busy(button, box, async () => {
      try { await api('GET', '/stats'); } catch (e) { sessionStorage.removeItem(TOKEN_KEY); throw e; }
      location.hash = '#/overview';
      route();
    });
  });
  main().replaceChildren(form);
  input.focus();
}

function runCleanup() { cleanup.forEach((f) => f()); cleanup = []; }

// ---------- overview ----------
function chart(title) {
  const canvas = el('canvas', { width: 600, height: 120, role: 'img', 'aria-label': title });
  const label = el('div', { class: 'l' }, title);
  const points = [];
  function draw() {
    const ctx = canvas.getContext('2d');
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = '#e6e9ef'; ctx.beginPath(); ctx.moveTo(0, h - 1); ctx.lineTo(w, h - 1); ctx.stroke();
    const max = Math.max(1, ...points);
    // The newest point at the right edge, one slot per poll (2 s), 60 slots.
    const x = (i) => w - (points.length - 1 - i) * (w / 59);
    const y = (v) => h - 4 - (v / max) * (h - 24);
    ctx.beginPath();
    points.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.strokeStyle = '#2b5cd6'; ctx.lineWidth = 2; ctx.stroke();
    if (points.length > 1) {
      ctx.lineTo(x(points.length - 1), h); ctx.lineTo(x(0), h); ctx.closePath();
      ctx.fillStyle = 'rgba(43, 92, 214, 0.12)'; ctx.fill();
    }
    ctx.fillStyle = '#5b6578'; ctx.font = '12px system-ui'; ctx.fillText(`max ${max.toFixed(1)}/s`, 6, 14);
  }
  return { node: el('div', { class: 'stat' }, label, canvas), push(v) { points.push(v); if (points.length > 60) points.shift(); label.textContent = `${title}: ${v.toFixed(1)}/s`; draw(); } };
}

function overview() {
  const grid = el('div', { class: 'grid', id: 'stats' }, el('p', { class: 'loading' }, 'Loading…'));
  const box = errorBox();
  const acts = chart('activities/s'), dels = chart('deliveries/s');
  const nodes = el('div', { id: 'nodes' });
  main().replaceChildren(el('h1', {}, 'Overview'), box, grid, el('div', { class: 'charts' }, acts.node, dels.node), nodes,
    el('p', { class: 'hint' }, 'Polled every 2 s from /admin/api/stats; rates are computed from the counts.'));
  let last = null;
  async function tick() {
    try {
      const s = await api('GET', '/stats');
      box.textContent = '';
      const d = s.deliveries || {};
      const cells = [['tenants', s.tenants], ['channels', s.channels], ['conversations', s.conversations], ['activities', s.activities],
        ['deliveries pending', d.pending], ['delivered', d.delivered], ['failed', d.failed], ['live connections', s.connections]];
      grid.replaceChildren(...cells.map(([l, n]) => el('div', { class: 'stat' }, el('div', { class: 'n' }, n ?? '—'), el('div', { class: 'l' }, l))));
      // In a cluster: every node this one hears, with its own live connections.
      nodes.replaceChildren(...(s.nodes ? [el('h2', {}, 'Nodes'), table(['node', 'live connections', 'last heard'], s.nodes.map((n) =>
        el('tr', {}, el('td', {}, n.this_node ? `${n.id} (this node)` : n.id), el('td', {}, String(n.connections)),
          el('td', {}, n.this_node ? '—' : `${(n.last_seen_ms / 1000).toFixed(1)} s ago`))))] : []));
      const now = performance.now();
      const delivered = (d.delivered || 0) + (d.failed || 0);
      if (last) {
        const dt = (now - last.at) / 1000;
        acts.push(Math.max(0, (s.activities - last.activities) / dt));
        dels.push(Math.max(0, (delivered - last.delivered) / dt));
      }
      last = { at: now, activities: s.activities, delivered };
    } catch (e) { box.textContent = describe(e); }
  }
  tick();
  const timer = setInterval(tick, 2000);
  cleanup.push(() => clearInterval(timer));
}

// ---------- tenants ----------
async function tenants() {
  const box = errorBox();
  const shown = el('div', { id: 'shown-once' });
  const list = el('div', {}, el('p', { class: 'loading' }, 'Loading…'));
  const name = el('input', { id: 'tenant-name', required: true, placeholder: 'acme' });
  const create = el('button', { type: 'submit' }, 'Create tenant');
  const form = el('form', { class: 'card row' }, el('div', {}, el('label', { for: 'tenant-name' }, 'New tenant name'), name), el('div', {}, create));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(create, box, async () => {
      const r = await api('POST', '/tenants', { name: name.value });
      shown.replaceChildren(secretBox(`API key of ${r.tenant.name}`, r.api_key));
      name.value = '';
      await load();
    });
  });
  main().replaceChildren(el('h1', {}, 'Tenants'), form, box, shown, list);
  async function load() {
    try {
      const page = await api('GET', '/tenants?limit=200');
      list.replaceChildren(table(['name', 'id', 'status', 'created', ''], page.data.map((t) => {
        const toggle = el('button', { class: 'secondary', type: 'button', onclick: () => busy(toggle, box, async () => {
          await api('PATCH', `/tenants/${t.id}`, { status: t.status === 'active' ? 'inactive' : 'active' }); await load();
        }) }, t.status === 'active' ? 'Disable' : 'Enable');
        const rotate = el('button', { class: 'secondary', type: 'button', onclick: () => busy(rotate, box, async () => {
          if (!confirm(`Rotate the API key of ${t.name}? The old key stops working at once.`)) return;
          const r = await api('POST', `/tenants/${t.id}/rotate-key`);
          shown.replaceChildren(secretBox(`New API key of ${t.name}`, r.api_key));
        }) }, 'Rotate key');
        const channels = el('a', { href: `#/channels?tenant=${t.id}` }, 'Channels');
        return el('tr', {}, el('td', {}, t.name), el('td', { class: 'mono id' }, t.id), el('td', {}, statusCell(t.status)), el('td', {}, fmtTime(t.created_at)), el('td', {}, toggle, rotate, ' ', channels));
      })));
      if (!page.data.length) list.replaceChildren(el('p', { class: 'hint' }, 'No tenants yet.'));
    } catch (e) { list.replaceChildren(el('p', { class: 'error' }, describe(e))); }
  }
  await load();
}

// ---------- channels ----------
async function tenantPicker(selected, onchange) {
  const select = el('select', { id: 'tenant-pick' }, el('option', { value: '' }, '— choose a tenant —'));
  const page = await api('GET', '/tenants?limit=1000');
  for (const t of page.data) select.append(el('option', { value: t.id, selected: t.id === selected }, t.name));
  select.addEventListener('change', () => onchange(select.value));
  return el('div', {}, el('label', { for: 'tenant-pick' }, 'Tenant'), select);
}

function params() { return new URLSearchParams(location.hash.split('?')[1] || ''); }
function setParams(base, p) { location.hash = `${base}${qs(p)}`; }

async function channels() {
  const tenant = params().get('tenant') || '';
  const box = errorBox();
  const shown = el('div', { id: 'shown-once' });
  const list = el('div', {});
  main().replaceChildren(el('h1', {}, 'Channels'), el('p', { class: 'loading' }, 'Loading…'));
  let picker;
  try { picker = await tenantPicker(tenant, (t) => setParams('#/channels', { tenant: t })); } catch (e) { main().replaceChildren(el('h1', {}, 'Channels'), el('p', { class: 'error' }, describe(e))); return; }
  main().replaceChildren(el('h1', {}, 'Channels'), el('div', { class: 'row' }, picker), box, shown);
  if (!tenant) { main().append(el('p', { class: 'hint' }, 'Choose a tenant to see and create its channels.')); return; }
  main().append(channelForm(tenant, shown, load), list);
  async function load() {
    list.replaceChildren(el('p', { class: 'loading' }, 'Loading…'));
    try {
      const page = await api('GET', `/channels${qs({ tenant_id: tenant, limit: 500 })}`);
      list.replaceChildren(table(['name', 'type', 'id', 'status', 'config', ''], page.data.map((c) => {
        const toggle = el('button', { class: 'secondary', type: 'button', onclick: () => busy(toggle, box, async () => {
          await api('PATCH', `/channels/${c.id}`, { status: c.status === 'active' ? 'inactive' : 'active' }); await load();
        }) }, c.status === 'active' ? 'Deactivate' : 'Activate');
        const rotate = el('button', { class: 'secondary', type: 'button', onclick: () => busy(rotate, box, async () => {
          const r = await api('POST', `/channels/${c.id}/rotate-secret`);
          shown.replaceChildren(secretBox(`New secret of ${c.name}`, r.secret));
        }) }, 'Rotate secret');
        return el('tr', { 'data-channel': c.name }, el('td', {}, c.name), el('td', {}, c.type), el('td', { class: 'mono id' }, c.id), el('td', {}, statusCell(c.status)),
          el('td', { class: 'mono id' }, JSON.stringify(c.config)), el('td', {}, toggle, rotate, ' ', el('a', { href: `#/deliveries?channel=${c.id}` }, 'Deliveries')));
      })));
      if (!page.data.length) list.replaceChildren(el('p', { class: 'hint' }, 'No channels yet.'));
    } catch (e) { list.replaceChildren(el('p', { class: 'error' }, describe(e))); }
  }
  await load();
}

function channelForm(tenant, shown, reload) {
  const box = errorBox();
  const name = el('input', { id: 'channel-name', name: 'name', required: true });
  const type = el('select', { id: 'channel-type', name: 'type' }, Object.keys(CHANNEL_TYPES).map((t) => el('option', { value: t }, t)));
  const fields = el('div', { class: 'row', id: 'config-fields' });
  const errs = {};
  const fieldErr = (key) => (errs[key] = el('div', { class: 'field-error', id: `err-${key.replace('.', '-')}`, role: 'alert' }));
  const inputs = {};
  function render() {
    fields.replaceChildren();
    for (const k of Object.keys(inputs)) delete inputs[k];
    for (const f of CHANNEL_TYPES[type.value]) {
      const id = `config-${f.key}`;
      inputs[f.key] = el('input', { id, name: `config.${f.key}`, placeholder: f.hint || '' });
      fields.append(el('div', {}, el('label', { for: id }, `${f.key}${f.required ? ' *' : ''}`), inputs[f.key], fieldErr(`config.${f.key}`)));
    }
    if (!CHANNEL_TYPES[type.value].length) fields.append(el('p', { class: 'hint' }, 'This type takes no configuration.'));
  }
  type.addEventListener('change', render);
  const create = el('button', { type: 'submit' }, 'Create channel');
  const form = el('form', { class: 'card', id: 'channel-form' }, el('h2', {}, 'New channel'),
    el('div', { class: 'row' }, el('div', {}, el('label', { for: 'channel-name' }, 'Name *'), name, fieldErr('name')), el('div', {}, el('label', { for: 'channel-type' }, 'Type'), type, fieldErr('type'))),
    fields, fieldErr('config'), create, box);
  render();
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    Object.values(errs).forEach((e) => (e.textContent = ''));
    busy(create, null, async () => {
      const config = {};
      for (const f of CHANNEL_TYPES[type.value]) {
        const v = inputs[f.key].value.trim();
        if (!v) continue;
        if (f.json) { try { config[f.key] = JSON.parse(v); } catch { errs[`config.${f.key}`].textContent = 'must be JSON'; return; } } else config[f.key] = v;
      }
      try {
        const c = await api('POST', `/tenants/${tenant}/channels`, { name: name.value, type: type.value, config });
        shown.replaceChildren(secretBox(`Secret of channel ${c.name}`, c.secret));
        name.value = ''; render(); box.textContent = '';
        await reload();
      } catch (e) {
        const at = e.field && (errs[e.field] || (e.field.startsWith('config') && errs.config));
        if (at) at.textContent = e.message; else box.textContent = describe(e);
      }
    });
  });
  return form;
}

// ---------- conversations ----------
async function conversations() {
  const p = params();
  if (p.get('id')) return conversation(p.get('id'));
  const filters = { tenant_id: p.get('tenant') || '', channel_id: p.get('channel') || '', status: p.get('status') || '', cursor: p.get('cursor') || '' };
  const tenant = el('input', { id: 'f-tenant', value: filters.tenant_id, placeholder: 'tenant id' });
  const channel = el('input', { id: 'f-channel', value: filters.channel_id, placeholder: 'channel id' });
  const status = el('select', { id: 'f-status' }, ['', 'active', 'closed'].map((s) => el('option', { value: s, selected: s === filters.status }, s || 'any')));
  const form = el('form', { class: 'card row' }, el('div', {}, el('label', { for: 'f-tenant' }, 'Tenant'), tenant), el('div', {}, el('label', { for: 'f-channel' }, 'Channel'), channel),
    el('div', {}, el('label', { for: 'f-status' }, 'Status'), status), el('div', {}, el('button', { type: 'submit' }, 'Filter')));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); setParams('#/conversations', { tenant: tenant.value.trim(), channel: channel.value.trim(), status: status.value }); });
  const list = el('div', {}, el('p', { class: 'loading' }, 'Loading…'));
  main().replaceChildren(el('h1', {}, 'Conversations'), form, list);
  try {
    const page = await api('GET', `/conversations${qs({ tenant_id: filters.tenant_id, channel_id: filters.channel_id, status: filters.status, cursor: filters.cursor, limit: 50 })}`);
    list.replaceChildren(table(['id', 'channel', 'external id', 'status', 'last seq', 'updated'], page.data.map((c) =>
      el('tr', {}, el('td', { class: 'mono' }, el('a', { href: `#/conversations?id=${c.id}` }, c.id)), el('td', { class: 'mono' }, c.channel_id), el('td', {}, c.external_id || '—'),
        el('td', {}, statusCell(c.status)), el('td', {}, c.last_seq), el('td', {}, fmtTime(c.updated_at))))));
    if (!page.data.length) list.replaceChildren(el('p', { class: 'hint' }, 'No conversations match.'));
    if (page.next) list.append(el('button', { class: 'secondary', type: 'button', onclick: () => setParams('#/conversations', { tenant: filters.tenant_id, channel: filters.channel_id, status: filters.status, cursor: page.next }) }, 'Next page'));
  } catch (e) { list.replaceChildren(el('p', { class: 'error' }, describe(e))); }
}

async function conversation(id) {
  const box = errorBox();
  const head = el('div', { class: 'card' }, el('p', { class: 'loading' }, 'Loading…'));
  const dot = el('span', { class: 'live' });
  const liveLabel = el('span', { id: 'live-state' }, 'connecting…');
  const tail = el('div', { class: 'tail card', id: 'tail' });
  const seen = new Set();
  const text = el('textarea', { id: 'op-text', placeholder: 'message text' });
  const sender = el('input', { id: 'op-sender', value: 'operator' });
  const send = el('button', { type: 'submit' }, 'Post as operator');
  const sendBox = errorBox();
  const form = el('form', { class: 'card', id: 'op-form' }, el('h2', {}, 'Post an activity'), el('label', { for: 'op-sender' }, 'Sender'), sender, el('label', { for: 'op-text' }, 'Text'), text, el('div', {}, send), sendBox);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(send, sendBox, async () => { const a = await api('POST', `/conversations/${id}/activities`, { type: 'message', text: text.value, sender: sender.value }); text.value = ''; add(a); });
  });
  main().replaceChildren(el('p', {}, el('a', { href: '#/conversations' }, '← Conversations')), el('h1', {}, 'Conversation'), head, box,
    el('h2', {}, dot, liveLabel, ' — activities in seq order'), tail, form);
  const lastSeqLabel = el('span', { id: 'last-seq' }, '');
  function add(a) {
    if (seen.has(a.seq)) return;
    seen.add(a.seq);
    lastSeqLabel.textContent = String(Math.max(a.seq, Number(lastSeqLabel.textContent) || 0));
    const deliveries = el('div', { class: 'meta' });
    const node = el('div', { class: 'activity', 'data-seq': a.seq }, el('div', { class: 'meta' }, `#${a.seq} · ${a.type} · ${a.sender} · ${fmtTime(a.created_at)}`),
      el('div', { class: 'text' }, a.text ?? ''), deliveries);
    const after = [...tail.children].find((n) => Number(n.dataset.seq) > a.seq);
    tail.insertBefore(node, after || null);
    tail.scrollTop = tail.scrollHeight;
    api('GET', `/deliveries${qs({ activity_id: a.id })}`).then((page) => {
      deliveries.replaceChildren(...page.data.map((d) => el('span', {}, 'delivery: ', statusCell(d.status), ` (${d.attempts} attempts${d.last_error ? `, ${d.last_error}` : ''}) `)));
    }).catch(() => {});
  }
  let lastSeq = 0;
  try {
    const c = await api('GET', `/conversations/${id}`);
    lastSeqLabel.textContent = String(c.last_seq);
    head.replaceChildren(el('div', { class: 'mono' }, `id ${c.id}`), el('div', { class: 'mono' }, `tenant ${c.tenant_id} · channel ${c.channel_id}`), el('div', {}, 'status ', statusCell(c.status), ' · last seq ', lastSeqLabel),
      el('div', { class: 'mono' }, `metadata ${JSON.stringify(c.metadata)}`));
    for (;;) {
      const page = await api('GET', `/conversations/${id}/activities?after_seq=${lastSeq}&limit=500`);
      page.data.forEach(add);
      if (!page.data.length) break;
      lastSeq = page.data[page.data.length - 1].seq;
    }
  } catch (e) { box.textContent = describe(e); }
  live(id, () => lastSeq, (a) => { lastSeq = Math.max(lastSeq, a.seq); add(a); }, (on, msg) => { dot.className = on ? 'live on' : 'live'; liveLabel.textContent = msg; });
}

// The live tail: a short-lived client token from the admin API, then a
// Phoenix V2 join of conversation:{id}: the real-time stream itself.
function live(id, since, onActivity, onState) {
  let socket = null, stopped = false, beat = null, retry = null;
  async function connect() {
    try {
      const t = await api('POST', `/conversations/${id}/live-token`);
      const proto = location.protocol === 'https:' ? 'wss' : 'ws';
      socket = new WebSocket(`${proto}://${location.host}/socket/websocket?vsn=2.0.0&token=${encodeURIComponent(t.token)}`);
    } catch (e) { onState(false, `live tail unavailable: ${describe(e)}`); schedule(); return; }
    socket.onopen = () => {
      socket.send(JSON.stringify(['1', '1', `conversation:${id}`, 'phx_join', { last_seq: since() }]));
      beat = setInterval(() => socket.send(JSON.stringify([null, 'hb', 'phoenix', 'heartbeat', {}])), 25000);
    };
    socket.onmessage = (m) => {
      let msg; try { msg = JSON.parse(m.data); } catch { return; }
      const [, , , event, payload] = msg;
      if (event === 'phx_reply' && msg[1] === '1') onState(payload.status === 'ok', payload.status === 'ok' ? 'live' : 'join refused');
      if (event === 'activity') onActivity(payload);
    };
    socket.onclose = () => { clearInterval(beat); onState(false, 'reconnecting…'); schedule(); };
  }
  function schedule() { if (!stopped) { clearTimeout(retry); retry = setTimeout(connect, 2000); } }
  connect();
  cleanup.push(() => { stopped = true; clearTimeout(retry); clearInterval(beat); if (socket) socket.close(); });
}

// ---------- deliveries ----------
async function deliveries() {
  const channelId = params().get('channel') || '';
  const box = errorBox();
  const counts = el('div', {}, el('p', { class: 'loading' }, 'Loading…'));
  const lists = el('div', {});
  main().replaceChildren(el('h1', {}, 'Deliveries'), box, el('h2', {}, 'By channel'), counts, lists);
  try {
    const page = await api('GET', '/channels?limit=200');
    const rows = await Promise.all(page.data.map(async (c) => {
      const n = await api('GET', `/channels/${c.id}/delivery-counts`);
      const retry = el('button', { class: 'secondary', type: 'button', disabled: !n.failed, onclick: () => busy(retry, box, async () => {
        const r = await api('POST', `/channels/${c.id}/retry-failed`); box.textContent = ''; lists.prepend(el('p', { class: 'hint' }, `${r.requeued} deliveries of ${c.name} requeued.`)); setTimeout(route, 300);
      }) }, 'Retry all failed');
      return el('tr', { 'data-channel': c.name }, el('td', {}, el('a', { href: `#/deliveries?channel=${c.id}` }, c.name)), el('td', {}, c.type), el('td', {}, n.pending), el('td', {}, n.delivered), el('td', {}, n.failed), el('td', {}, retry));
    }));
    counts.replaceChildren(table(['channel', 'type', 'pending', 'delivered', 'failed', ''], rows));
  } catch (e) { counts.replaceChildren(el('p', { class: 'error' }, describe(e))); }
  for (const status of ['failed', 'pending', 'delivered']) {
    const section = el('div', { id: `list-${status}` }, el('h2', {}, `${status[0].toUpperCase()}${status.slice(1)}${channelId ? ' (this channel)' : ''}`), el('p', { class: 'loading' }, 'Loading…'));
    lists.append(section);
    try {
      const page = await api('GET', `/deliveries${qs({ status, channel_id: channelId, limit: 50 })}`);
      const rows = page.data.map((d) => {
        const retry = status === 'failed' ? el('button', { class: 'secondary', type: 'button', onclick: () => busy(retry, box, async () => { await api('POST', `/deliveries/${d.id}/retry`); route(); }) }, 'Retry') : '';
        return el('tr', { 'data-delivery': d.id }, el('td', { class: 'mono' }, d.id), el('td', {}, statusCell(d.status)), el('td', {}, d.attempts), el('td', {}, d.status === 'pending' ? fmtTime(d.next_attempt_at) : '—'),
          el('td', {}, d.last_error || '—'), el('td', {}, retry));
      });
      section.replaceChildren(section.firstChild, rows.length ? table(['delivery', 'status', 'attempts', 'next attempt', 'last error', ''], rows) : el('p', { class: 'hint' }, 'None.'));
    } catch (e) { section.replaceChildren(section.firstChild, el('p', { class: 'error' }, describe(e))); }
  }
}

// ---------- routing ----------
const PAGES = { overview, tenants, channels, conversations, deliveries };

function route() {
  runCleanup();
  if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  const name = (location.hash.replace(/^#\//, '').split('?')[0]) || 'overview';
  document.querySelectorAll('nav a').forEach((a) => a.classList.toggle('active', a.getAttribute('href') === `#/${name}`));
  const page = PAGES[name] || overview;
  Promise.resolve(page()).catch((e) => main().replaceChildren(el('p', { class: 'error' }, describe(e))));
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('logout').addEventListener('click', () => logout());
  window.addEventListener('hashchange', route);
  route();
});
