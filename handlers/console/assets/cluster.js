import { getJSON, qs, APIError } from './api.js';
import { h, fmtTime, kindOf } from './dom.js';

// Every cluster node's connection decisions, as each node shipped them to the
// decisions stream (GET /v1/cluster/decisions), a page at a time, newest page first.
export async function renderCluster(view, ctx) {
  view.append(h('h2', {}, 'Cluster decisions'));
  if (!ctx.admin) {
    view.append(h('p', {}, "Every node's decisions cover every owner, so they are for the admin only."));
    return;
  }
  const node = h('input', { id: 'cl-node', size: 14, spellcheck: 'false', placeholder: 'every node' });
  const out = h('div', { id: 'cl-out', 'aria-live': 'polite' });
  const load = async (before) => {
    try {
      const page = await getJSON('/v1/cluster/decisions' + qs({ node: node.value.trim(), before }), { signal: ctx.abort.signal });
      out.replaceChildren(...rendered(page, load));
    } catch (err) {
      if (ctx.abort.signal.aborted) return;
      const msg = err instanceof APIError && err.status === 404 ? 'This node is not part of a cluster.' : 'could not read the decisions: ' + err.message;
      out.replaceChildren(h('p', { class: 'error', role: 'alert', 'data-testid': 'cluster-error' }, msg));
    }
  };
  view.append(h('form', { class: 'controls', onsubmit: (e) => { e.preventDefault(); load(); } },
    h('label', { for: 'cl-node' }, 'Node'), node, h('button', { type: 'submit' }, 'Show')), out);
  await load();
}

function rendered(page, load) {
  const rows = page.decisions.slice().reverse();
  const parts = [h('p', { class: 'hint' }, 'Newest first. Each decision is the record its node sealed in its own log; the position is in that log.')];
  if (!rows.length) {
    parts.push(h('p', { 'data-testid': 'cluster-empty' }, 'No decisions shipped in this range.'));
  } else {
    parts.push(h('table', {}, h('thead', {}, h('tr', {}, ['Node', 'Time', 'Decision', 'Owner', 'Server', 'Rule or reason', 'Position'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((d) => {
        const data = d.event.data ?? {};
        const inputs = data.inputs ?? {};
        return h('tr', { 'data-testid': 'cluster-decision', 'data-node': d.node, 'data-type': kindOf(d.event.type), 'data-rule': data.rule ?? '' },
          h('td', {}, d.node), h('td', {}, fmtTime(d.event.time)), h('td', {}, kindOf(d.event.type)),
          h('td', {}, inputs.owner ?? ''), h('td', {}, inputs.server ?? ''),
          h('td', {}, data.rule ?? data.reason ?? data.class ?? ''), h('td', { class: 'num' }, Number(d.event.sequence)));
      }))));
  }
  if (page.older) parts.push(h('button', { type: 'button', onclick: () => load(page.older) }, 'Older'));
  return parts;
}
