// room.js: the attendee's page (/room/{id}). Pick a display name, then
// follow the workshop live: the aspect under discussion, who speaks and for
// how long, the room's estimate of a team before its reveal (a level
// picker; one's own pick only), the scores as they are revealed with the
// room's estimate beside them, raised hands and Q&A.

import { useState, useEffect } from '../vendor/hooks.module.js';
import { signal } from '../vendor/signals.module.js';
import { html, mount, api, roomIdFromPath } from './lib.js';
import { Conn } from './conn.js';
import { chime, armSound } from './sound.js';
import {
  TopBar, StoppedBanner, LevelToggle, MuteToggle, Notice, LiveRegion, AspectTitle,
  TurnBox, Reveals, Heatmap, Hands, QA,
} from './components.js';
import { EstimatePickers } from './estimate.js';

const roomId = roomIdFromPath();
const idKey = `workshop:attendee:${roomId}`;

function loadIdentity() {
  try {
    const v = JSON.parse(localStorage.getItem(idKey) || 'null');
    return v && v.participant && v.token ? v : null;
  } catch (_) {
    return null;
  }
}

function saveIdentity(v) {
  try {
    if (v) localStorage.setItem(idKey, JSON.stringify(v));
    else localStorage.removeItem(idKey);
  } catch (_) {
    // storage disabled: the identity lasts for this page only
  }
}

// identity is the attendee's stored participant id and token; joinName a
// display name typed in but not yet welcomed.
const identity = signal(loadIdentity());
const joinName = signal('');
const expired = signal(false);

const conn = new Conn({
  roomId,
  identity() {
    const id = identity.value;
    // The token carries the name (PROTOCOL.md, hello); the name goes
    // along too, so an identity stored before tokens carried names keeps
    // its name rather than "Guest". onWelcome stores the token each
    // welcome answers (a new one after a rename).
    if (id) return id.name ? { participant: id.participant, token: id.token, name: id.name } : { participant: id.participant, token: id.token };
    if (joinName.value) return { name: joinName.value };
    return null;
  },
  onWelcome(msg) {
    if (msg.token) {
      identity.value = { participant: msg.participant, token: msg.token, name: msg.name };
      saveIdentity(identity.value);
    }
    joinName.value = '';
  },
  onFatal(code, reason) {
    if (code === 4001 && identity.value && !/removed/i.test(reason || '')) {
      // The stored identity is no longer accepted: pick a name again.
      saveIdentity(null);
      identity.value = null;
      expired.value = true;
    }
  },
  onTurnEnd: () => chime(),
});
armSound();

function JoinForm() {
  const [name, setName] = useState('');
  const [title, setTitle] = useState('');
  const [missing, setMissing] = useState(false);
  const [err, setErr] = useState('');
  useEffect(() => {
    api('GET', `/api/rooms/${encodeURIComponent(roomId)}`)
      .then((r) => {
        setTitle(r.title || '');
        document.title = `${r.title} · Join`;
      })
      .catch((e) => {
        if (e.status === 404) setMissing(true);
      });
  }, []);
  if (missing) {
    return html`
      <main class="narrow">
        <h1>Room not found</h1>
        <p>This room does not exist. Check the link or the code, or <a href="/">go to the home page</a>.</p>
      </main>`;
  }
  const submit = (e) => {
    e.preventDefault();
    const n = name.trim();
    if (!n) {
      setErr('Enter a display name.');
      return;
    }
    if (n.length > 40) {
      setErr('Use at most 40 characters.');
      return;
    }
    expired.value = false;
    joinName.value = n;
    conn.restart(true);
  };
  return html`
    <main class="narrow join">
      <p class="role-tag">Join the workshop</p>
      <h1>${title || 'Maturity leveling workshop'}</h1>
      ${expired.value && html`<p class="banner banner-error" role="alert">Your earlier session is no longer valid. Pick a name to join again.</p>`}
      <form onSubmit=${submit} class="card">
        <label for="join-name">Your display name</label>
        <input id="join-name" type="text" maxlength="40" autocomplete="nickname" value=${name}
          onInput=${(e) => setName(e.target.value)} aria-describedby="join-help join-err" required />
        <p id="join-help" class="muted small">Shown next to your questions and raised hand. You can ask anonymously.</p>
        <p id="join-err" class="form-error" role="alert">${err}</p>
        <button type="submit">Join</button>
      </form>
    </main>`;
}

function Lobby({ room }) {
  return html`
    <section class="card lobby">
      <h2>The workshop starts soon</h2>
      <p>${room.teams.length} teams will present their self-assessment on ${room.agenda.length} aspects of
        the ${room.model.name}.</p>
      <ul class="inline-list">${room.teams.map((t) => html`<li key=${t.id}>${t.name}</li>`)}</ul>
    </section>`;
}

function Ended({ room }) {
  return html`
    <section class="card">
      <h2>${room.phase === 'closed' ? 'This workshop is closed' : 'Wrap-up'}</h2>
      <p>The results stay readable: <a href=${`/results/${encodeURIComponent(room.id)}`}>see the results</a>.</p>
    </section>`;
}

function RoomView() {
  const room = conn.room.value;
  const me = conn.me.value;
  if (!room) {
    return html`
      <${TopBar} conn=${conn} title="" role="Attendee" />
      <${StoppedBanner} conn=${conn} />
      <main><p class="muted loading">Loading the room…</p></main>`;
  }
  const aspect = room.aspect;
  return html`
    <${TopBar} conn=${conn} title=${room.title} role="Attendee">
      <${LevelToggle} /><${MuteToggle} />
    </${TopBar}>
    <${StoppedBanner} conn=${conn} />
    <${Notice} conn=${conn} />
    <${LiveRegion} conn=${conn} />
    <main class="layout-2">
      <div class="col-main">
        ${room.phase === 'lobby' && html`<${Lobby} room=${room} />`}
        ${(room.phase === 'wrapup' || room.phase === 'closed') && html`<${Ended} room=${room} />`}
        ${aspect && html`
          <section class="card now" aria-labelledby="now-h">
            <h2 id="now-h" class="visually-hidden">Now</h2>
            <${AspectTitle} room=${room} aspectId=${aspect} level="3" />
            <${TurnBox} conn=${conn} room=${room} />
          </section>
          <${EstimatePickers} conn=${conn} room=${room} me=${me} />
          <section class="card" aria-labelledby="rev-h">
            <h2 id="rev-h">Revealed scores</h2>
            <${Reveals} conn=${conn} room=${room} aspect=${aspect} />
          </section>`}
        <section class="card">
          <${Heatmap} room=${room} current=${aspect} conn=${conn} />
        </section>
      </div>
      <div class="col-side">
        <${QA} conn=${conn} room=${room} me=${me} />
        <${Hands} conn=${conn} room=${room} me=${me} />
        ${me && html`<p class="muted small">You are ${me.name}.</p>`}
      </div>
    </main>`;
}

function App() {
  const id = identity.value;
  if (!id && !joinName.value) return html`<${JoinForm} />`;
  if (!id && conn.status.value === 'stopped') return html`<${JoinForm} />`;
  return html`<${RoomView} />`;
}

// Keep the tab title in step with the room.
conn.room.subscribe((r) => {
  if (r) document.title = `${r.title} · Workshop`;
});

mount(html`<${App} />`);
conn.start();
