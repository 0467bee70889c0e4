import { getJSON, qs } from './api.js';
import { h, fmtTime, kindOf } from './dom.js';

function stateCell(s) {
  let reason = '';
  if (s.state === 'failed') reason = s.failureClass ? `${s.failureClass}: ${s.failureMessage ?? ''}` : s.failureMessage ?? '';
  else if (!s.mayConnect && s.rule) reason = 'rule ' + s.rule;
  return h('td', {}, h('span', { class: 'state ' + s.state }, s.state), reason ? h('div', { class: 'reason' }, reason) : null);
}

// drifted returns the names of the listed servers whose config stream records a tool
// drift (server.tools_changed), read exactly through the stream index. An owner reads
// only its own private servers' streams.
async function drifted(ctx, servers) {
  if (!servers.length) return new Set();
  const subject = servers.slice(0, 500).map((s) => `server/${s.scope}/${s.name}`);
  const tl = await getJSON('/v1/audit/timeline' + qs({ owner: ctx.owner, kind: 'server.tools_changed', buckets: 1, subject }));
  return new Set(tl.lanes);
}

export async function renderServers(view, ctx) {
  const scope = ctx.owner ? `owner ${ctx.owner}` : (ctx.admin ? 'the app scope' : '');
  view.append(h('h2', {}, 'Servers', scope ? h('span', { class: 'sub' }, ` visible to ${scope}`) : null));
  const list = await getJSON('/v1/servers' + qs({ owner: ctx.owner }));
  const drift = await drifted(ctx, list.servers).catch(() => new Set());
  if (!list.servers.length) {
    view.append(h('p', {}, 'No servers.'));
    return;
  }
  const rows = list.servers.map((s) => h('tr', { 'data-testid': 'server-row', 'data-name': s.name },
    h('th', { scope: 'row' }, h('a', { href: `#server/${encodeURIComponent(s.name)}` }, s.name),
      drift.has(s.name) ? h('span', { class: 'badge drift', title: 'The tool catalogue changed since an earlier inspection' }, 'drift') : null,
      s.shadowed ? h('span', { class: 'badge' }, 'shadowed') : null),
    h('td', {}, s.scope, s.source ? h('div', { class: 'reason' }, 'source ' + s.source) : null),
    stateCell(s),
    h('td', { class: 'num' }, s.version),
    h('td', { class: 'num' }, s.toolCount),
    h('td', {}, s.inspected ? (s.inspectionFailed ? 'failed' : 'ok') : 'not yet',
      s.inspection?.durationMs !== undefined ? h('div', { class: 'reason' }, `${s.inspection.durationMs} ms`) : null),
    h('td', {}, fmtTime(s.updatedAt))));
  view.append(h('table', {},
    h('caption', {}, `${list.servers.length} server(s)`),
    h('thead', {}, h('tr', {}, ['Name', 'Scope', 'State and reason', 'Config version', 'Tools', 'Last inspection', 'Updated']
      .map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows)));
}

export async function renderServer(view, ctx, [name]) {
  view.append(h('p', {}, h('a', { href: '#servers' }, '← Servers')));
  const [s, ex] = await Promise.all([
    getJSON(`/v1/servers/${encodeURIComponent(name)}` + qs({ owner: ctx.owner })),
    getJSON('/v1/audit/explain' + qs({ owner: ctx.owner || '_', server: name })).catch(() => null),
  ]);
  view.append(h('h2', {}, s.name, h('span', { class: 'sub' }, ` ${s.scope}, config version ${s.version}`)));
  view.append(h('dl', { class: 'facts' },
    h('dt', {}, 'State'), h('dd', {}, h('span', { class: 'state ' + s.state }, s.state),
      s.failureMessage ? ` — ${s.failureClass}: ${s.failureMessage}` : ''),
    h('dt', {}, 'May connect'), h('dd', {}, s.mayConnect ? 'yes' : `no (rule ${s.rule})`),
    h('dt', {}, 'Updated'), h('dd', {}, fmtTime(s.updatedAt)),
    s.source ? [h('dt', {}, 'Source'), h('dd', {}, s.source)] : null,
    s.inspection ? [h('dt', {}, 'Last inspection'), h('dd', {},
      `${s.inspection.serverName ?? ''} ${s.inspection.serverVersion ?? ''}, protocol ${s.inspection.protocolVersion ?? '?'}, ${s.inspection.durationMs} ms, digest ${String(s.inspection.digest).slice(0, 12)}…`)] : null));
  view.append(h('h3', {}, 'Config (secrets redacted)'), h('pre', { class: 'config', tabindex: 0 }, JSON.stringify(s.config, null, 2)));
  view.append(h('h3', {}, `Tools (${s.toolCount})`));
  if (s.tools?.length) {
    view.append(h('table', {}, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Tool'), h('th', { scope: 'col' }, 'Description'))),
      h('tbody', {}, s.tools.map((t) => h('tr', {}, h('th', { scope: 'row' }, t.name), h('td', {}, t.description ?? ''))))));
  } else {
    view.append(h('p', {}, 'No tools recorded.'));
  }
  view.append(h('h3', {}, 'History'));
  if (!ex?.history?.length) {
    view.append(h('p', {}, 'No history available.'));
    return;
  }
  view.append(h('table', {}, h('thead', {}, h('tr', {}, ['Position', 'Time', 'Event', 'Scope', 'By', 'What'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, ex.history.map((e) => h('tr', { class: kindOf(e.type) === 'server.tools_changed' ? 'drift-row' : '' },
      h('td', { class: 'num' }, e.position), h('td', {}, fmtTime(e.time)), h('td', {}, kindOf(e.type)),
      h('td', {}, e.scope), h('td', {}, e.actor), h('td', {}, e.summary, e.reason ? ` (reason: ${e.reason})` : ''))))));
}
