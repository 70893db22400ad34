// parlor's browser client, end to end: the real `parlor` binary and Debian's Chromium driven by
// playwright-core. Two people register, make a room, chat both ways, see typing, unread badges,
// edits and deletes; the server is killed and restarted and the clients catch up by themselves;
// then a phone-sized run, the dark theme, recovery with the phrase and a password change.
//
//   PARLOR_BIN=target/debug/parlor node e2e/run.mjs
//
// Environment: PARLOR_BIN (the binary; default target/debug/parlor or $CARGO_TARGET_DIR's),
// PARLOR_SCREENSHOTS (where screenshots go; default target/screenshots), CHROMIUM (default
// /usr/bin/chromium), E2E_ONLY (run only the scenarios whose name holds this text).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 10_000;

function fail(msg) {
  console.error(`e2e: ${msg}`);
  process.exit(2);
}

function findBinary() {
  if (process.env.PARLOR_BIN) return process.env.PARLOR_BIN;
  const dirs = [process.env.CARGO_TARGET_DIR, path.join(repo, 'target')].filter(Boolean);
  for (const d of dirs) {
    const p = path.join(d, 'debug', 'parlor');
    if (fs.existsSync(p)) return p;
  }
  return null;
}

const BIN = findBinary();
if (!BIN || !fs.existsSync(BIN)) fail('no parlor binary: build it (`cargo build -p parlor`) and set PARLOR_BIN to its path');
if (!fs.existsSync(CHROMIUM)) fail(`no Chromium at ${CHROMIUM}: install it with \`apt-get install -y chromium\``);

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  fail('playwright-core is missing: run `npm ci --prefix e2e`');
}

const SHOTS = path.resolve(process.env.PARLOR_SCREENSHOTS || path.join(repo, 'target', 'screenshots'));
fs.mkdirSync(SHOTS, { recursive: true });
// Failure pictures of an earlier run would pass for this one's.
for (const f of fs.readdirSync(SHOTS)) if (/^failure-.*\.png$/.test(f)) fs.rmSync(path.join(SHOTS, f));

// -------------------------------------------------------------------------------------------------
// The server

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** A `parlor serve` on a fixed port and data directory, so a restart comes back at the same address. */
class Server {
  constructor(port, dataDir, flags = []) {
    this.port = port;
    this.dataDir = dataDir;
    this.flags = flags;
    this.base = `http://127.0.0.1:${port}`;
    this.child = null;
  }

  async start() {
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PARLOR_')) env[k] = v;
    env.RUST_LOG = process.env.E2E_RUST_LOG || 'warn,parlor=info';
    const args = [
      'serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir,
      // Every browser here is one client address: do not throttle the test's sign-ups.
      '--auth-rate', '100', '--auth-burst', '1000',
      ...this.flags,
    ];
    const child = spawn(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.on('exit', resolve));
    const echo = !!process.env.E2E_SERVER_LOG;
    const listening = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server never logged "listening on"')), WAIT);
      let buf = '';
      child.stdout.on('data', (chunk) => {
        buf += chunk;
        if (echo) process.stdout.write(`  server: ${chunk}`);
        if (buf.includes('listening on')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', (code) => reject(new Error(`the server exited (${code}) before listening`)));
    });
    child.stderr.on('data', (chunk) => process.stderr.write(`  server stderr: ${chunk}`));
    await listening;
    const deadline = Date.now() + WAIT;
    for (;;) {
      try {
        const r = await fetch(`${this.base}/readyz`);
        if (r.ok) return;
      } catch {
        // not yet
      }
      if (Date.now() > deadline) throw new Error('the server never became ready');
      await sleep(50);
    }
  }

  /** SIGKILL: nothing is closed cleanly, as in a crash. */
  async kill() {
    if (!this.child) return;
    this.child.kill('SIGKILL');
    await this.exited;
    this.child = null;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// -------------------------------------------------------------------------------------------------
// A tiny runner: scenarios of named steps, each printed as it passes.

const scenarios = [];
const scenario = (name, fn) => scenarios.push({ name, fn });
let currentPages = [];

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
  } catch (e) {
    console.log(`    ✗ ${name}`);
    throw e;
  }
  console.log(`    ✓ ${name} (${Date.now() - started} ms)`);
}

async function shot(page, name) {
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file });
  console.log(`    screenshot: ${file}`);
  return file;
}

