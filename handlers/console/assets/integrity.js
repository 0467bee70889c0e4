import { h } from './dom.js';
import { postJSON } from './api.js';

const KNOWN = new Set(['ok', 'events', 'decisions', 'problems']);

// The verify report of POST /v1/audit/verify: chain and decision replay, and any
// further fields the service adds (the newest signed checkpoint, the first bad
// position), shown as they come.
export async function renderIntegrity(view, ctx) {
  view.append(h('h2', {}, 'Integrity'));
  if (!ctx.admin) {
    view.append(h('p', {}, 'Verifying the whole log covers every owner, so it is for the admin only.'));
    return;
  }
  const out = h('div', { id: 'verify-out', 'aria-live': 'polite' });
  const run = async () => {
    out.replaceChildren(h('p', { 'data-testid': 'verify-status', 'data-ok': '', class: 'status running' }, 'verifying…'));
    try {
      out.replaceChildren(...report(await postJSON('/v1/audit/verify', { signal: ctx.abort.signal })));
    } catch (err) {
      if (!ctx.abort.signal.aborted) out.replaceChildren(h('p', { 'data-testid': 'verify-status', class: 'status error', role: 'alert' }, 'could not verify: ' + err.message));
    }
  };
  view.append(h('button', { type: 'button', onclick: run }, 'Verify again'), out);
  await run();
}

function report(rep) {
  const firstBad = rep.firstBadPosition ?? rep.firstBad ?? (rep.problems.map((p) => /position (\d+)/.exec(p)?.[1]).find(Boolean));
  const parts = [
    h('p', { 'data-testid': 'verify-status', 'data-ok': String(rep.ok), class: 'status ' + (rep.ok ? 'ok' : 'broken'), role: rep.ok ? null : 'alert' },
      rep.ok ? 'intact: hash chain and decision replay verified' : 'broken: the log does not verify'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Events checked'), h('dd', {}, rep.events),
      h('dt', {}, 'Decisions replayed'), h('dd', {}, rep.decisions),
      firstBad ? [h('dt', {}, 'First bad position'), h('dd', { id: 'first-bad' }, firstBad)] : null,
      Object.entries(rep).filter(([k]) => !KNOWN.has(k)).map(([k, v]) => [h('dt', {}, words(k)),
        h('dd', {}, typeof v === 'object' ? h('pre', { tabindex: 0 }, JSON.stringify(v, null, 2)) : String(v))])),
  ];
  if (rep.problems.length) {
    parts.push(h('h3', {}, `Problems (${rep.problems.length})`), h('ul', { class: 'problems' }, rep.problems.slice(0, 200).map((p) => h('li', {}, p))));
  }
  return parts;
}

// words turns a JSON key such as "newestCheckpoint" into "newest checkpoint".
function words(k) {
  return k.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}
