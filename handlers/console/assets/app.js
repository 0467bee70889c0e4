import { session, getJSON, APIError } from './api.js';
import { h } from './dom.js';
import { renderServers, renderServer } from './servers.js';
import { renderTimeline } from './timeline.js';
import { renderExplain } from './explain.js';
import { renderIntegrity } from './integrity.js';
import { renderCluster } from './cluster.js';

// ctx is what every view reads: who is signed in and, for the admin, which owner's
// scope is looked at ("" = the app scope and everything).
const ctx = { admin: false, owner: '', actor: '', abort: new AbortController() };

const $ = (id) => document.getElementById(id);

async function signIn(token) {
  session.set(token);
  try {
    const id = await getJSON('/v1/identity');
    ctx.admin = id.admin;
    ctx.owner = id.admin ? '' : id.owner;
    ctx.actor = id.actor;
  } catch (err) {
    session.clear();
    throw err;
  }
  $('signin').hidden = true;
  $('nav').hidden = false;
  $('view').hidden = false;
  renderWho();
  if (!location.hash || location.hash === '#') location.hash = '#servers';
  else route();
}

function signOut() {
  session.clear();
  location.hash = '';
  location.reload();
}

function renderWho() {
  const who = $('who');
  who.replaceChildren();
  if (ctx.admin) {
    const input = h('input', { id: 'owner-pick', value: ctx.owner, placeholder: 'app scope', size: 14, spellcheck: 'false' });
    const form = h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); ctx.owner = input.value.trim(); route(); } },
      h('label', { for: 'owner-pick' }, 'Owner'), input, h('button', { type: 'submit' }, 'Apply'));
    who.append(h('span', { class: 'badge admin' }, 'admin'), form);
  } else {
    who.append(h('span', { class: 'badge' }, ctx.actor));
  }
  who.append(h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
}

async function route() {
  ctx.abort.abort();
  ctx.abort = new AbortController();
  const [name, ...rest] = location.hash.slice(1).split('/');
  const view = $('view');
  view.replaceChildren();
  for (const a of document.querySelectorAll('#nav a')) {
    a.toggleAttribute('aria-current', a.getAttribute('href') === '#' + name);
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
  const render = { servers: renderServers, server: renderServer, timeline: renderTimeline,
    explain: renderExplain, integrity: renderIntegrity, cluster: renderCluster }[name] ?? renderServers;
  try {
    await render(view, ctx, rest.map(decodeURIComponent));
  } catch (err) {
    if (err instanceof APIError && err.status === 401) return signOut();
    if (!ctx.abort.signal.aborted) view.append(h('p', { class: 'error', role: 'alert' }, err.message));
  }
  $('main').focus({ preventScroll: true });
}

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('signin-error').textContent = '';
  try {
    await signIn($('token').value.trim());
    $('token').value = '';
  } catch (err) {
    $('signin-error').textContent = err.status === 401 ? 'That token is not valid here.' : err.message;
  }
});
window.addEventListener('hashchange', () => { if (session.token()) route(); });
if (session.token()) signIn(session.token()).catch(() => {});
