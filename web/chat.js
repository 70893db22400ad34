// The signed-in chat: the sidebar of rooms with unread badges, the open room's timeline and
// composer, typing, presence and members, and every realtime event. It keeps each loaded room's
// history contiguous: a gap seen on the socket, or a reconnect, is filled with `sync`, and
// messages are keyed by seq so whatever arrives twice is shown once.

import { api, ApiError } from './api.js';
import {
  h, byId, setServerHtml, reconcile, nameOf, timeOf, fullTimeOf, dayKey, dayLabel, newNonce, isNarrow,
} from './dom.js';
import { state, timeline, maxSeq, minSeq, learnUser, roomName } from './state.js';

/** The connection, set by app.js. */
let conn = null;
export function useConnection(c) {
  conn = c;
}

const PAGE = 50;
/** How close to the bottom (px) still counts as "at the bottom". */
const STICKY = 60;

// ---------------------------------------------------------------------------------------------
// Rooms and the sidebar

/** Replaces the room list (from `ready` or `GET /rooms`). */
export function setRooms(rooms) {
  const ids = new Set();
  for (const room of rooms) {
    ids.add(room.id);
    state.rooms.set(room.id, room);
    if (!room.unread_count) state.mentioned.delete(room.id);
  }
  for (const id of [...state.rooms.keys()]) {
    if (!ids.has(id)) {
      state.rooms.delete(id);
      state.timelines.delete(id);
    }
  }
  for (const room of rooms) if (room.kind === 'direct' && !state.peers.has(room.id)) loadPeer(room.id);
  renderSidebar();
}

/** Adds or updates one room the user is a member of. */
export function upsertRoom(room) {
  const old = state.rooms.get(room.id);
  const merged = {
    ...old,
    ...room,
    last_read_seq: room.last_read_seq ?? (old ? old.last_read_seq : room.last_seq),
    unread_count: room.unread_count ?? (old ? old.unread_count : 0),
  };
  state.rooms.set(room.id, merged);
  if (merged.kind === 'direct' && !state.peers.has(room.id)) loadPeer(room.id);
  renderSidebar();
  if (state.current === room.id) renderRoomHead();
  return merged;
}

async function loadPeer(roomId) {
  try {
    const { members } = await api.members(roomId);
    state.members.set(roomId, members);
    for (const m of members) learnUser(m.user);
    const other = members.find((m) => m.user.id !== (state.me && state.me.id));
    if (other) {
      state.peers.set(roomId, other.user);
      if (!state.presence.has(other.user.id)) loadPresence(other.user.id);
    }
    renderSidebar();
    if (state.current === roomId) renderRoomHead();
  } catch {
    // The sidebar shows "Direct message" until the next try.
  }
}

async function loadPresence(userId) {
  try {
    const u = await api.user(userId);
    if (u.presence) state.presence.set(userId, u.presence.status);
    renderSidebar();
    renderMembers();
  } catch {
    // Unknown presence shows as offline.
  }
}

function roomItem(room) {
  const active = state.current === room.id;
  const unread = room.unread_count || 0;
  const mention = state.mentioned.has(room.id);
  const peer = room.kind === 'direct' ? state.peers.get(room.id) : null;
  const label = roomName(room);
  const badgeText = unread > 99 ? '99+' : String(unread);
  const a = h(
    'a',
    {
      href: `#/room/${encodeURIComponent(room.id)}`,
      class: `room-link${active ? ' active' : ''}${unread ? ' unread' : ''}${mention ? ' mention' : ''}`,
      'aria-current': active ? 'page' : null,
      dataset: { roomId: room.id, roomName: label },
    },
    peer ? presenceDot(peer.id) : h('span', { class: 'hash', 'aria-hidden': 'true' }, room.visibility === 'private' ? '🔒' : '#'),
    h('span', { class: 'room-name' }, label),
    unread
      ? h('span', { class: `badge${mention ? ' badge-mention' : ''}`, 'aria-label': `${unread} unread${mention ? ', mentions you' : ''}` }, badgeText)
      : null,
  );
  return h('li', null, a);
}