/** Problems a page reports (uncaught exceptions, CSP violations) fail the run. */
const pageProblems = [];
function watch(page, who) {
  page.on('pageerror', (e) => pageProblems.push(`${who}: uncaught ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content[- ]Security[- ]Policy/i.test(m.text())) pageProblems.push(`${who}: ${m.text()}`);
    if (process.env.E2E_CONSOLE) console.log(`    [${who} console.${m.type()}] ${m.text()}`);
  });
  page.on('dialog', (d) => d.accept());
  page.setDefaultTimeout(WAIT);
  currentPages.push(page);
  return page;
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

/** Polls `fn` until it returns a truthy value. */
async function eventually(fn, what, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await sleep(50);
  }
}

// -------------------------------------------------------------------------------------------------
// What a person does in the client

const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
];

async function register(page, base, username, password, displayName) {
  await page.goto(base);
  await page.click('#tab-register');
  const f = page.locator('#form-register');
  await f.locator('[name=username]').fill(username);
  if (displayName) await f.locator('[name=display_name]').fill(displayName);
  await f.locator('[name=password]').fill(password);
  await f.locator('button[type=submit]').click();
  await page.locator('#phrase').waitFor({ state: 'visible' });
  const words = await page.locator('#phrase-words li').allTextContents();
  assert(words.length === 12 || words.length === 24, `a 12- or 24-word phrase, got ${words.length}`);
  return words.join(' ');
}

async function finishPhrase(page) {
  assert(await page.locator('#phrase-continue').isDisabled(), 'continue waits for "I have saved it"');
  await page.check('#phrase-saved');
  await page.click('#phrase-continue');
  await page.locator('#app').waitFor({ state: 'visible' });
  assert(await page.locator('#phrase-words li').count() === 0, 'the phrase leaves the page');
}

async function login(page, base, username, password) {
  await page.goto(base);
  await page.click('#tab-login');
  const f = page.locator('#form-login');
  await f.locator('[name=username]').fill(username);
  await f.locator('[name=password]').fill(password);
  await f.locator('button[type=submit]').click();
  await page.locator('#app').waitFor({ state: 'visible' });
}

const online = (page) => page.locator('#conn[data-state="online"]').waitFor({ timeout: WAIT });
const roomLink = (page, name) => page.locator(`.room-link[data-room-name="${name}"]`);
/** The server-confirmed messages of the open room whose body holds `text`. */
const message = (page, text) =>
  page.locator('#messages .msg:not(.pending)').filter({ has: page.locator('.msg-body', { hasText: text }) });

/** Sends from the composer and waits for the server's copy; `shown` is the rendered text. */
async function send(page, text, shown = text) {
  const box = page.locator('#composer-input');
  await box.fill(text);
  await box.press('Enter');
  await message(page, shown).first().waitFor({ timeout: WAIT });
}

async function openRoom(page, name) {
  await roomLink(page, name).click();
  await page.locator('#room-title', { hasText: name }).waitFor();
  await page.locator('.history-note, #messages .msg').first().waitFor();
}

/** The seqs the open room shows, in order. */
const shownSeqs = (page) =>
  page.$$eval('#messages .msg[data-seq]', (els) => els.map((e) => Number(e.dataset.seq)));

/** The access token a page holds (to play a second device of the same user over REST). */
const tokenOf = (page) => page.evaluate(() => JSON.parse(localStorage.getItem('parlor.session')).access_token);

/** A REST call as another device would make it; waits out the send rate limit as asked. */
async function rest(base, token, method, p, body) {
  let r;
  for (let attempt = 0; ; attempt += 1) {
    r = await fetch(`${base}/api/v1${p}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });
    if (r.status !== 429 || attempt > 50) break;
    const wait = (await r.json()).error.retry_after_ms || 100;
    await sleep(wait + 10);
  }
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// -------------------------------------------------------------------------------------------------
// The scenarios

const people = {
  alice: { password: 'alice-password-1', display: 'Alice' },
  bob: { password: 'bob-password-1', display: 'Bob' },
};

