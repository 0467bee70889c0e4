import { getJSON, follow, qs } from './api.js';
import { h, fmtTime, kindOf, laneOf } from './dom.js';

// Kind groups the reviewer filters by; each is a list of facts (event types without
// "mcpes." and the version).
const GROUPS = {
  config: ['server.registered', 'server.config_changed', 'server.removed'],
  inspection: ['server.inspected', 'server.tools_changed', 'server.reinspection_requested'],
  failure: ['server.inspection_failed', 'connection.open_failed', 'connection.lost'],
  decision: ['connection.opened', 'connection.refused', 'connection.evicted'],
  tool: ['tool.called'],
};
const groupOf = (kind) => Object.keys(GROUPS).find((g) => GROUPS[g].includes(kind)) ?? 'other';

// state survives re-renders of the view (zoom, filters, live refreshes).
const state = { from: null, to: null, live: true, server: '', groups: new Set(Object.keys(GROUPS)), buckets: 60 };
// LIVE_MARKS bounds the events drawn from the live feed between two refreshes.
const LIVE_MARKS = 200;
// refresh fetches and draws the current window again (set by renderTimeline).
let refresh = async () => {};

function params(ctx) {
  const kinds = state.groups.size === Object.keys(GROUPS).length ? [] : [...state.groups].flatMap((g) => GROUPS[g]);
  const p = { owner: ctx.owner, server: state.server, kind: kinds, buckets: state.buckets };
  if (!state.live && state.from) Object.assign(p, { from: state.from.toISOString(), to: state.to.toISOString() });
  else if (state.from) Object.assign(p, { from: new Date(Date.now() - (state.to - state.from)).toISOString() });
  return p;
}

function matches(ev) {
  const kind = kindOf(ev.type);
  return (!state.server || laneOf(ev.subject) === state.server) && state.groups.has(groupOf(kind));
}

function eventButton(e, from, span) {
  const left = Math.min(100, Math.max(0, ((new Date(e.time) - from) / span) * 100));
  const label = `${kindOf(e.type)} #${e.position} at ${fmtTime(e.time)}${e.reason ? ', reason ' + e.reason : ''}${e.subject ? ', ' + e.subject : ''}`;
  return h('button', { type: 'button', class: 'ev ' + groupOf(kindOf(e.type)), style: { left: left + '%' },
    'data-testid': 'timeline-event', 'data-type': e.type, 'data-position': e.position,
    title: label, 'aria-label': label,
    onclick: () => document.getElementById('ev-' + e.position)?.scrollIntoView({ block: 'center' }) });
}

export async function renderTimeline(view, ctx) {
  view.append(h('h2', {}, 'Timeline', ctx.owner ? h('span', { class: 'sub' }, ` owner ${ctx.owner}`) : null));
  const server = h('input', { id: 'tl-server', value: state.server, size: 16, spellcheck: 'false', placeholder: 'all' });
  const boxes = Object.keys(GROUPS).map((g) => h('label', { class: 'check' },
    h('input', { type: 'checkbox', name: 'kind', value: g, checked: state.groups.has(g) }), ' ', g));
  const form = h('form', { class: 'controls', onsubmit: (e) => {
    e.preventDefault();
    state.server = server.value.trim();
    state.groups = new Set(boxes.map((b) => b.firstChild).filter((b) => b.checked).map((b) => b.value));
    rerender();
  } },
  h('label', { for: 'tl-server' }, 'Server'), server,
  h('fieldset', {}, h('legend', {}, 'Kinds'), boxes),
  h('button', { type: 'submit' }, 'Filter'));
  const zoom = (f) => () => { f(); rerender(); };
  const span = () => state.to - state.from;
  const nav = h('div', { class: 'zoom', role: 'group', 'aria-label': 'Zoom and pan' },
    h('button', { type: 'button', onclick: zoom(() => { const s = span() / 4; state.from = new Date(+state.from + s); state.to = new Date(+state.to - s); state.live = false; }) }, 'Zoom in'),
    h('button', { type: 'button', onclick: zoom(() => { const s = span() / 2; state.from = new Date(+state.from - s); state.to = new Date(+state.to + s); }) }, 'Zoom out'),
    h('button', { type: 'button', onclick: zoom(() => { const s = span() / 2; state.from = new Date(+state.from - s); state.to = new Date(+state.to - s); state.live = false; }) }, '← Earlier'),
    h('button', { type: 'button', onclick: zoom(() => { const s = span() / 2; state.from = new Date(+state.from + s); state.to = new Date(+state.to + s); state.live = false; }) }, 'Later →'),
    h('button', { type: 'button', 'aria-pressed': String(state.live), onclick: zoom(() => { state.live = true; }) }, 'Live'),
    h('button', { type: 'button', onclick: zoom(() => { state.from = state.to = null; state.live = true; }) }, 'Whole log'));
  const body = h('div', { id: 'tl-body', 'aria-live': 'polite' });
  view.append(form, nav, body);

  const signal = ctx.abort.signal;
  let timer = null;
  let asked = 0;
  async function rerender() {
    const mine = ++asked;
    const tl = await getJSON('/v1/audit/timeline' + qs(params(ctx)), { signal });
    if (mine !== asked) return tl; // a newer request will draw
    state.from = new Date(tl.from);
    state.to = new Date(tl.to);
    nav.querySelector('[aria-pressed]').setAttribute('aria-pressed', String(state.live));
    draw(body, tl);
    return tl;
  }
  refresh = rerender;
  const tl = await rerender();
  // Live: each new event the caller may see is drawn at once (up to LIVE_MARKS between
  // refreshes, so a busy log cannot flood the page), and at most every 1.5 s the
  // buckets are fetched again so counts and lanes stay the server's.
  let drawn = 0;
  follow('/v1/events' + qs({ owner: ctx.owner }), tl.head, (ev) => {
    if (!state.live || !matches(ev)) return;
    if (drawn++ < LIVE_MARKS) addLive(body, ev);
    timer ??= setTimeout(() => {
      timer = null;
      drawn = 0;
      if (!signal.aborted) rerender().catch(() => {});
    }, 1500);
  }, signal).catch(() => {});
}

