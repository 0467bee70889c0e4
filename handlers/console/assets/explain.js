import { getJSON, qs } from './api.js';
import { h, fmtTime, kindOf } from './dom.js';

// The same question and answer as `mcpes explain --owner ID --server NAME --at TIME`:
// both read GET /v1/audit/explain.
export async function renderExplain(view, ctx) {
  view.append(h('h2', {}, 'Explain'));
  const servers = await getJSON('/v1/servers' + qs({ owner: ctx.owner })).catch(() => ({ servers: [] }));
  const owner = h('input', { id: 'ex-owner', value: ctx.admin ? (ctx.owner || '_') : ctx.owner, readonly: !ctx.admin, size: 12, spellcheck: 'false' });
  const server = h('input', { id: 'ex-server', list: 'ex-servers', required: true, size: 18, spellcheck: 'false' });
  const at = h('input', { id: 'ex-at', size: 32, spellcheck: 'false', placeholder: 'now', 'aria-describedby': 'ex-at-hint' });
  const pick = h('input', { id: 'ex-pick', type: 'datetime-local', step: 1,
    onchange: () => { if (pick.value) at.value = new Date(pick.value).toISOString(); } });
  const out = h('div', { id: 'ex-out', 'aria-live': 'polite' });
  const form = h('form', { class: 'controls', onsubmit: async (e) => {
    e.preventDefault();
    out.replaceChildren(h('p', {}, 'Explaining…'));
    try {
      const ex = await getJSON('/v1/audit/explain' + qs({ owner: owner.value.trim() || '_', server: server.value.trim(), at: at.value.trim() }));
      out.replaceChildren(...answer(ex));
    } catch (err) {
      out.replaceChildren(h('p', { class: 'error', role: 'alert' }, err.message));
    }
  } },
  h('label', { for: 'ex-owner' }, 'Owner'), owner,
  h('label', { for: 'ex-server' }, 'Server'), server,
  h('datalist', { id: 'ex-servers' }, servers.servers.map((s) => h('option', { value: s.name }))),
  h('label', { for: 'ex-pick' }, 'As of (local time)'), pick,
  h('label', { for: 'ex-at' }, 'As of (RFC 3339)'), at,
  h('span', { id: 'ex-at-hint', class: 'hint' }, 'blank = now; the picker fills this field'),
  h('button', { type: 'submit' }, 'Explain'));
  view.append(form, out);
}

function answer(ex) {
  const parts = [
    h('p', { class: 'verdict ' + (ex.mayConnect ? 'ok' : 'no') }, h('strong', {}, 'Verdict: '),
      h('span', { 'data-testid': 'explain-verdict' }, ex.verdict)),
    h('p', {}, `At ${fmtTime(ex.at)}, log position `, h('span', { id: 'ex-position' }, ex.position), `; rule ${ex.rule}.`),
  ];
  if (ex.found) {
    parts.push(h('h3', {}, `Config in force: ${ex.scope} scope, version ${ex.version}`),
      h('pre', { class: 'config', tabindex: 0 }, JSON.stringify(ex.config, null, 2)));
    if (ex.shadowed) parts.push(h('p', {}, `The owner's own server of this name (version ${ex.privateVersion}) is shadowed by the app server.`));
  } else {
    parts.push(h('p', {}, 'No config in force at that time.'));
  }
  parts.push(h('h3', {}, 'Config history up to then'), table(['Position', 'Time', 'Event', 'By', 'What'],
    ex.history.map((e) => [e.position, fmtTime(e.time), kindOf(e.type), e.actor, e.summary + (e.reason ? ` (reason: ${e.reason})` : '')])));
  parts.push(h('h3', {}, 'Connection decisions around then'), table(['Position', 'Time', 'Decision', 'By', 'What'],
    ex.decisions.map((d) => [d.position, fmtTime(d.time), kindOf(d.type) + (d.after ? ' (after)' : ''), d.actor, d.summary])));
  parts.push(h('details', {}, h('summary', {}, 'The same explanation as text (as the CLI prints it)'), h('pre', { tabindex: 0 }, ex.text)));
  return parts;
}

function table(cols, rows) {
  if (!rows.length) return h('p', {}, '(none)');
  return h('table', {}, h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, r.map((c, i) => h('td', { class: i === 0 ? 'num' : '' }, c))))));
}