scenario('two people chat in real time, and survive a server restart', async ({ browser, server }) => {
  const base = server.base;
  const ctxA = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const ctxB = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctxA.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const a = watch(await ctxA.newPage(), 'alice');
  const b = watch(await ctxB.newPage(), 'bob');

  await step('the page is served with its policy and the login screen shows', async () => {
    const r = await fetch(base + '/');
    assert(r.headers.get('content-type').startsWith('text/html'), 'html');
    assert(/script-src 'self'/.test(r.headers.get('content-security-policy') || ''), 'a CSP');
    await a.goto(base);
    await a.locator('#form-login').waitFor({ state: 'visible' });
    await shot(a, '01-login');
  });

  await step('Alice registers, sees her phrase once and copies it', async () => {
    people.alice.phrase = await register(a, base, 'alice', people.alice.password, people.alice.display);
    assert(await a.locator('#phrase .warning').isVisible(), 'a warning');
    await shot(a, '02-recovery-phrase');
    await a.click('#phrase-copy');
    await a.locator('#phrase-copied', { hasText: 'Copied' }).waitFor();
    const copied = await a.evaluate(() => navigator.clipboard.readText());
    assert(copied === people.alice.phrase, 'the clipboard holds the phrase');
    await finishPhrase(a);
    await online(a);
  });

  await step('Bob registers in another browser', async () => {
    people.bob.phrase = await register(b, base, 'bob', people.bob.password, people.bob.display);
    await finishPhrase(b);
    await online(b);
  });

  await step('Alice creates #general and #random', async () => {
    for (const [name, topic] of [['random', 'anything goes'], ['general', 'where we meet']]) {
      await a.click('#nav-new-room');
      const f = a.locator('#new-room-form');
      await f.locator('[name=name]').fill(name);
      await f.locator('[name=topic]').fill(topic);
      await f.locator('button[type=submit]').click();
      await a.locator('#room-title', { hasText: name }).waitFor();
      await a.locator('#room-topic', { hasText: topic }).waitFor();
    }
  });

  await step('Bob finds both in the directory and joins them', async () => {
    await b.click('#nav-directory');
    for (const name of ['random', 'general']) {
      const row = b.locator(`#directory-list li[data-room-name="${name}"]`);
      await row.waitFor();
      await row.getByRole('button', { name: 'Join' }).click();
      await b.locator('#room-title', { hasText: name }).waitFor();
      if (name === 'random') await b.click('#nav-directory');
    }
    await roomLink(b, 'random').waitFor();
    await roomLink(b, 'general').waitFor();
  });

  await step('they chat both ways in real time', async () => {
    await openRoom(a, 'general');
    await send(a, 'Hello Bob, welcome to **general**', 'Hello Bob, welcome to general');
    await message(b, 'Hello Bob, welcome to general').waitFor();
    assert(await message(b, 'Hello Bob').locator('strong', { hasText: 'general' }).count() === 1, 'markdown rendered by the server');
    await send(b, 'Hi Alice! Glad to be here');
    await message(a, 'Hi Alice! Glad to be here').waitFor();
    await send(a, 'Two lines:\nthis is the second');
    await message(b, 'this is the second').waitFor();
  });

  await step('Bob sees Alice typing', async () => {
    await a.locator('#composer-input').pressSequentially('I am writing', { delay: 20 });
    await b.locator('#typing', { hasText: 'Alice is typing' }).waitFor();
    await a.locator('#composer-input').fill('');
  });

  await step('Bob sees an unread badge, with a mention, for a room he is not looking at', async () => {
    await openRoom(a, 'random');
    await send(a, 'Anyone around in random?');
    await send(a, 'Hey @bob, look at this');
    const badge = roomLink(b, 'random').locator('.badge');
    await badge.filter({ hasText: '2' }).waitFor();
    assert(await roomLink(b, 'random').evaluate((el) => el.classList.contains('mention')), 'the mention is highlighted');
    assert(await roomLink(b, 'general').locator('.badge').count() === 0, 'no badge for the open room');
    await shot(b, '03-room-desktop');
    await openRoom(b, 'random');
    await message(b, 'look at this').waitFor();
    assert(await message(b, 'look at this').evaluate((el) => el.classList.contains('mentions-me')), 'the message mentioning Bob stands out');
    await roomLink(b, 'random').locator('.badge').waitFor({ state: 'detached' });
    const rooms = await rest(base, await tokenOf(b), 'GET', '/rooms');
    const random = rooms.rooms.find((r) => r.name === 'random');
    await eventually(async () => {
      const again = await rest(base, await tokenOf(b), 'GET', '/rooms');
      return again.rooms.find((r) => r.id === random.id).unread_count === 0;
    }, 'the read marker to reach the server');
    await openRoom(b, 'general');
  });

  await step('Alice edits and deletes her messages; Bob sees the markers', async () => {
    await openRoom(a, 'general');
    await send(a, 'This has a tyop');
    await send(a, 'This one will go');
    const typo = message(a, 'This has a tyop');
    await typo.hover();
    await typo.getByRole('button', { name: 'Edit' }).click();
    const edit = a.locator('#messages textarea.edit-input');
    await edit.fill('This had a typo, fixed');
    await edit.press('Enter');
    await message(b, 'This had a typo, fixed').locator('.edited').waitFor();
    const gone = message(a, 'This one will go');
    await gone.hover();
    await gone.getByRole('button', { name: 'Delete' }).click();
    await b.locator('#messages .msg.deleted', { hasText: 'This message was deleted.' }).waitFor();
    assert(await message(b, 'This one will go').count() === 0, 'the deleted text is gone for Bob');
  });

  await step('a reply quotes the message it answers', async () => {
    const m = message(b, 'Hello Bob');
    await m.hover();
    await m.getByRole('button', { name: 'Reply' }).click();
    await b.locator('#reply-bar', { hasText: 'Replying to Alice' }).waitFor();
    await send(b, 'Replying to your hello');
    await message(a, 'Replying to your hello').locator('.reply-ref', { hasText: 'Hello Bob' }).waitFor();
  });

  await step('a rejected send is said inline under the composer', async () => {
    const links = Array.from({ length: 12 }, (_, i) => `https://example${i}.com/x`).join(' ');
    await b.locator('#composer-input').fill(`links ${links}`);
    await b.locator('#composer-input').press('Enter');
    await b.locator('#send-error:not([hidden])').waitFor();
    const text = await b.locator('#send-error').textContent();
    assert(/Not sent|too fast/.test(text), `an explanation, got "${text}"`);
    await b.locator('#composer-input').fill('');
  });

  let seqsBefore;
  await step('the server is killed: both clients show that they are disconnected', async () => {
    seqsBefore = await shownSeqs(b);
    await server.kill();
    await a.locator('#conn[data-state="offline"]').waitFor({ timeout: WAIT });
    await b.locator('#conn[data-state="offline"]').waitFor({ timeout: WAIT });
    await shot(a, '04-disconnected');
  });

  await step('a message written while the server is down is kept and sent once it is back', async () => {
    await a.locator('#composer-input').fill('Written while the server was down');
    await a.locator('#composer-input').press('Enter');
    await a.locator('#messages .msg.pending', { hasText: 'Written while the server was down' }).waitFor();
  });

  await step('the server restarts; Bob, kept offline meanwhile, reconnects by himself and catches up once', async () => {
    await ctxB.setOffline(true);
    await server.start();
    await online(a);
    await message(a, 'Written while the server was down').waitFor();
    // Alice's second device writes over REST while Bob is still away.
    const token = await tokenOf(a);
    const general = (await rest(base, token, 'GET', '/rooms')).rooms.find((r) => r.name === 'general');
    await rest(base, token, 'POST', `/rooms/${general.id}/messages`, { body: 'Sent from my phone while you were away', nonce: 'e2e-away-1' });
    await sleep(1500);
    assert((await b.locator('#conn').getAttribute('data-state')) !== 'online', 'Bob stays offline while his network is off');
    await ctxB.setOffline(false);
    await online(b);
    await message(b, 'Sent from my phone while you were away').waitFor();
    await message(b, 'Written while the server was down').waitFor();
    await sleep(500);
    for (const text of ['Sent from my phone while you were away', 'Written while the server was down', 'Hello Bob']) {
      const n = await message(b, text).count();
      assert(n === 1, `"${text}" shows once for Bob, not ${n} times`);
    }
    assert(await message(a, 'Written while the server was down').count() === 1, 'the kept message was sent once');
    const seqs = await shownSeqs(b);
    assert(seqs.length === seqsBefore.length + 2, `two new messages (${seqsBefore.length} -> ${seqs.length})`);
    seqs.forEach((s, i) => assert(i === 0 || s === seqs[i - 1] + 1, `no gap in ${seqs}`));
  });

  await step('and the chat goes on', async () => {
    await send(b, 'Back online');
    await message(a, 'Back online').waitFor();
  });

  await step('Bob starts a direct message with Alice; she gets a badge for it', async () => {
    await openRoom(a, 'general');
    await b.click('#nav-new-dm');
    await b.locator('#dm-q').fill('ali');
    await b.locator('#dm-results li[data-username="alice"] button').click();
    await b.locator('#room-title', { hasText: 'Alice' }).waitFor();
    await send(b, 'Psst, a private word');
    const link = a.locator('#dm-list .room-link', { hasText: 'Bob' });
    await link.locator('.badge', { hasText: '1' }).waitFor();
    await link.click();
    await message(a, 'Psst, a private word').waitFor();
  });

  await step('search finds a message', async () => {
    await a.locator('#search-input').fill('typo');
    await a.locator('#search-input').press('Enter');
    await a.locator('#search-results .search-hit', { hasText: 'This had a typo, fixed' }).waitFor();
  });

  await ctxA.close();
  await ctxB.close();
});