function presenceDot(userId) {
  const online = state.presence.get(userId) === 'online';
  return h('span', {
    class: `dot${online ? ' online' : ''}`,
    role: 'img',
    'aria-label': online ? 'online' : 'offline',
    dataset: { presence: online ? 'online' : 'offline' },
  });
}

/** Redraws both lists of the sidebar and the page title. */
export function renderSidebar() {
  const rooms = [...state.rooms.values()];
  const byName = (a, b) => roomName(a).localeCompare(roomName(b));
  const focused = document.activeElement && document.activeElement.closest('.room-list') ? document.activeElement.getAttribute('href') : null;
  byId('room-list').replaceChildren(...rooms.filter((r) => r.kind !== 'direct').sort(byName).map(roomItem));
  byId('dm-list').replaceChildren(...rooms.filter((r) => r.kind === 'direct').sort(byName).map(roomItem));
  if (focused) {
    const again = document.querySelector(`.room-list a[href="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
  const total = rooms.reduce((n, r) => n + (r.unread_count || 0), 0);
  document.title = total ? `(${total}) parlor` : 'parlor';
}

// ---------------------------------------------------------------------------------------------
// The open room

/** Opens a room: its head, members and newest history. */
export async function openRoom(roomId) {
  if (state.current !== roomId) {
    state.current = roomId;
    state.replyTo = null;
    state.editing = null;
    renderReply();
    showSendError(null);
    byId('messages').replaceChildren();
    nodeCache.clear();
  }
  let room = state.rooms.get(roomId);
  if (!room) {
    try {
      room = upsertRoom(await api.room(roomId));
    } catch (e) {
      state.current = null;
      throw e;
    }
  }
  renderSidebar();
  renderRoomHead();
  renderTyping();
  const t = timeline(roomId);
  if (!t.loaded) {
    await loadNewest(roomId);
  } else {
    renderMessages({ toBottom: true });
    // Whatever came while the room was not open arrived live; fill any hole all the same.
    catchUp([roomId]);
  }
  loadMembers(roomId);
  markRead();
  if (!isNarrow()) byId('composer-input').focus();
}

/** Leaves the room view (another panel is shown). */
export function closeRoom() {
  state.current = null;
  renderSidebar();
}

function renderRoomHead() {
  const room = state.rooms.get(state.current);
  if (!room) return;
  byId('room-title').textContent = room.kind === 'direct' ? roomName(room) : `# ${roomName(room)}`;
  byId('room-topic').textContent = room.topic || (room.kind === 'direct' ? 'Direct message' : '');
  byId('composer-input').placeholder = room.kind === 'direct' ? `Message ${roomName(room)}` : `Message #${roomName(room)}`;
  byId('leave-room').hidden = room.kind === 'direct';
}

async function loadNewest(roomId) {
  const t = timeline(roomId);
  if (t.loading) return;
  t.loading = true;
  try {
    const page = await api.messages(roomId, { limit: PAGE });
    for (const m of page.messages) addToTimeline(t, m);
    t.hasMore = page.has_more;
    t.loaded = true;
  } finally {
    t.loading = false;
  }
  if (state.current === roomId) renderMessages({ toBottom: true });
}

async function loadOlder() {
  const roomId = state.current;
  const t = state.timelines.get(roomId);
  if (!t || !t.loaded || t.loading || !t.hasMore || t.messages.size === 0) return;
  t.loading = true;
  renderMessages();
  try {
    const page = await api.messages(roomId, { before: minSeq(t), limit: PAGE });
    for (const m of page.messages) addToTimeline(t, m);
    t.hasMore = page.has_more;
  } catch {
    // Scrolling up again retries.
  } finally {
    t.loading = false;
  }
  if (state.current === roomId) renderMessages({ keepOffset: true });
}

/** Pages forward through REST from a timeline's newest message (after `sync.truncated`). */
async function pageForward(roomId) {
  const t = state.timelines.get(roomId);
  if (!t) return;
  for (let i = 0; i < 100; i += 1) {
    const page = await api.messages(roomId, { after: maxSeq(t), limit: 200 });
    for (const m of page.messages) addToTimeline(t, m);
    if (!page.has_more || page.messages.length === 0) break;
  }
  if (state.current === roomId) renderMessages();
}

function addToTimeline(t, m) {
  learnUser(m.author);
  t.messages.set(m.seq, m);
}

async function loadMembers(roomId) {
  try {
    const { members } = await api.members(roomId);
    state.members.set(roomId, members);
    for (const m of members) {
      learnUser(m.user);
      if (!state.presence.has(m.user.id)) loadPresence(m.user.id);
    }
    renderMembers();
  } catch {
    // The list stays as it was.
  }
}

/** Redraws the member list of the open room. */
export function renderMembers() {
  const members = state.members.get(state.current) || [];
  const sorted = [...members].sort((a, b) => {
    const oa = state.presence.get(a.user.id) === 'online' ? 0 : 1;
    const ob = state.presence.get(b.user.id) === 'online' ? 0 : 1;
    return oa - ob || nameOf(a.user).localeCompare(nameOf(b.user));
  });
  byId('member-list').replaceChildren(
    ...sorted.map((m) =>
      h(
        'li',
        { dataset: { username: m.user.username } },
        presenceDot(m.user.id),
        h('span', null, nameOf(m.user)),
        h('span', { class: 'hint' }, ` @${m.user.username}`),
        m.role !== 'member' ? h('span', { class: 'role' }, m.role) : null,
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// The timeline

/** Rendered nodes by key, so an unchanged message keeps its node between renders. */
const nodeCache = new Map();

function messageKey(m, grouped) {
  return `m:${m.id}:${m.edited_at || ''}:${m.deleted}:${grouped}:${state.editing === m.id}:${m.reply_to ? replyTarget(m) ? 1 : 0 : ''}`;
}

function replyTarget(m) {
  const t = state.timelines.get(m.room_id);
  if (!t || !m.reply_to) return null;
  for (const x of t.messages.values()) if (x.id === m.reply_to) return x;
  return null;
}

/** Redraws the open room's messages; keeps the reader's place. */
export function renderMessages(opts = {}) {
  const box = byId('messages');
  const t = state.timelines.get(state.current);
  if (!t) return;
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < STICKY;
  const oldHeight = box.scrollHeight;
  const oldTop = box.scrollTop;

  const nodes = [];
  const keys = new Set();
  const use = (key, make) => {
    let node = nodeCache.get(key);
    if (!node) {
      node = make();
      nodeCache.set(key, node);
    }
    keys.add(key);
    nodes.push(node);
  };
  if (t.loading && t.loaded) use('loading', () => h('p', { class: 'history-note' }, 'Loading older messages…'));
  else if (t.loaded && !t.hasMore) use('start', () => h('p', { class: 'history-note' }, 'This is the beginning of the room.'));

  const seqs = [...t.messages.keys()].sort((a, b) => a - b);
  let prev = null;
  for (const seq of seqs) {
    const m = t.messages.get(seq);
    const day = dayKey(m.created_at);
    if (!prev || dayKey(prev.created_at) !== day) {
      use(`d:${day}`, () => h('div', { class: 'day', role: 'separator' }, h('span', null, dayLabel(m.created_at))));
    }
    const grouped = !!prev && !m.reply_to && prev.author.id === m.author.id && dayKey(prev.created_at) === day
      && new Date(m.created_at) - new Date(prev.created_at) < 5 * 60 * 1000 && !prev.deleted;
    use(messageKey(m, grouped), () => messageNode(m, grouped));
    prev = m;
  }
  for (const p of state.pending.values()) {
    if (p.room_id !== state.current) continue;
    use(`p:${p.nonce}`, () => pendingNode(p));
  }
  for (const key of [...nodeCache.keys()]) if (!keys.has(key)) nodeCache.delete(key);
  reconcile(box, nodes);

  if (opts.keepOffset) box.scrollTop = oldTop + (box.scrollHeight - oldHeight);
  else if (opts.toBottom || atBottom) box.scrollTop = box.scrollHeight;
  // A short history does not scroll, so no scroll event would ever ask for more.
  if (t.loaded && t.hasMore && !t.loading && box.scrollHeight <= box.clientHeight + 10) loadOlder();
}

function messageNode(m, grouped) {
  const mine = state.me && m.author.id === state.me.id;
  const mentionsMe = state.me && (m.mentions || []).includes(state.me.id);
  const cls = ['msg'];
  if (grouped) cls.push('grouped');
  if (mine) cls.push('own');
  if (m.deleted) cls.push('deleted');
  if (mentionsMe) cls.push('mentions-me');
  const el = h('article', {
    class: cls.join(' '),
    id: `msg-${m.room_id}-${m.seq}`,
    tabindex: '-1',
    'aria-label': `${nameOf(m.author)}, ${timeOf(m.created_at)}`,
    dataset: { seq: m.seq, id: m.id, author: m.author.username },
  });
  if (!grouped) {
    el.append(
      h(
        'header',
        { class: 'msg-head' },
        h('span', { class: 'avatar', 'aria-hidden': 'true', dataset: { hue: hue(m.author.id) } }, initial(m.author)),
        h('span', { class: 'author' }, nameOf(m.author)),
        h('time', { datetime: m.created_at, title: fullTimeOf(m.created_at) }, timeOf(m.created_at)),
      ),
    );
  }
  if (m.reply_to) {
    const target = replyTarget(m);
    el.append(
      h(
        'a',
        { class: 'reply-ref', href: `#msg-${m.room_id}-${target ? target.seq : ''}`, onclick: (ev) => jumpTo(ev, target) },
        '↪ ',
        target
          ? [h('strong', null, nameOf(target.author)), ' ', target.deleted ? 'a deleted message' : snippet(target.body)]
          : 'a reply to an earlier message',
      ),
    );
  }
  if (m.deleted) {
    el.append(h('p', { class: 'msg-body deleted-note' }, 'This message was deleted.'));
  } else if (state.editing === m.id) {
    el.append(editBox(m));
  } else {
    const body = h('div', { class: 'msg-body' });
    setServerHtml(body, m.html);
    if (m.edited_at) {
      const last = body.lastElementChild;
      (last && last.tagName === 'P' ? last : body).append(h('span', { class: 'edited', title: fullTimeOf(m.edited_at) }, ' (edited)'));
    }
    el.append(body);
    el.append(actions(m, mine));
  }
  return el;
}

function actions(m, mine) {
  const bar = h('div', { class: 'msg-actions', role: 'group', 'aria-label': 'Message actions' });
  bar.append(h('button', { type: 'button', class: 'link', onclick: () => startReply(m) }, 'Reply'));
  if (mine) {
    bar.append(h('button', { type: 'button', class: 'link', onclick: () => startEdit(m) }, 'Edit'));
    bar.append(h('button', { type: 'button', class: 'link danger', onclick: () => deleteMessage(m) }, 'Delete'));
  } else {
    const room = state.rooms.get(m.room_id);
    if (room && state.me && room.owner_id === state.me.id) {
      bar.append(h('button', { type: 'button', class: 'link danger', onclick: () => deleteMessage(m) }, 'Delete'));
    }
  }
  return bar;
}

function pendingNode(p) {
  const el = h('article', { class: 'msg own pending', dataset: { nonce: p.nonce } });
  el.append(
    h('header', { class: 'msg-head' }, h('span', { class: 'author' }, nameOf(state.me)), h('span', { class: 'hint' }, 'sending…')),
    h('div', { class: 'msg-body' }, h('p', null, p.body)),
  );
  return el;
}

function jumpTo(ev, target) {
  ev.preventDefault();
  if (!target) return;
  const el = document.getElementById(`msg-${target.room_id}-${target.seq}`);
  if (el) {
    el.scrollIntoView({ block: 'center' });
    el.focus();
  }
}

const initial = (user) => nameOf(user).trim().charAt(0).toUpperCase() || '?';
const snippet = (text) => (text.length > 80 ? `${text.slice(0, 80)}…` : text);
function hue(id) {
  let x = 0;
  for (const c of id) x = (x * 31 + c.charCodeAt(0)) % 360;
  return String(Math.floor(x / 45));
}

// ---------------------------------------------------------------------------------------------
// Editing, deleting, replying

function startEdit(m) {
  state.editing = m.id;
  renderMessages();
  const box = document.querySelector(`#msg-${CSS.escape(m.room_id)}-${m.seq} textarea`);
  if (box) {
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }
}

function stopEdit() {
  const id = state.editing;
  state.editing = null;
  renderMessages();
  const t = state.timelines.get(state.current);
  const m = t && [...t.messages.values()].find((x) => x.id === id);
  const el = m && document.getElementById(`msg-${m.room_id}-${m.seq}`);
  if (el) el.focus();
  else byId('composer-input').focus();
}

function editBox(m) {
  const area = h('textarea', { class: 'edit-input', rows: '2', 'aria-label': 'Edit message', maxlength: '4000' });
  area.value = m.body;
  const error = h('p', { class: 'send-error', role: 'alert', hidden: true });
  const save = async () => {
    const body = area.value.trim();
    if (!body) return;
    if (body === m.body) {
      stopEdit();
      return;
    }
    try {
      const updated = await api.edit(m.room_id, m.id, body);
      applyUpdate(updated);
      stopEdit();
    } catch (e) {
      error.hidden = false;
      error.textContent = describeSendError(e);
    }
  };
  area.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      save();
    } else if (ev.key === 'Escape') {
      ev.preventDefault();
      stopEdit();
    }
  });
  return h(
    'div',
    { class: 'edit' },
    area,
    error,
    h(
      'div',
      { class: 'row' },
      h('button', { type: 'button', class: 'primary small', onclick: save }, 'Save'),
      h('button', { type: 'button', class: 'small', onclick: stopEdit }, 'Cancel'),
      h('small', { class: 'hint' }, 'Enter to save, Escape to cancel'),
    ),
  );
}

async function deleteMessage(m) {
  if (!window.confirm('Delete this message for everyone?')) return;
  try {
    await api.remove(m.room_id, m.id);
    applyDelete(m.room_id, m.id, m.seq);
  } catch (e) {
    showSendError(describeSendError(e));
  }
}

function startReply(m) {
  state.replyTo = m;
  renderReply();
  byId('composer-input').focus();
}

function renderReply() {
  const bar = byId('reply-bar');
  if (!state.replyTo) {
    bar.hidden = true;
    return;
  }
  bar.hidden = false;
  byId('reply-text').replaceChildren('Replying to ', h('strong', null, nameOf(state.replyTo.author)), `: ${snippet(state.replyTo.body)}`);
}

// ---------------------------------------------------------------------------------------------
// Sending

/** Sends what the composer holds: over the socket if it is up, else through REST; a send that
 * could not leave yet is kept (with its nonce) and sent again when the connection returns. */
export function sendFromComposer() {
  const input = byId('composer-input');
  const body = input.value.trim();
  if (!body || !state.current) return;
  if ([...body].length > 4000) {
    showSendError('A message holds at most 4000 characters.');
    return;
  }
  const p = {
    nonce: newNonce(),
    room_id: state.current,
    body,
    reply_to: state.replyTo ? state.replyTo.id : null,
    created_at: new Date().toISOString(),
  };
  state.pending.set(p.nonce, p);
  // The others stop showing "typing" when the message arrives; the next keystroke says it anew.
  lastTypingSent = 0;
  input.value = '';
  autosize(input);
  state.replyTo = null;
  renderReply();
  showSendError(null);
  renderMessages({ toBottom: true });
  deliver(p);
}

function deliver(p) {
  const frame = { type: 'send', room_id: p.room_id, body: p.body, nonce: p.nonce };
  if (p.reply_to) frame.reply_to = p.reply_to;
  if (conn && conn.send(frame)) return;
  api
    .send(p.room_id, { body: p.body, nonce: p.nonce, reply_to: p.reply_to || undefined })
    .then((m) => acknowledged(p.nonce, m))
    .catch((e) => {
      // Unreachable: it goes out again, same nonce, once the socket is back.
      if (e.code === 'network' || e.code === 'unavailable') return;
      failed(p.nonce, e);
    });
}

/** Sends again whatever is still unacknowledged (after a reconnect). */
export function redeliverPending() {
  for (const p of state.pending.values()) deliver(p);
}

function acknowledged(nonce, message) {
  state.pending.delete(nonce);
  messageArrived(message);
}

function failed(nonce, err) {
  const p = state.pending.get(nonce);
  state.pending.delete(nonce);
  if (p && p.room_id === state.current) {
    // The refused text comes back to the composer (after anything refused just before it).
    const input = byId('composer-input');
    input.value = input.value.trim() ? `${input.value}\n${p.body}` : p.body;
    autosize(input);
    showSendError(describeSendError(err));
  }
  renderMessages();
}

const REASONS = {
  spam: 'it looks like spam',
  blocked_word: 'it contains a blocked word',
  flood: 'too many messages alike in a row',
  too_many_links: 'it has too many links',
};

/** A sentence for a refused send, from a REST error or a WebSocket error frame. */
export function describeSendError(e) {
  const code = e.code;
  const retry = e.retryAfterMs ?? e.retry_after_ms;
  if (code === 'rate_limited') {
    const s = Math.max(1, Math.ceil((retry || 1000) / 1000));
    return `You are sending too fast. Try again in ${s} second${s === 1 ? '' : 's'}.`;
  }
  if (code === 'rejected') return `Not sent: ${REASONS[e.reason] || e.message || 'the server refused it'}.`;
  if (code === 'validation_failed') return `Not sent: ${e.message}`;
  if (code === 'forbidden' || code === 'not_found') return 'You can no longer post in this room.';
  return e.message || 'Not sent.';
}

/** Shows (or, with null, hides) the error under the composer. */
export function showSendError(text) {
  const el = byId('send-error');
  el.hidden = !text;
  el.textContent = text || '';
}

/** Grows the composer with its text, up to a limit. */
export function autosize(el) {
  el.style.height = 'auto';
  el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
}

let lastTypingSent = 0;
/** Tells the room the user is typing, at most every three seconds. */
export function typed() {
  showSendError(null);
  const now = Date.now();
  if (!state.current || now - lastTypingSent < 3000) return;
  if (byId('composer-input').value.trim() && conn && conn.send({ type: 'typing', room_id: state.current })) {
    lastTypingSent = now;
  }
}

/** Edits the newest own message of the open room (ArrowUp in an empty composer). */
export function editLastOwn() {
  const t = state.timelines.get(state.current);
  if (!t || !state.me) return false;
  const own = [...t.messages.values()].filter((m) => m.author.id === state.me.id && !m.deleted).sort((a, b) => b.seq - a.seq)[0];
  if (!own) return false;
  startEdit(own);
  return true;
}

export function cancelReplyOrEdit() {
  if (state.editing) stopEdit();
  else if (state.replyTo) {
    state.replyTo = null;
    renderReply();
  }
}

// ---------------------------------------------------------------------------------------------
// Read markers

let readTimer = null;
/** Marks the open room read up to its newest message, if the page is being looked at: the badge
 * goes at once, the marker follows a moment later (one call for a burst of messages). */
export function markRead() {
  const room = state.rooms.get(state.current);
  if (!room || document.visibilityState !== 'visible') return;
  if (room.unread_count || state.mentioned.has(room.id)) {
    room.unread_count = 0;
    state.mentioned.delete(room.id);
    renderSidebar();
  }
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    const now = state.rooms.get(state.current);
    if (!now || document.visibilityState !== 'visible') return;
    const t = state.timelines.get(now.id);
    const seq = Math.max(now.last_seq || 0, t ? maxSeq(t) : 0);
    if (seq <= (now.last_read_seq || 0)) return;
    now.last_read_seq = seq;
    if (!(conn && conn.send({ type: 'read', room_id: now.id, seq }))) api.read(now.id, seq).catch(() => {});
  }, 150);
}

// ---------------------------------------------------------------------------------------------
// Realtime events

/** Asks the server for everything after what each loaded timeline holds. */
export function catchUp(roomIds) {
  const rooms = {};
  for (const id of roomIds) {
    const t = state.timelines.get(id);
    if (t && t.loaded && state.rooms.has(id)) rooms[id] = maxSeq(t);
  }
  if (Object.keys(rooms).length && conn) conn.send({ type: 'sync', rooms });
}

/** After (re)connecting: the server's room list is the truth; loaded rooms catch up. */
export function onReady(frame) {
  state.me = frame.user;
  learnUser(frame.user);
  state.presence.set(frame.user.id, 'online');
  setRooms(frame.rooms || []);
  catchUp([...state.timelines.keys()]);
  redeliverPending();
  if (state.current && !state.rooms.has(state.current)) location.hash = '#/';
  if (state.current) {
    renderRoomHead();
    loadMembers(state.current);
    markRead();
  }
}

/** A message for a room, live or from a sync. */
function messageArrived(m) {
  learnUser(m.author);
  const room = state.rooms.get(m.room_id);
  if (!room) {
    // A room joined elsewhere: the list learns of it.
    api.room(m.room_id).then(upsertRoom).catch(() => {});
    return;
  }
  const t = state.timelines.get(m.room_id);
  if (t && t.loaded) {
    const top = maxSeq(t);
    if (m.seq > top + 1 && !t.messages.has(m.seq)) catchUp([m.room_id]);
    addToTimeline(t, m);
  }
  if (m.nonce) {
    for (const [nonce, p] of state.pending) {
      if (nonce === m.nonce && p.room_id === m.room_id && m.author.id === (state.me && state.me.id)) state.pending.delete(nonce);
    }
  }
  const typing = state.typing.get(m.room_id);
  if (typing) typing.delete(m.author.id);
  const fresh = m.seq > (room.last_seq || 0);
  if (fresh) room.last_seq = m.seq;
  const mine = state.me && m.author.id === state.me.id;
  if (fresh && !mine) {
    const looking = state.current === m.room_id && document.visibilityState === 'visible';
    const forMe = room.kind === 'direct' || (state.me && (m.mentions || []).includes(state.me.id));
    if (!looking) {
      room.unread_count = (room.unread_count || 0) + 1;
      if (forMe) state.mentioned.add(room.id);
    }
    if (forMe && document.visibilityState !== 'visible') notify(room, m);
  }
  if (mine && m.seq > (room.last_read_seq || 0) && state.current !== m.room_id) room.last_read_seq = m.seq;
  renderSidebar();
  if (state.current === m.room_id) {
    renderMessages({ toBottom: mine });
    renderTyping();
    markRead();
  }
}

function applyUpdate(m) {
  const t = state.timelines.get(m.room_id);
  if (t && t.messages.has(m.seq)) {
    t.messages.set(m.seq, m);
    if (state.current === m.room_id) renderMessages();
  }
}

function applyDelete(roomId, messageId, seq) {
  const t = state.timelines.get(roomId);
  const m = t && t.messages.get(seq);
  if (m) {
    t.messages.set(seq, { ...m, deleted: true, body: '', html: '' });
    if (state.editing === messageId) state.editing = null;
    if (state.current === roomId) renderMessages();
  }
}

/** Handles every server frame other than `ready` and `pong`. */
export function onFrame(f) {
  switch (f.type) {
    case 'ack':
      acknowledged(f.nonce, f.message);
      break;
    case 'message.created':
      messageArrived(f.message);
      break;
    case 'message.updated':
      learnUser(f.message.author);
      applyUpdate(f.message);
      break;
    case 'message.deleted':
      applyDelete(f.room_id, f.message_id, f.seq);
      break;
    case 'member.joined':
      learnUser(f.user);
      if (state.me && f.user.id === state.me.id) {
        api.room(f.room_id).then(upsertRoom).catch(() => {});
      } else {
        const list = state.members.get(f.room_id);
        if (list && !list.some((m) => m.user.id === f.user.id)) list.push({ user: f.user, role: 'member', joined_at: new Date().toISOString() });
        loadPresence(f.user.id);
        const room = state.rooms.get(f.room_id);
        if (room && room.kind === 'direct' && !state.peers.has(room.id)) loadPeer(room.id);
        if (state.current === f.room_id) renderMembers();
      }
      break;
    case 'member.left':
      if (state.me && f.user_id === state.me.id) {
        state.rooms.delete(f.room_id);
        state.timelines.delete(f.room_id);
        renderSidebar();
        if (state.current === f.room_id) location.hash = '#/';
      } else {
        const list = state.members.get(f.room_id);
        if (list) state.members.set(f.room_id, list.filter((m) => m.user.id !== f.user_id));
        if (state.current === f.room_id) renderMembers();
      }
      break;
    case 'room.updated':
      if (state.rooms.has(f.room.id)) upsertRoom(f.room);
      break;
    case 'typing':
      if (!state.me || f.user_id !== state.me.id) {
        if (!state.typing.has(f.room_id)) state.typing.set(f.room_id, new Map());
        state.typing.get(f.room_id).set(f.user_id, Date.now() + 6000);
        if (!state.users.has(f.user_id)) {
          api.user(f.user_id).then((u) => { learnUser(u); renderTyping(); }).catch(() => {});
        }
        if (state.current === f.room_id) renderTyping();
        setTimeout(renderTyping, 6100);
      }
      break;
    case 'read': {
      const room = state.rooms.get(f.room_id);
      if (room) {
        room.last_read_seq = Math.max(room.last_read_seq || 0, f.seq);
        if (f.seq >= (room.last_seq || 0)) {
          room.unread_count = 0;
          state.mentioned.delete(room.id);
        }
        renderSidebar();
      }
      break;
    }
    case 'presence':
      state.presence.set(f.user_id, f.status);
      renderSidebar();
      if (state.current) renderMembers();
      break;
    case 'sync.truncated':
      pageForward(f.room_id).catch(() => {});
      break;
    case 'error':
      if (f.nonce) failed(f.nonce, f);
      else if (f.code === 'rate_limited' || f.code === 'rejected') showSendError(describeSendError(f));
      break;
    default:
      break; // `synced`, and anything newer than this client
  }
}

/** Redraws "… is typing" for the open room. */
export function renderTyping() {
  const el = byId('typing');
  const now = Date.now();
  const map = state.typing.get(state.current);
  const names = [];
  if (map) {
    for (const [id, until] of map) {
      if (until < now) map.delete(id);
      else names.push(nameOf(state.users.get(id)));
    }
  }
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = 'Several people are typing…';
  el.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Notifications

function notify(room, m) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  const title = room.kind === 'direct' ? nameOf(m.author) : `${nameOf(m.author)} in #${roomName(room)}`;
  try {
    const n = new Notification(title, { body: snippet(m.body), tag: room.id, icon: '/icon.svg' });
    n.onclick = () => {
      window.focus();
      location.hash = `#/room/${encodeURIComponent(room.id)}`;
      n.close();
    };
  } catch {
    // Some browsers only notify from a service worker; the badge still shows.
  }
}

/** Wires the timeline's scrolling (older history) once. */
export function wireTimeline() {
  byId('messages').addEventListener('scroll', () => {
    if (byId('messages').scrollTop < 80) loadOlder();
  });
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') markRead();
  });
}

export { ApiError };
