// parlor's browser client: boots the signed-out or signed-in screen, routes on the URL's hash
// (#/room/<id>, #/directory, #/new-room, #/new-dm, #/search?q=, #/settings), and owns the one
// realtime connection. Plain modules, no build step; see docs/web-client.md.

import { api, currentSession, forget, accessToken, refresh } from './api.js';
import { byId, nameOf, isNarrow } from './dom.js';
import { Connection } from './ws.js';
import { state, resetState } from './state.js';
import { wireAuth, showAuth } from './auth.js';
import { wireViews, showDirectory, showSettings, showSearch } from './views.js';
import {
  useConnection, setRooms, openRoom, closeRoom, onReady, onFrame, renderSidebar, renderMembers, sendFromComposer,
  typed, autosize, editLastOwn, cancelReplyOrEdit, wireTimeline, showSendError,
} from './chat.js';

const VIEWS = ['room', 'search', 'directory', 'new-room', 'new-dm', 'settings', 'empty'];

let conn = null;

function showView(name) {
  for (const v of VIEWS) byId(`view-${v}`).hidden = v !== name;
  // On a phone the sidebar and a panel take turns.
  document.body.classList.toggle('panel-open', name !== 'empty');
}

/** Shows the panel the hash names. */
async function route() {
  if (!currentSession()) return;
  const hash = location.hash.replace(/^#/, '');
  const [path, query] = hash.split('?');
  const parts = path.split('/').filter(Boolean);
  if (parts[0] !== 'room') closeRoom();
  try {
    switch (parts[0]) {
      case 'room':
        if (!parts[1]) break;
        showView('room');
        await openRoom(decodeURIComponent(parts[1]));
        return;
      case 'directory':
        showView('directory');
        await showDirectory();
        if (!isNarrow()) byId('directory-q').focus();
        return;
      case 'new-room':
        showView('new-room');
        byId('new-room-form').querySelector('input').focus();
        return;
      case 'new-dm':
        showView('new-dm');
        byId('dm-q').focus();
        return;
      case 'search':
        showView('search');
        await showSearch(new URLSearchParams(query || '').get('q') || '');
        return;
      case 'settings':
        showView('settings');
        await showSettings();
        return;
      default:
        break;
    }
  } catch (e) {
    if (e.status === 401) return;
    // An unknown or forbidden room: back to the start.
    showView('empty');
    return;
  }
  showView('empty');
}

/** Shows the signed-in client and opens the connection. */
async function signedIn() {
  const s = currentSession();
  if (!s) {
    showAuth();
    return;
  }
  state.me = s.user || null;
  byId('auth').hidden = true;
  byId('phrase').hidden = true;
  byId('app').hidden = false;
  renderMe();
  conn = new Connection(accessToken, refresh);
  useConnection(conn);
  conn.addEventListener('state', (ev) => renderConnection(ev.detail));
  conn.addEventListener('ready', (ev) => {
    onReady(ev.detail);
    renderMe();
  });
  conn.addEventListener('frame', (ev) => onFrame(ev.detail));
  conn.addEventListener('signedout', () => signedOut());
  conn.start();
  // The list shows at once even while the socket is still connecting.
  try {
    if (!state.me) state.me = await api.me();
    renderMe();
    const { rooms } = await api.rooms();
    if (!state.rooms.size) setRooms(rooms);
  } catch (e) {
    if (e.status === 401) {
      signedOut();
      return;
    }
  }
  route();
}

function renderMe() {
  byId('me-name').textContent = nameOf(state.me);
  byId('me-avatar').textContent = nameOf(state.me).charAt(0).toUpperCase();
}

let countdown = null;
function renderConnection({ state: s, retryIn }) {
  const el = byId('conn');
  el.dataset.state = s;
  document.body.classList.toggle('disconnected', s === 'offline');
  clearInterval(countdown);
  if (s === 'online') el.textContent = 'Online';
  else if (s === 'connecting') el.textContent = 'Connecting…';
  else if (s === 'offline') {
    const until = Date.now() + (retryIn || 0);
    const tick = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      el.textContent = left ? `Offline · retrying in ${left} s` : 'Offline · retrying…';
    };
    tick();
    countdown = setInterval(tick, 1000);
  }
}

/** Ends the session here and on the server. */
async function logout() {
  try {
    await api.logout();
  } catch {
    // Signed out locally all the same.
  }
  signedOut();
}

function signedOut() {
  if (conn) conn.stop();
  conn = null;
  forget();
  resetState();
  renderSidebar();
  history.replaceState(null, '', '/');
  showAuth();
}

function wireComposer() {
  const input = byId('composer-input');
  byId('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    sendFromComposer();
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      sendFromComposer();
    } else if (ev.key === 'ArrowUp' && !input.value && editLastOwn()) {
      ev.preventDefault();
    } else if (ev.key === 'Escape') {
      cancelReplyOrEdit();
    }
  });
  input.addEventListener('input', () => {
    autosize(input);
    typed();
  });
  byId('reply-cancel').addEventListener('click', () => {
    cancelReplyOrEdit();
    input.focus();
  });
  byId('members-toggle').addEventListener('click', () => {
    const panel = byId('members');
    panel.hidden = !panel.hidden;
    byId('members-toggle').setAttribute('aria-expanded', String(!panel.hidden));
    if (!panel.hidden) renderMembers();
  });
  byId('leave-room').addEventListener('click', async () => {
    const id = state.current;
    if (!id || !window.confirm('Leave this room?')) return;
    try {
      await api.leave(id);
      state.rooms.delete(id);
      state.timelines.delete(id);
      renderSidebar();
      location.hash = '#/';
    } catch (e) {
      showSendError(e.message);
    }
  });
}

/** Alt+ArrowUp / Alt+ArrowDown move between rooms; Escape closes the member panel. */
function wireKeys() {
  document.addEventListener('keydown', (ev) => {
    if (ev.altKey && (ev.key === 'ArrowUp' || ev.key === 'ArrowDown')) {
      const links = [...document.querySelectorAll('.room-list a')];
      if (!links.length) return;
      ev.preventDefault();
      const at = links.findIndex((a) => a.classList.contains('active'));
      const next = links[(at + (ev.key === 'ArrowDown' ? 1 : links.length - 1) + links.length) % links.length];
      location.hash = next.getAttribute('href');
    }
  });
}

function boot() {
  wireAuth(signedIn);
  wireViews({ logout });
  wireComposer();
  wireTimeline();
  wireKeys();
  window.addEventListener('hashchange', route);
  if (window.matchMedia('(min-width: 1100px)').matches) {
    byId('members').hidden = false;
    byId('members-toggle').setAttribute('aria-expanded', 'true');
  }
  if (currentSession()) signedIn();
  else showAuth();
}

boot();