scenario('a phone-sized screen: log in, open a room, send', async ({ browser, server }) => {
  const ctx = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const p = watch(await ctx.newPage(), 'alice-phone');
  await step('Alice logs in on her phone', async () => {
    await login(p, server.base, 'alice', people.alice.password);
    await online(p);
    assert(await p.locator('#sidebar').isVisible(), 'the room list is the home screen');
    assert(!(await p.locator('#main').isVisible()), 'no panel beside it');
  });
  await step('she opens #general and sends from the phone', async () => {
    await roomLink(p, 'general').tap();
    await p.locator('#room-title', { hasText: 'general' }).waitFor();
    assert(!(await p.locator('#sidebar').isVisible()), 'the room covers the list');
    await message(p, 'Back online').waitFor();
    await p.locator('#composer-input').tap();
    await send(p, 'Typed on a phone');
    await shot(p, '05-room-mobile');
  });
  await step('the back button returns to the list', async () => {
    await p.locator('#view-room .back').tap();
    await p.locator('#sidebar').waitFor({ state: 'visible' });
  });
  await ctx.close();
});

scenario('the dark theme follows the system', async ({ browser, server }) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
  const p = watch(await ctx.newPage(), 'bob-dark');
  await step('Bob logs in with a dark system theme', async () => {
    await login(p, server.base, 'bob', people.bob.password);
    await online(p);
    await openRoom(p, 'general');
    await message(p, 'Typed on a phone').waitFor();
    const bg = await p.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const [r, g, bl] = bg.match(/\d+/g).map(Number);
    assert(r + g + bl < 150, `a dark background, got ${bg}`);
    await shot(p, '06-room-dark');
  });
  await ctx.close();
});

