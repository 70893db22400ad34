// The REST half of the public contract: JSON calls under /api/v1, the token pair kept in
// localStorage, and one refresh at a time (across tabs too, through the Web Locks API) because a
// refresh token presented twice ends the whole session.

const STORE_KEY = 'parlor.session';

/** An error answered by the server, in the contract's shape. */
export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `request failed (${status})`);
    this.status = status;
    this.code = err.code || (status === 0 ? 'network' : 'unknown');
    this.field = err.field;
    this.reason = err.reason;
    this.retryAfterMs = err.retry_after_ms;
  }
}

/** The saved session: {user, access_token, refresh_token, expires_at}, or null. */
export function loadSession() {
  try {
    const s = JSON.parse(localStorage.getItem(STORE_KEY) || 'null');
    return s && s.refresh_token ? s : null;
  } catch {
    return null;
  }
}

function saveSession(s) {
  if (s) localStorage.setItem(STORE_KEY, JSON.stringify(s));
  else localStorage.removeItem(STORE_KEY);
}

let session = loadSession();
let refreshing = null;
const listeners = new Set();

/** Calls `fn(session)` whenever the session changes (null when it ends). */
export function onSession(fn) {
  listeners.add(fn);
}

function setSession(s) {
  session = s;
  saveSession(s);
  for (const fn of listeners) fn(s);
}

export function currentSession() {
  return session;
}

/** Keeps a token pair (and the user, if given) as the session. */
export function adopt(pair, user) {
  setSession({
    user: user || (session && session.user),
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    expires_at: Date.now() + (pair.expires_in || 900) * 1000,
  });
}

/** Forgets the session locally (the server side is `logout`). */
export function forget() {
  setSession(null);
}

async function raw(method, path, body, token) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, { error: { code: 'network', message: 'The server cannot be reached.' } });
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = new ApiError(res.status, data);
    if (e.retryAfterMs === undefined && res.headers.get('Retry-After')) {
      e.retryAfterMs = Number(res.headers.get('Retry-After')) * 1000;
    }
    throw e;
  }
  return data;
}

/** Exchanges the refresh token for a new pair; null when the session is over. */
export async function refresh() {
  if (!session) return null;
  if (refreshing) return refreshing;
  const used = session.refresh_token;
  const run = async () => {
    // Another tab may have rotated the token while this one waited for the lock.
    const stored = loadSession();
    if (stored && stored.refresh_token !== used) {
      session = stored;
      return session;
    }
    try {
      const pair = await raw('POST', '/auth/refresh', { refresh_token: used });
      adopt(pair);
      return session;
    } catch (e) {
      if (e.status === 401) {
        forget();
        return null;
      }
      throw e;
    }
  };
  refreshing = (navigator.locks ? navigator.locks.request('parlor.refresh', run) : run()).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/** A fresh enough access token, refreshed when it is about to expire; null when signed out. */
export async function accessToken() {
  if (!session) return null;
  if (session.expires_at - Date.now() < 30_000) {
    const s = await refresh();
    return s && s.access_token;
  }
  return session.access_token;
}

/** An authenticated call; refreshes once on 401. */
export async function call(method, path, body) {
  const token = await accessToken();
  if (!token) throw new ApiError(401, { error: { code: 'unauthorized', message: 'Signed out.' } });
  try {
    return await raw(method, path, body, token);
  } catch (e) {
    if (e.status !== 401) throw e;
    const s = await refresh();
    if (!s) throw e;
    return raw(method, path, body, s.access_token);
  }
}

/** An unauthenticated call (register, login, recover). */
export function anonymous(method, path, body) {
  return raw(method, path, body);
}

export const api = {
  register: (b) => anonymous('POST', '/auth/register', b),
  login: (b) => anonymous('POST', '/auth/login', b),
  recover: (b) => anonymous('POST', '/auth/recover', b),
  logout: () => call('POST', '/auth/logout'),
  sessions: () => call('GET', '/auth/sessions'),
  endSession: (id) => call('DELETE', `/auth/sessions/${encodeURIComponent(id)}`),
  me: () => call('GET', '/users/me'),
  changePassword: (b) => call('POST', '/users/me/password', b),
  user: (id) => call('GET', `/users/${encodeURIComponent(id)}`),
  findUsers: (q) => call('GET', `/users?q=${encodeURIComponent(q)}`),
  rooms: () => call('GET', '/rooms'),
  publicRooms: (q) => call('GET', `/rooms/public?q=${encodeURIComponent(q || '')}`),
  room: (id) => call('GET', `/rooms/${encodeURIComponent(id)}`),
  createRoom: (b) => call('POST', '/rooms', b),
  join: (id) => call('POST', `/rooms/${encodeURIComponent(id)}/join`),
  leave: (id) => call('POST', `/rooms/${encodeURIComponent(id)}/leave`),
  members: (id) => call('GET', `/rooms/${encodeURIComponent(id)}/members`),
  dm: (userId) => call('POST', '/dms', { user_id: userId }),
  messages: (id, params) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null) q.set(k, String(v));
    return call('GET', `/rooms/${encodeURIComponent(id)}/messages?${q}`);
  },
  send: (id, b) => call('POST', `/rooms/${encodeURIComponent(id)}/messages`, b),
  edit: (id, mid, body) => call('PATCH', `/rooms/${encodeURIComponent(id)}/messages/${encodeURIComponent(mid)}`, { body }),
  remove: (id, mid) => call('DELETE', `/rooms/${encodeURIComponent(id)}/messages/${encodeURIComponent(mid)}`),
  read: (id, seq) => call('POST', `/rooms/${encodeURIComponent(id)}/read`, { seq }),
  search: (q, roomId) => call('GET', `/search?q=${encodeURIComponent(q)}${roomId ? `&room_id=${encodeURIComponent(roomId)}` : ''}`),
};
