// What the signed-in client knows, in one place. Modules read and change it and then call the
// render functions they need; nothing here touches the page.

export const state = {
  /** The signed-in user. */
  me: null,
  /** Room id -> room, with `last_seq`, `last_read_seq` and `unread_count`. */
  rooms: new Map(),
  /** Rooms with an unread mention of the user (or an unread direct message). */
  mentioned: new Set(),
  /** Direct room id -> the other user. */
  peers: new Map(),
  /** User id -> user, from messages, members and searches. */
  users: new Map(),
  /** User id -> 'online' | 'offline'. */
  presence: new Map(),
  /** Room id -> members [{user, role, joined_at}]. */
  members: new Map(),
  /** Room id -> timeline: {messages: Map<seq, message>, hasMore, loading, loaded}. */
  timelines: new Map(),
  /** Nonce -> a message sent but not yet acknowledged: {nonce, room_id, body, reply_to, created_at}. */
  pending: new Map(),
  /** Room id -> Map<user id, time the indicator ends>. */
  typing: new Map(),
  /** The open room's id. */
  current: null,
  /** The message being answered in the composer. */
  replyTo: null,
  /** The id of the own message being edited. */
  editing: null,
};

/** Forgets everything (on sign-out). */
export function resetState() {
  state.me = null;
  for (const key of ['rooms', 'peers', 'users', 'presence', 'members', 'timelines', 'pending', 'typing']) {
    state[key].clear();
  }
  state.mentioned.clear();
  state.current = null;
  state.replyTo = null;
  state.editing = null;
}

/** A room's timeline, created empty on first use. */
export function timeline(roomId) {
  let t = state.timelines.get(roomId);
  if (!t) {
    t = { messages: new Map(), hasMore: true, loading: false, loaded: false };
    state.timelines.set(roomId, t);
  }
  return t;
}

/** The highest seq a timeline holds (0 when empty). */
export function maxSeq(t) {
  let max = 0;
  for (const seq of t.messages.keys()) if (seq > max) max = seq;
  return max;
}

/** The lowest seq a timeline holds (Infinity when empty). */
export function minSeq(t) {
  let min = Infinity;
  for (const seq of t.messages.keys()) if (seq < min) min = seq;
  return min;
}

/** Remembers the users a message or member list names. */
export function learnUser(user) {
  if (user && user.id) state.users.set(user.id, user);
}

/** A room's name as the sidebar shows it: a direct room is named after the other user. */
export function roomName(room) {
  if (!room) return '';
  if (room.kind === 'direct') {
    const peer = state.peers.get(room.id);
    return peer ? peer.display_name || peer.username : 'Direct message';
  }
  return room.name || 'Untitled room';
}