scenario('history loads older messages on scroll', async ({ browser, server }) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p = watch(await ctx.newPage(), 'carol-history');
  await step('a room with 70 messages shows the newest, then older pages as Carol scrolls up', async () => {
    const r = await fetch(`${server.base}/api/v1/auth/register`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'carol', password: 'carol-password-1' }),
    });
    assert(r.status === 201, `carol registered, got ${r.status}`);
    await login(p, server.base, 'carol', 'carol-password-1');
    await online(p);
    const token = await tokenOf(p);
    const room = await rest(server.base, token, 'POST', '/rooms', { name: 'long-history' });
    for (let i = 1; i <= 70; i += 1) {
      await rest(server.base, token, 'POST', `/rooms/${room.id}/messages`, { body: `history line ${i}`, nonce: `h-${i}` });
    }
    await openRoom(p, 'long-history');
    await message(p, 'history line 70').waitFor();
    assert((await shownSeqs(p))[0] > 1, 'the newest page first, not everything at once');
    await eventually(async () => {
      await p.locator('#messages').evaluate((el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); });
      return (await shownSeqs(p))[0] === 1;
    }, 'the first message after scrolling up', 15_000);
    await p.locator('.history-note', { hasText: 'beginning of the room' }).waitFor();
    const seqs = await shownSeqs(p);
    assert(seqs.length === 70 && seqs.every((s, i) => s === i + 1), `all 70 in order, got ${seqs.length}`);
  });
  await ctx.close();
});

