// The panels besides a room: the public directory, a new room, a new direct message, search,
// and the account (notifications, password, sessions, log out).

import { api } from './api.js';
import { h, byId, setServerHtml, nameOf, fullTimeOf, timeOf } from './dom.js';
import { state, learnUser, roomName } from './state.js';
import { upsertRoom } from './chat.js';

const go = (hash) => {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent('hashchange'));
  else location.hash = hash;
};
const roomHash = (id) => `#/room/${encodeURIComponent(id)}`;

function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

function showError(list, e) {
  list.replaceChildren(h('li', { class: 'form-error', role: 'alert' }, e.message || 'Something went wrong.'));
}

// ---------------------------------------------------------------------------------------------
// The directory

export async function showDirectory() {
  const list = byId('directory-list');
  const q = byId('directory-q').value.trim();
  try {
    const { rooms } = await api.publicRooms(q);
    if (!rooms.length) {
      list.replaceChildren(h('li', { class: 'hint' }, q ? 'No public room matches.' : 'No public rooms yet.'));
      return;
    }
    list.replaceChildren(
      ...rooms.map((room) => {
        const member = state.rooms.has(room.id);
        const button = member
          ? h('a', { class: 'button', href: roomHash(room.id) }, 'Open')
          : h('button', { type: 'button', class: 'primary', onclick: () => join(room) }, 'Join');
        return h(
          'li',
          { class: 'result', dataset: { roomName: room.name } },
          h('div', { class: 'result-text' }, h('strong', null, `# ${room.name}`),
            room.topic ? h('span', { class: 'hint' }, room.topic) : null,
            h('span', { class: 'hint' }, `${room.member_count} member${room.member_count === 1 ? '' : 's'}`)),
          button,
        );
      }),
    );
  } catch (e) {
    showError(list, e);
  }
}

async function join(room) {
  try {
    upsertRoom(await api.join(room.id));
  } catch (e) {
    if (e.code !== 'conflict') {
      showError(byId('directory-list'), e);
      return;
    }
    upsertRoom(await api.room(room.id));
  }
  go(roomHash(room.id));
}

// ---------------------------------------------------------------------------------------------
// A new room

