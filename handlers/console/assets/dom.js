// h builds an element: h('td', {class: 'x', 'data-name': n}, child, 'text', ...).
// Text is always set as text, never parsed as HTML.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function fmtTime(t) {
  if (!t || t.startsWith('0001-')) return '—';
  return new Date(t).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// kindOf is an event type without "mcpes." and its version: "connection.refused".
export function kindOf(type) {
  return type.replace(/^mcpes\./, '').replace(/\.v\d+$/, '');
}

export function laneOf(subject) {
  return subject.slice(subject.lastIndexOf('/') + 1);
}
