// presenter.js: the presenter screen (/presenter/{id}#key=KEY), a
// read-only view in large type for a projector: the aspect under
// discussion, the speaking team and its countdown, the scores revealed so
// far as a heatmap, the highlighted question, and how to join.

import { html, mount, roomIdFromPath, hashParams } from './lib.js';
import { Conn } from './conn.js';
import { chime, armSound } from './sound.js';
import {
  ConnBadge, StoppedBanner, LiveRegion, AspectTitle, TurnBox, Heatmap, JoinQR,
  LevelToggle, MuteToggle, PresenceCount,
} from './components.js';

const roomId = roomIdFromPath();
const key = hashParams().get('key') || '';

const conn = new Conn({
  roomId,
  identity: () => (key ? { key } : null),
  onTurnEnd: () => chime(),
});
armSound();
document.documentElement.classList.add('presenter-mode');

function Highlighted({ room }) {
  const q = room.highlighted && room.questions.find((x) => x.id === room.highlighted);
  if (!q || q.hidden || q.pending) {
    return html`<div class="pres-question pres-question-empty"><p class="muted">Ask your questions on your phone: scan the code.</p></div>`;
  }
  return html`
    <div class="pres-question" data-question=${q.id}>
      <p class="eyebrow">Question${q.answered ? ' · answered' : ''}</p>
      <blockquote class="pres-question-text">${q.text}</blockquote>
      <p class="pres-question-meta">${q.anonymous ? 'Anonymous' : (q.authorName || '')} · ▲ ${q.votes || 0}</p>
    </div>`;
}

function Screen() {
  const room = conn.room.value;
  if (!key) {
    return html`<main class="narrow"><h1>No key in this link</h1><p>Open the presenter screen from the facilitator console.</p></main>`;
  }
  if (!room) {
    return html`<main class="pres"><${StoppedBanner} conn=${conn} /><p class="pres-loading">Connecting…</p><${ConnBadge} conn=${conn} /></main>`;
  }
  const phaseText = { lobby: 'Starting soon', wrapup: 'Wrap-up', closed: 'Closed' }[room.phase];
  return html`
    <${StoppedBanner} conn=${conn} />
    <${LiveRegion} conn=${conn} />
    <main class="pres">
      <header class="pres-head">
        <h1 class="pres-title">${room.title}</h1>
        <div class="pres-tools">
          <${PresenceCount} conn=${conn} />
          <${ConnBadge} conn=${conn} />
          <span class="pres-prefs"><${LevelToggle} /><${MuteToggle} /></span>
        </div>
      </header>
      <section class="pres-now">
        ${room.aspect ? html`<${AspectTitle} room=${room} aspectId=${room.aspect} level="2" />`
          : html`<div class="aspect-title"><p class="eyebrow">${room.model.name}</p><h2 class="aspect-name">${phaseText || ''}</h2></div>`}
        ${phaseText && room.aspect && html`<p class="pres-phase">${phaseText}</p>`}
        <${TurnBox} conn=${conn} room=${room} big />
      </section>
      <section class="pres-map" style=${{ '--rows': String(room.teams.length) }}>
        <${Heatmap} room=${room} current=${room.aspect} big conn=${conn} />
      </section>
      <aside class="pres-side">
        <${JoinQR} room=${room} big />
        <${Highlighted} room=${room} />
      </aside>
    </main>`;
}

conn.room.subscribe((r) => {
  if (r) document.title = `${r.title} · Presenter`;
});

mount(html`<${Screen} />`);
conn.start();
