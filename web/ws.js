// The realtime half of the contract: one WebSocket to /api/v1/ws, authenticated by its first
// frame, reopened by itself with a growing delay after any drop, and watched by an application
// ping so that a silent network is noticed too.

/**
 * Events: `state` (detail: {state, retryIn}), `ready` (detail: the ready frame), `frame`
 * (detail: any other server frame), `signedout`.
 */
export class Connection extends EventTarget {
  /**
   * @param {() => Promise<string|null>} token a fresh access token, or null when signed out
   * @param {() => Promise<object|null>} refresh a forced refresh; null when the session is over
   */
  constructor(token, refresh) {
    super();
    this.token = token;
    this.refresh = refresh;
    this.ws = null;
    this.state = 'idle';
    this.attempt = 0;
    this.timer = null;
    this.heartbeat = null;
    this.lastFrameAt = 0;
    this.heartbeatMs = 30000;
    this.stopped = true;
    this.onOnline = () => this.reconnectNow();
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.open();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
      this.ws = null;
    }
    this.setState('idle');
  }

  setState(state, retryIn) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, retryIn } }));
  }

  /** Sends a frame if the connection is ready; returns whether it went out. */
  send(frame) {
    if (this.state !== 'online' || !this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  reconnectNow() {
    if (this.stopped || this.state === 'online' || this.state === 'connecting') return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.open();
  }

  async open() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.setState('connecting');
    let token;
    try {
      token = await this.token();
    } catch {
      token = undefined; // the server is unreachable: try again later
    }
    if (this.stopped) return;
    if (token === null) {
      this.dispatchEvent(new Event('signedout'));
      return;
    }
    if (token === undefined) {
      this.retry();
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/ws`);
    this.ws = ws;
    let unauthorized = false;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token }));
    ws.onmessage = (ev) => {
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!frame || typeof frame.type !== 'string') return;
      if (frame.type === 'ready') {
        this.attempt = 0;
        this.heartbeatMs = Number(frame.heartbeat_ms) || 30000;
        this.startHeartbeat();
        this.setState('online');
        this.dispatchEvent(new CustomEvent('ready', { detail: frame }));
      } else if (frame.type === 'error' && frame.code === 'unauthorized' && this.state !== 'online') {
        unauthorized = true;
      } else if (frame.type !== 'pong') {
        this.dispatchEvent(new CustomEvent('frame', { detail: frame }));
      }
    };
    ws.onclose = async (ev) => {
      clearInterval(this.heartbeat);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (unauthorized || ev.code === 4001) {
        // The access token expired, or the session ended: one refresh tells which.
        let s;
        try {
          s = await this.refresh();
        } catch {
          s = undefined;
        }
        if (s === null) {
          this.dispatchEvent(new Event('signedout'));
          return;
        }
      }
      this.retry();
    };
  }

  retry() {
    if (this.stopped) return;
    const base = Math.min(10000, 500 * 2 ** this.attempt);
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.attempt += 1;
    this.setState('offline', delay);
    this.timer = setTimeout(() => this.open(), delay);
  }

  startHeartbeat() {
    clearInterval(this.heartbeat);
    this.lastFrameAt = Date.now();
    const every = Math.max(1000, Math.min(this.heartbeatMs, 25000));
    this.heartbeat = setInterval(() => {
      if (!this.ws) return;
      if (Date.now() - this.lastFrameAt > 2 * every + 1000) {
        // Nothing heard for two rounds: the network is gone even if the socket has not noticed.
        const dead = this.ws;
        this.ws = null;
        dead.onclose = null;
        dead.close();
        clearInterval(this.heartbeat);
        this.retry();
        return;
      }
      this.send({ type: 'ping' });
    }, every);
  }
}