function laneRow(name) {
  return h('div', { class: 'lane', 'data-lane': name },
    h('div', { class: 'lane-name', id: 'lane-' + name }, name),
    h('div', { class: 'track', role: 'group', 'aria-labelledby': 'lane-' + name }));
}

function draw(body, tl) {
  const from = new Date(tl.from), to = new Date(tl.to), span = Math.max(1, to - from);
  body.replaceChildren();
  body.dataset.from = tl.from;
  body.dataset.to = tl.to;
  body.append(h('p', { class: 'axis' }, h('span', {}, fmtTime(tl.from)), h('span', {}, `${tl.buckets.length} buckets of ${fmtDur(tl.stepMs)}`), h('span', {}, fmtTime(tl.to))));
  const lanes = h('div', { class: 'lanes' });
  const tracks = {};
  for (const l of tl.lanes) {
    const row = laneRow(l);
    tracks[l] = row.lastChild;
    lanes.append(row);
  }
  const width = 100 / tl.buckets.length;
  tl.buckets.forEach((b, i) => {
    if (b.exact || !b.counts) return;
    for (const [lane, kinds] of Object.entries(b.counts)) {
      const n = Object.values(kinds).reduce((a, c) => a + c, 0);
      const top = Object.entries(kinds).sort((x, y) => y[1] - x[1])[0][0];
      const label = `about ${n} events in ${lane} from ${fmtTime(b.start)}: ` + Object.entries(kinds).map(([k, c]) => `${k} ${c}`).join(', ');
      tracks[lane]?.append(h('button', { type: 'button', class: 'bar ' + groupOf(top), title: label, 'aria-label': label + '. Zoom in.',
        style: { left: i * width + '%', width: width + '%', opacity: Math.min(1, 0.25 + Math.log10(n + 1) / 5) },
        onclick: () => { state.from = new Date(b.start); state.to = new Date(+state.from + tl.stepMs); state.live = false; refresh(); } }));
    }
  });
  for (const e of tl.events) tracks[e.lane]?.append(eventButton(e, from, span));
  if (!tl.lanes.length) lanes.append(h('p', {}, 'No events in this window.'));
  body.append(lanes, legend());
  const rows = h('tbody', {}, tl.events.slice(-300).reverse().map(eventRow));
  body.append(h('table', { class: 'events' }, h('caption', {}, tl.truncated ? 'Newest events in view (more exist: zoom in)' : 'Events in view, newest first'),
    h('thead', {}, h('tr', {}, ['Position', 'Time', 'Server', 'Kind', 'Actor', 'Reason'].map((c) => h('th', { scope: 'col' }, c)))), rows));
}

function eventRow(e) {
  return h('tr', { id: 'ev-' + e.position }, h('td', { class: 'num' }, e.position), h('td', {}, fmtTime(e.time)),
    h('td', {}, e.lane), h('td', {}, h('span', { class: 'dot ' + groupOf(e.kind) }), ' ', e.kind), h('td', {}, e.actor ?? ''), h('td', {}, e.reason ?? ''));
}

function addLive(body, ev) {
  const lane = laneOf(ev.subject);
  let row = body.querySelector(`.lane[data-lane="${CSS.escape(lane)}"]`);
  const lanes = body.querySelector('.lanes');
  if (!lanes) return;
  if (!row) {
    lanes.querySelector(':scope > p')?.remove();
    row = laneRow(lane);
    lanes.append(row);
  }
  const from = new Date(body.dataset.from), to = Math.max(Date.now(), new Date(body.dataset.to));
  const e = { position: Number(ev.sequence), type: ev.type, kind: kindOf(ev.type), lane, subject: ev.subject, time: ev.time, actor: ev.actor, reason: ev.reason };
  row.lastChild.append(eventButton(e, from, Math.max(1, to - from)));
  body.querySelector('table.events tbody')?.prepend(eventRow(e));
}

function legend() {
  return h('ul', { class: 'legend', 'aria-label': 'Legend' }, Object.keys(GROUPS).map((g) => h('li', {}, h('span', { class: 'dot ' + g }), ' ', g)),
    h('li', {}, h('span', { class: 'swatch' }), ' many events, coloured by the commonest kind (estimated; select to zoom in)'));
}

function fmtDur(ms) {
  if (ms < 1000) return ms + ' ms';
  if (ms < 120e3) return Math.round(ms / 1000) + ' s';
  if (ms < 7200e3) return Math.round(ms / 60e3) + ' min';
  if (ms < 172800e3) return Math.round(ms / 3600e3) + ' h';
  return Math.round(ms / 86400e3) + ' d';
}
