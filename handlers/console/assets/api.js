// The console's only way to the service: same-origin fetches that carry the bearer
// token as an Authorization header and never any cookie.
const KEY = 'mcpes.console.token';

export const session = {
  token: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function request(path, { method = 'GET', accept = 'application/json', signal } = {}) {
  return fetch(path, {
    method,
    signal,
    credentials: 'omit',
    cache: 'no-store',
    headers: { Authorization: 'Bearer ' + session.token(), Accept: accept },
  });
}

async function fail(res) {
  let code = '', message = res.statusText;
  try {
    const body = await res.json();
    code = body.error?.code ?? '';
    message = body.error?.message ?? message;
  } catch { /* not JSON */ }
  throw new APIError(res.status, code, message);
}

// getJSON fetches path and returns its JSON body; an error status throws APIError.
export async function getJSON(path, opts) {
  const res = await request(path, opts);
  if (!res.ok) await fail(res);
  return res.json();
}

// postJSON is getJSON with POST (and no body).
export const postJSON = (path, opts) => getJSON(path, { ...opts, method: 'POST' });

// follow reads the live event feed (Server-Sent Events over fetch: the browser's own
// SSE client cannot send an Authorization header) and calls onEvent with each
// CloudEvent until signal aborts. After a dropped stream it reconnects from the last
// position seen.
export async function follow(path, after, onEvent, signal) {
  let last = after;
  while (!signal.aborted) {
    try {
      const sep = path.includes('?') ? '&' : '?';
      const res = await request(`${path}${sep}after=${last}`, { accept: 'text/event-stream', signal });
      if (!res.ok) await fail(res);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (!data) continue;
          const ev = JSON.parse(data);
          last = Math.max(last, Number(ev.sequence));
          onEvent(ev);
        }
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof APIError && err.status < 500) throw err;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// qs builds a query string from the non-empty entries of params.
export function qs(params) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
    else if (v !== undefined && v !== null && v !== '') p.set(k, v);
  }
  const s = p.toString();
  return s ? '?' + s : '';
}