scenario('a send over the rate limit is said inline', async ({ browser }) => {
  // A server of its own, with a burst of two messages.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parlor-e2e-limit-'));
  const server = new Server(await freePort(), dataDir, ['--send-rate', '1', '--send-burst', '2']);
  await server.start();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p = watch(await ctx.newPage(), 'dave-limited');
  try {
    await step('Dave sends faster than allowed and is told to wait; his text is kept', async () => {
      await register(p, server.base, 'dave', 'dave-password-1');
      await finishPhrase(p);
      await online(p);
      await p.click('#nav-new-room');
      await p.locator('#new-room-form [name=name]').fill('fast');
      await p.locator('#new-room-form button[type=submit]').click();
      await p.locator('#room-title', { hasText: 'fast' }).waitFor();
      const box = p.locator('#composer-input');
      for (const text of ['one', 'two', 'three', 'four']) {
        await box.fill(`quick ${text}`);
        await box.press('Enter');
      }
      await p.locator('#send-error', { hasText: 'sending too fast' }).waitFor();
      assert((await box.inputValue()).startsWith('quick'), 'the refused text is back in the composer');
      await shot(p, '08-rate-limited');
    });
  } finally {
    await ctx.close();
    await server.kill();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

scenario('recover with the phrase, change the password, sessions, log out', async ({ browser, server }) => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const p = watch(await ctx.newPage(), 'alice-recover');
  const newPassword = 'alice-recovered-2';
  await step('Alice recovers her account with the phrase and gets a new one', async () => {
    await p.goto(server.base);
    await p.click('#tab-recover');
    const f = p.locator('#form-recover');
    await f.locator('[name=username]').fill('alice');
    await f.locator('[name=recovery_phrase]').fill(people.alice.phrase);
    await f.locator('[name=new_password]').fill(newPassword);
    await f.locator('button[type=submit]').click();
    await p.locator('#phrase').waitFor({ state: 'visible' });
    const words = (await p.locator('#phrase-words li').allTextContents()).join(' ');
    assert(words !== people.alice.phrase, 'a new phrase');
    await finishPhrase(p);
    await online(p);
  });
  await step('the old password no longer works, the new one does', async () => {
    const r = await fetch(`${server.base}/api/v1/auth/login`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: 'alice', password: people.alice.password }),
    });
    assert(r.status === 401, `old password refused, got ${r.status}`);
  });
  await step('she changes her password and sees her sessions', async () => {
    await p.click('#nav-settings');
    await p.locator('#session-list li[data-current="true"]').waitFor();
    const f = p.locator('#password-form');
    await f.locator('[name=current_password]').fill(newPassword);
    await f.locator('[name=new_password]').fill('alice-changed-3');
    await f.locator('button[type=submit]').click();
    await f.locator('.form-ok', { hasText: 'Password changed' }).waitFor();
    await shot(p, '07-account');
  });
  await step('she logs out and back in with the new password', async () => {
    await p.click('#logout');
    await p.locator('#form-login').waitFor({ state: 'visible' });
    await login(p, server.base, 'alice', 'alice-changed-3');
    await online(p);
  });
  await step('a wrong password is said on the form', async () => {
    await p.click('#nav-settings');
    await p.click('#logout');
    const f = p.locator('#form-login');
    await f.locator('[name=username]').fill('alice');
    await f.locator('[name=password]').fill('not-the-password');
    await f.locator('button[type=submit]').click();
    await f.locator('.form-error', { hasText: 'Wrong username or password' }).waitFor();
  });
  await ctx.close();
});

// -------------------------------------------------------------------------------------------------

async function main() {
  const started = Date.now();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'parlor-e2e-'));
  const server = new Server(await freePort(), dataDir);
  console.log(`e2e: parlor ${BIN}, Chromium ${CHROMIUM}, screenshots in ${SHOTS}`);
  await server.start();
  // Playwright gives the browser a fresh, temporary profile of its own.
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  let failed = 0;
  const only = process.env.E2E_ONLY;
  for (const s of scenarios) {
    if (only && !s.name.includes(only)) continue;
    console.log(`  ${s.name}`);
    currentPages = [];
    try {
      await s.fn({ browser, server });
    } catch (e) {
      failed += 1;
      console.log(`    FAILED: ${e.stack || e}`);
      for (const [i, page] of currentPages.entries()) {
        if (page.isClosed()) continue;
        await shot(page, `failure-${scenarios.indexOf(s)}-${i}`).catch(() => {});
      }
      if (!server.child) await server.start().catch(() => {});
    }
  }
  for (const p of pageProblems) console.log(`  page problem: ${p}`);
  await browser.close();
  await server.kill();
  fs.rmSync(dataDir, { recursive: true, force: true });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (failed || pageProblems.length) {
    console.log(`e2e: FAILED (${failed} scenario(s), ${pageProblems.length} page problem(s)) in ${secs} s`);
    process.exit(1);
  }
  console.log(`e2e: all passed in ${secs} s; screenshots in ${SHOTS}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