function wireNewRoom() {
  const form = byId('new-room-form');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    const err = form.querySelector('.form-error');
    err.textContent = '';
    if (!v.name.trim()) {
      err.textContent = 'A room needs a name.';
      return;
    }
    try {
      const body = { name: v.name.trim(), visibility: v.visibility };
      if (v.topic.trim()) body.topic = v.topic.trim();
      const room = upsertRoom(await api.createRoom(body));
      form.reset();
      go(roomHash(room.id));
    } catch (e) {
      err.textContent = e.message;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// A new direct message

async function findPeople() {
  const q = byId('dm-q').value.trim();
  const list = byId('dm-results');
  if (!q) {
    list.replaceChildren(h('li', { class: 'hint' }, 'Type the start of a username.'));
    return;
  }
  try {
    const { users } = await api.findUsers(q);
    const others = users.filter((u) => !state.me || u.id !== state.me.id);
    if (!others.length) {
      list.replaceChildren(h('li', { class: 'hint' }, 'Nobody by that name.'));
      return;
    }
    list.replaceChildren(
      ...others.map((u) => {
        learnUser(u);
        return h(
          'li',
          { class: 'result', dataset: { username: u.username } },
          h('div', { class: 'result-text' }, h('strong', null, nameOf(u)), h('span', { class: 'hint' }, `@${u.username}`)),
          h('button', { type: 'button', class: 'primary', onclick: () => openDm(u) }, 'Message'),
        );
      }),
    );
  } catch (e) {
    showError(list, e);
  }
}

async function openDm(user) {
  try {
    const room = await api.dm(user.id);
    state.peers.set(room.id, user);
    upsertRoom(room);
    go(roomHash(room.id));
  } catch (e) {
    showError(byId('dm-results'), e);
  }
}

// ---------------------------------------------------------------------------------------------
// Search

export async function showSearch(q) {
  byId('search-input-2').value = q;
  const list = byId('search-results');
  if (!q.trim()) {
    list.replaceChildren();
    return;
  }
  list.replaceChildren(h('li', { class: 'hint' }, 'Searching…'));
  try {
    const { messages } = await api.search(q.trim());
    if (!messages.length) {
      list.replaceChildren(h('li', { class: 'hint' }, 'No message matches.'));
      return;
    }
    list.replaceChildren(
      ...messages.map((m) => {
        const body = h('div', { class: 'msg-body' });
        setServerHtml(body, m.html);
        const room = state.rooms.get(m.room_id);
        return h(
          'li',
          { class: 'result search-hit' },
          h('div', { class: 'result-text' },
            h('span', { class: 'hint' }, h('strong', null, nameOf(m.author)), ` in ${room ? roomName(room) : 'a room'} · `,
              h('time', { datetime: m.created_at, title: fullTimeOf(m.created_at) }, `${new Date(m.created_at).toLocaleDateString()} ${timeOf(m.created_at)}`)),
            body),
          h('a', { class: 'button', href: roomHash(m.room_id) }, 'Open room'),
        );
      }),
    );
  } catch (e) {
    showError(list, e);
  }
}

// ---------------------------------------------------------------------------------------------
// The account

function notificationState() {
  const el = byId('notif-state');
  const button = byId('notif-enable');
  if (!('Notification' in window)) {
    el.textContent = 'This browser does not offer notifications.';
    button.disabled = true;
    return;
  }
  const p = Notification.permission;
  button.disabled = p !== 'default';
  el.textContent = p === 'granted' ? 'On.' : p === 'denied' ? 'Blocked in the browser settings.' : 'Off.';
}

export async function showSettings() {
  byId('settings-who').replaceChildren('Signed in as ', h('strong', null, nameOf(state.me)), ` (@${state.me ? state.me.username : ''})`);
  byId('password-form').querySelector('[name="username"]').value = state.me ? state.me.username : '';
  notificationState();
  await loadSessions();
}

async function loadSessions() {
  const list = byId('session-list');
  try {
    const { sessions } = await api.sessions();
    list.replaceChildren(
      ...sessions.map((s) =>
        h(
          'li',
          { class: 'result', dataset: { current: String(s.current) } },
          h('div', { class: 'result-text' },
            h('strong', null, s.user_agent || 'Unknown client'),
            h('span', { class: 'hint' }, `Signed in ${fullTimeOf(s.created_at)}`),
            h('span', { class: 'hint' }, `Last seen ${fullTimeOf(s.last_seen_at)}`)),
          s.current
            ? h('span', { class: 'tag' }, 'This browser')
            : h('button', { type: 'button', class: 'danger', onclick: () => endSession(s.id) }, 'End session'),
        ),
      ),
    );
  } catch (e) {
    showError(list, e);
  }
}

async function endSession(id) {
  try {
    await api.endSession(id);
  } finally {
    await loadSessions();
  }
}

function wireSettings(logout) {
  byId('notif-enable').addEventListener('click', async () => {
    try {
      await Notification.requestPermission();
    } finally {
      notificationState();
    }
  });
  const form = byId('password-form');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = Object.fromEntries(new FormData(form));
    const err = form.querySelector('.form-error');
    const ok = form.querySelector('.form-ok');
    err.textContent = '';
    ok.textContent = '';
    if (v.new_password.length < 8) {
      err.textContent = 'The new password needs at least 8 characters.';
      return;
    }
    try {
      await api.changePassword({ current_password: v.current_password, new_password: v.new_password });
      form.reset();
      ok.textContent = 'Password changed. Every other session was ended.';
      loadSessions();
    } catch (e) {
      err.textContent = e.code === 'unauthorized' ? 'The current password is wrong.' : e.message;
    }
  });
  byId('logout').addEventListener('click', logout);
}

/** Wires every panel's controls once. */
export function wireViews({ logout }) {
  byId('directory-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    showDirectory();
  });
  byId('directory-q').addEventListener('input', debounce(showDirectory, 200));
  wireNewRoom();
  byId('dm-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    findPeople();
  });
  byId('dm-q').addEventListener('input', debounce(findPeople, 200));
  for (const id of ['search-form', 'search-form-2']) {
    byId(id).addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = new FormData(ev.target).get('q') || '';
      go(`#/search?q=${encodeURIComponent(q)}`);
    });
  }
  wireSettings(logout);
}
