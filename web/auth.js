// The signed-out screens: log in, register, recover with the phrase, and the one showing of a
// recovery phrase (with a copy button and a warning).

import { api, adopt } from './api.js';
import { h, byId } from './dom.js';

const TABS = ['login', 'register', 'recover'];

/** Shows one of the three forms. */
export function showTab(name) {
  for (const tab of TABS) {
    const on = tab === name;
    byId(`form-${tab}`).hidden = !on;
    const button = byId(`tab-${tab}`);
    button.setAttribute('aria-selected', String(on));
    button.tabIndex = on ? 0 : -1;
  }
}

function formError(form, err) {
  const el = form.querySelector('.form-error');
  for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  if (!err) {
    el.textContent = '';
    return;
  }
  let text = err.message || 'Something went wrong.';
  if (err.code === 'unauthorized') text = 'Wrong username or password.';
  else if (err.code === 'conflict') text = 'That username is taken.';
  else if (err.code === 'rate_limited') text = `Too many attempts. Try again in ${Math.ceil((err.retryAfterMs || 1000) / 1000)} s.`;
  else if (err.code === 'network') text = 'The server cannot be reached. Check your connection.';
  el.textContent = text;
  const field = err.field && form.querySelector(`[name="${CSS.escape(err.field)}"]`);
  if (field) {
    field.setAttribute('aria-invalid', 'true');
    field.focus();
  }
}

/** Checks the browser's constraints first, so a plainly wrong field is said before any call. */
function locallyValid(form) {
  for (const input of form.querySelectorAll('input, textarea')) {
    if (!input.checkValidity()) {
      const label = input.closest('label');
      const name = label ? label.firstChild.textContent.trim() : input.name;
      formError(form, { message: `${name}: ${input.validationMessage}`, field: input.name });
      return false;
    }
  }
  return true;
}

async function submit(form, run) {
  if (!locallyValid(form)) return;
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  formError(form, null);
  try {
    await run(Object.fromEntries(new FormData(form)));
  } catch (e) {
    formError(form, e);
  } finally {
    button.disabled = false;
  }
}

/**
 * Wires the forms. `signedIn()` is called once a session exists; a new phrase is shown first.
 */
export function wireAuth(signedIn) {
  for (const tab of TABS) byId(`tab-${tab}`).addEventListener('click', () => showTab(tab));
  byId('auth').querySelector('[role="tablist"]').addEventListener('keydown', (ev) => {
    if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
    const at = TABS.findIndex((t) => byId(`tab-${t}`).getAttribute('aria-selected') === 'true');
    const next = TABS[(at + (ev.key === 'ArrowRight' ? 1 : TABS.length - 1)) % TABS.length];
    showTab(next);
    byId(`tab-${next}`).focus();
  });

  byId('form-login').addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit(ev.target, async (v) => {
      const r = await api.login({ username: v.username.trim(), password: v.password });
      adopt(r, r.user);
      ev.target.reset();
      signedIn();
    });
  });

  byId('form-register').addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit(ev.target, async (v) => {
      const body = { username: v.username.trim(), password: v.password };
      if (v.display_name.trim()) body.display_name = v.display_name.trim();
      const r = await api.register(body);
      adopt(r, r.user);
      ev.target.reset();
      showPhrase(r.recovery_phrase, signedIn);
    });
  });

  byId('form-recover').addEventListener('submit', (ev) => {
    ev.preventDefault();
    submit(ev.target, async (v) => {
      const r = await api.recover({
        username: v.username.trim(),
        recovery_phrase: v.recovery_phrase.trim().split(/\s+/).join(' '),
        new_password: v.new_password,
      });
      adopt(r, r.user);
      ev.target.reset();
      showPhrase(r.recovery_phrase, signedIn);
    });
  });

  byId('phrase-saved').addEventListener('change', (ev) => {
    byId('phrase-continue').disabled = !ev.target.checked;
  });
}

let phraseDone = null;

/** The recovery phrase, once; `then()` runs when the user says it is saved. */
export function showPhrase(phrase, then) {
  byId('auth').hidden = true;
  byId('app').hidden = true;
  byId('phrase').hidden = false;
  byId('phrase-words').replaceChildren(...phrase.split(/\s+/).map((w) => h('li', null, w)));
  byId('phrase-copied').textContent = '';
  byId('phrase-saved').checked = false;
  byId('phrase-continue').disabled = true;
  const copy = byId('phrase-copy');
  copy.onclick = async () => {
    try {
      await navigator.clipboard.writeText(phrase);
      byId('phrase-copied').textContent = 'Copied to the clipboard.';
    } catch {
      // No clipboard access (an insecure origin): select the words for a manual copy.
      const range = document.createRange();
      range.selectNodeContents(byId('phrase-words'));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      byId('phrase-copied').textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
  };
  phraseDone = () => {
    // The phrase leaves the page for good.
    byId('phrase-words').replaceChildren();
    copy.onclick = null;
    byId('phrase').hidden = true;
    then();
  };
  byId('phrase-continue').onclick = () => phraseDone && phraseDone();
  byId('phrase').querySelector('h1').tabIndex = -1;
  byId('phrase').querySelector('h1').focus();
}

/** The signed-out screen. */
export function showAuth(tab = 'login') {
  byId('app').hidden = true;
  byId('phrase').hidden = true;
  byId('auth').hidden = false;
  showTab(tab);
  const first = byId(`form-${tab}`).querySelector('input');
  if (first) first.focus();
}
