// Small DOM helpers. Everything the client shows is built from elements and text nodes; the only
// markup ever parsed is a message's `html`, as the server rendered it (see `setServerHtml`).

/** Builds an element: `h('a', {href, class, onclick}, 'text', child)`. Strings become text. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** The element with this id (the page's fixed skeleton lives in index.html). */
export const byId = (id) => document.getElementById(id);

/**
 * Puts a message's rendered body into `el`. The server's renderer guarantees it is safe to insert
 * as it is (no script, no handler, no javascript: URL); nothing else may come through here.
 */
export function setServerHtml(el, html) {
  el.innerHTML = html; // eslint-disable-line no-unsanitized/property -- the server's sanitised rendering
  for (const a of el.querySelectorAll('a[href]')) {
    a.target = '_blank';
    a.rel = 'nofollow noopener noreferrer';
  }
}

/**
 * Makes `parent`'s children exactly `nodes`, in order, moving only what is out of place, so a
 * node that stays (an edit box with the focus, a hovered message) is not disturbed.
 */
export function reconcile(parent, nodes) {
  let i = 0;
  for (const node of nodes) {
    const at = parent.childNodes[i];
    if (at !== node) parent.insertBefore(node, at || null);
    i += 1;
  }
  while (parent.childNodes.length > nodes.length) parent.lastChild.remove();
}

/** A display name: the display name, else the username. */
export const nameOf = (user) => (user && (user.display_name || user.username)) || 'someone';

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric', year: 'numeric' });

export const timeOf = (iso) => timeFmt.format(new Date(iso));
export const fullTimeOf = (iso) => fullFmt.format(new Date(iso));

/** The local calendar day of a timestamp, as a sortable key. */
export function dayKey(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** "Today", "Yesterday" or the date. */
export function dayLabel(iso) {
  const key = dayKey(iso);
  const now = new Date();
  if (key === dayKey(now.toISOString())) return 'Today';
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (key === dayKey(y.toISOString())) return 'Yesterday';
  return dayFmt.format(new Date(iso));
}

/** A client-chosen nonce (works outside secure contexts too). */
export function newNonce() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Whether the layout is the narrow (phone) one. */
export const isNarrow = () => window.matchMedia('(max-width: 720px)').matches;
