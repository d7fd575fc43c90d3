// presenter.js: the presenter screen (/presenter/{id}#key=KEY), a
// read-only view in large type for a projector: the aspect under
// discussion, the speaking team and its countdown, the room's estimate
// (how many have estimated, then at the reveal the histogram beside the
// team's level), the scores revealed so far as a heatmap, the highlighted
// question, and how to join.

import { html, mount, roomIdFromPath, hashParams } from './lib.js';
import { Conn } from './conn.js';
import { chime, armSound } from './sound.js';
import {
  ConnBadge, StoppedBanner, LiveRegion, AspectTitle, TurnBox, Heatmap, JoinQR,
  LevelToggle, MuteToggle, PresenceCount,
} from './components.js';
import { EstimateProgress, EstimateResult, fmtGap, fmtNum, openTeams, roomEstimate } from './estimate.js';


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

// Estimates shows the room's estimate on the current aspect: how many
// have estimated each open team (nothing more before the reveal); after a
// reveal one histogram large enough for the back of the room (the speaking
// team's, else the largest flagged gap's) and a line for each other team.
function Estimates({ room }) {
  const aspect = room.aspect;
  if (!aspect) return null;
  const open = openTeams(room, aspect);
  const speaking = room.turn && room.turn.team;
  const weight = (x) => (x.team.id === speaking ? 100 : 0) + (x.result.flagged ? Math.abs(x.result.gap) : 0);
  const revealed = room.teams
    .map((t) => ({ team: t, result: roomEstimate(room, t.id, aspect) }))
    .filter((x) => x.result)
    .sort((a, b) => weight(b) - weight(a));
  if (!open.length && !revealed.length) return null;
  const [focus, ...others] = revealed;
  return html`
    <div class="pres-estimates" data-open=${open.join(' ')}>
      ${open.length > 0 && html`
        <div class="pres-est-open">
          <p class="eyebrow">The room is estimating · on your phone</p>
          ${open.map((id) => html`<${EstimateProgress} key=${id} room=${room} team=${id} aspect=${aspect} presence=${conn.presence.value} />`)}
        </div>`}
      ${focus && html`
        <div class="pres-est">
          <${EstimateResult} model=${room.model} team=${focus.team.id} teamLabel=${focus.team.name} result=${focus.result} big />
          ${others.length > 0 && html`
            <ul class="pres-est-others">
              ${others.map((x) => html`
                <li key=${x.team.id} data-team=${x.team.id} class=${x.result.flagged ? 'est-flagged-line' : ''}>
                  ${x.result.flagged && html`<span aria-hidden="true">⚑ </span>`}<strong>${x.team.name}</strong>:
                  ${' '}room ${fmtNum(x.result.median)}${typeof x.result.gap === 'number' ? `, gap ${fmtGap(x.result.gap)}` : ''}
                </li>`)}
            </ul>`}
        </div>`}
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
        <${Estimates} room=${room} />
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
