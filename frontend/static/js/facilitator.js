// facilitator.js: the facilitator's console (/facilitator/{id}#key=KEY).
// Runs the agenda, the team queue and the speaking timer, reveals and hides
// scores, runs the room's estimate (and suggests whom to discuss first),
// moderates Q&A and raised hands, keeps notes and action items,
// shows who is here, opens the presenter screen and exports the results.

import { useState, useEffect, useRef } from '../vendor/hooks.module.js';
import { signal } from '../vendor/signals.module.js';
import {
  html, mount, roomIdFromPath, hashParams, aspectOf, teamName, plural, exportResults,
} from './lib.js';
import { Conn } from './conn.js';
import { chime, armSound } from './sound.js';
import {
  TopBar, StoppedBanner, LevelToggle, MuteToggle, Notice, LiveRegion, AspectTitle,
  TurnBox, Heatmap, Hands, QA, LevelChip, CopyField, JoinQR,
} from './components.js';
import { EstimateProgress, EstimateResult, discussFirst, fmtGap, roomEstimate } from './estimate.js';
import { estimateOf } from './state.js';

const roomId = roomIdFromPath();
const params = hashParams();
const key = params.get('key') || '';
// presenterKey is the presenter key: from the link's fragment, or else
// from the welcome, which derives it from the facilitator key.
const presenterKey = () => params.get('presenter') || conn.me.value?.keys?.presenter || '';
const noteDelay = 1000; // ms after the last keystroke before a note is saved

// turnSeconds is the turn length chosen for the next call, shared by the
// timer controls and the queue's Call buttons.
const turnSeconds = signal(180);

const conn = new Conn({
  roomId,
  identity: () => (key ? { key } : null),
  onTurnEnd: () => chime(),
});
armSound();

function move(list, i, d) {
  const out = list.slice();
  const j = i + d;
  if (j < 0 || j >= out.length) return out;
  [out[i], out[j]] = [out[j], out[i]];
  return out;
}

function openPresenter() {
  // The presenter screen is read-only. Without a presenter key in this
  // link, it opens with the facilitator key and shows only public data.
  const k = presenterKey() || key;
  window.open(`/presenter/${encodeURIComponent(roomId)}#key=${encodeURIComponent(k)}`, `presenter-${roomId}`, 'noopener');
}

function PhaseBar({ room }) {
  const phase = room.phase;
  const label = { lobby: 'Lobby: not started', running: 'Running', wrapup: 'Wrap-up', closed: 'Closed' }[phase] || phase;
  return html`
    <section class="card phase-bar" aria-label="Workshop phase">
      <p><span class="eyebrow">Phase</span> <strong data-phase=${phase}>${label}</strong></p>
      <div class="row-actions">
        ${phase === 'lobby' && html`<button type="button" class="button-primary" onClick=${() => conn.act('start', {})}>Start the workshop</button>`}
        ${phase === 'running' && html`<button type="button" onClick=${() => conn.act('wrap_up', {})}>Wrap up</button>`}
        ${phase !== 'closed' && html`
          <button type="button" class="button-danger" onClick=${() => {
            if (window.confirm('Close the room? Nobody can change anything afterwards; the results stay readable.')) conn.act('close', {});
          }}>Close room</button>`}
        <button type="button" onClick=${openPresenter}>Open presenter screen</button>
        <a class="button button-quiet" href=${`/results/${encodeURIComponent(roomId)}#key=${encodeURIComponent(key)}`} target="_blank" rel="noopener">Results</a>
      </div>
    </section>`;
}

function TimerControls({ room }) {
  const seconds = turnSeconds.value;
  const running = room.phase === 'running';
  return html`
    <div class="timer-controls">
      <label for="turn-seconds">Turn length</label>
      <select id="turn-seconds" value=${seconds} onChange=${(e) => { turnSeconds.value = Number(e.target.value); }}>
        ${[60, 120, 180, 240, 300, 420, 600].map((s) => html`<option value=${s} key=${s}>${s / 60} min</option>`)}
      </select>
      <button type="button" class="button-primary" disabled=${!running} onClick=${() => conn.act('call_turn', { seconds })}>Call next team</button>
      ${room.turn && html`
        <button type="button" onClick=${() => conn.act('extend_turn', { seconds: 30 })}>+30 s</button>
        <button type="button" onClick=${() => conn.act('extend_turn', { seconds: 60 })}>+1 min</button>
        <button type="button" onClick=${() => conn.act('end_turn', {})}>End turn</button>`}
    </div>`;
}

// Queue is the current aspect's team queue with call and reveal controls.
function Queue({ room }) {
  // In the lobby the queue of the first aspect shows who has submitted.
  const aspect = room.aspect || room.agenda[0];
  const queue = (room.queues[aspect] && room.queues[aspect].length ? room.queues[aspect] : room.teams.map((t) => t.id));
  const spoken = room.spoken[aspect] || [];
  const presence = conn.presence.value || {};
  const submitted = room.teams.filter((t) => room.scores[t.id] && room.scores[t.id][aspect] && room.scores[t.id][aspect].submitted).length;
  const anyRevealed = room.teams.some((t) => room.scores[t.id] && room.scores[t.id][aspect] && room.scores[t.id][aspect].revealed);
  const allRevealed = room.teams.every((t) => room.scores[t.id] && room.scores[t.id][aspect] && room.scores[t.id][aspect].revealed);
  const running = room.phase === 'running' || room.phase === 'wrapup';
  return html`
    <section class="card queue" aria-labelledby="queue-h">
      <div class="card-head">
        <h2 id="queue-h">Teams${room.aspect ? '' : html` <span class="muted small">(${(aspectOf(room.model, aspect) || {}).name || aspect})</span>`}</h2>
        <span class="muted small" data-submitted=${submitted}>${submitted} of ${room.teams.length} submitted</span>
      </div>
      <ol class="queue-list">
        ${queue.map((id, i) => {
          const s = (room.scores[id] && room.scores[id][aspect]) || {};
          const online = (presence.teams && presence.teams[id]) > 0;
          const speaking = room.turn && room.turn.team === id;
          return html`
            <li key=${id} class=${speaking ? 'is-speaking' : ''} data-team=${id}>
              <div class="queue-name">
                <span class=${`dot ${online ? 'dot-on' : ''}`} title=${online ? 'Team lead connected' : 'Team lead not connected'}></span>
                <strong>${teamName(room, id)}</strong>
                ${spoken.includes(id) && html` <span class="badge">spoke</span>`}
                ${speaking && html` <span class="badge badge-now">speaking</span>`}
                ${s.submitted ? html` <span class="badge badge-ok">submitted</span>` : html` <span class="badge badge-pending">no score yet</span>`}
                ${s.revealed && (s.submitted ? html` <${LevelChip} model=${room.model} aspect=${aspect} level=${s.level} />` : html` <span class="badge">revealed: none</span>`)}
              </div>
              <div class="row-actions">
                <button type="button" class="icon-button" aria-label=${`Move ${teamName(room, id)} up`} disabled=${i === 0}
                  onClick=${() => conn.act('set_queue', { aspect, order: move(queue, i, -1) })}>↑</button>
                <button type="button" class="icon-button" aria-label=${`Move ${teamName(room, id)} down`} disabled=${i === queue.length - 1}
                  onClick=${() => conn.act('set_queue', { aspect, order: move(queue, i, 1) })}>↓</button>
                <button type="button" disabled=${room.phase !== 'running'} onClick=${() => conn.act('call_turn', { team: id, seconds: turnSeconds.value })}>Call</button>
                ${s.revealed ? html`<button type="button" class="button-quiet" onClick=${() => conn.act('hide_reveal', { aspect, team: id })}>Hide</button>`
                  : html`<button type="button" disabled=${!running} onClick=${() => conn.act('reveal', { aspect, team: id })}>Reveal</button>`}
              </div>
            </li>`;
        })}
      </ol>
      <div class="row-actions">
        <button type="button" class="button-primary" disabled=${!running || allRevealed} onClick=${() => conn.act('reveal', { aspect })}>Reveal all</button>
        <button type="button" class="button-quiet" disabled=${!anyRevealed} onClick=${() => conn.act('hide_reveal', { aspect })}>Hide all</button>
      </div>
    </section>`;
}

// Estimates runs the room's estimate of the current aspect: on by default
// for every turn or not, open and close it per team or for all; before the
// reveal only how many have estimated, after it each team's histogram, and
// the flagged teams to take first in the Q&A, the largest gap first.
function Estimates({ room }) {
  const aspect = room.aspect;
  const running = room.phase === 'running';
  const queue = aspect && room.queues[aspect] && room.queues[aspect].length ? room.queues[aspect] : room.teams.map((t) => t.id);
  const presence = conn.presence.value;
  const revealed = (id) => !!(room.scores[id] && room.scores[id][aspect] && room.scores[id][aspect].revealed);
  const isOpen = (id) => !!(estimateOf(room, id, aspect) || {}).open;
  const anyOpen = aspect && queue.some(isOpen);
  const anyLeft = aspect && queue.some((id) => !revealed(id) && !isOpen(id));
  const first = aspect ? discussFirst(room, aspect) : [];
  return html`
    <section class="card est-console" aria-labelledby="est-console-h" data-each-turn=${room.estimateEachTurn ? 'on' : 'off'}>
      <h2 id="est-console-h">The room's estimate</h2>
      <label class="check">
        <input type="checkbox" checked=${!!room.estimateEachTurn} disabled=${room.phase === 'closed'}
          onChange=${(e) => conn.act('set_estimate_each_turn', { on: e.target.checked })} />
        Open estimating when a team is called
      </label>
      ${first.length > 0 && html`
        <div class="est-first" role="note" data-first=${first.map((x) => x.team).join(' ')}>
          <p><strong>Discuss first:</strong> ${first.map((x, i) => html`<span key=${x.team}>${i ? ', ' : ''}${teamName(room, x.team)} (gap ${fmtGap(x.gap)})</span>`)}</p>
          <div class="row-actions">
            ${first.map((x) => html`
              <button type="button" key=${x.team} class="button-primary" disabled=${!running || (room.turn && room.turn.team === x.team)}
                onClick=${() => conn.act('call_turn', { team: x.team, seconds: turnSeconds.value })}>Call ${teamName(room, x.team)}</button>`)}
          </div>
        </div>`}
      ${aspect ? html`
        <ul class="est-teams">
          ${queue.map((id) => {
            const est = estimateOf(room, id, aspect);
            const result = roomEstimate(room, id, aspect);
            const name = teamName(room, id);
            return html`
              <li key=${id} data-team=${id}>
                ${result ? html`
                  <p class="est-team-name"><strong>${name}</strong></p>
                  <${EstimateResult} model=${room.model} team=${id} teamLabel=${name} result=${result} />`
                : html`
                  <${EstimateProgress} room=${room} team=${id} aspect=${aspect} presence=${presence} label=${name} />
                  <div class="row-actions">
                    ${est && est.open
                      ? html`<button type="button" aria-label=${`Close estimating for ${name}`} onClick=${() => conn.act('close_estimates', { aspect, team: id })}>Close</button>`
                      : html`<button type="button" aria-label=${`Open estimating for ${name}`} disabled=${!running || revealed(id)}
                          onClick=${() => conn.act('open_estimates', { aspect, team: id })}>${est && est.count ? 'Reopen' : 'Open'}</button>`}
                  </div>`}
              </li>`;
          })}
        </ul>
        <div class="row-actions">
          <button type="button" disabled=${!running || !anyLeft} onClick=${() => conn.act('open_estimates', { aspect })}>Open for every team</button>
          <button type="button" class="button-quiet" disabled=${!anyOpen} onClick=${() => conn.act('close_estimates', { aspect })}>Close all</button>
        </div>
        <p class="muted small">Until a team's reveal you see only how many have estimated it, like everyone else.</p>`
      : html`<p class="muted small">Estimating opens on the aspect under discussion.</p>`}
    </section>`;
}

function Agenda({ room }) {
  return html`
    <section class="card agenda" aria-labelledby="agenda-h">
      <h2 id="agenda-h">Agenda</h2>
      <ol class="agenda-list">
        ${room.agenda.map((id, i) => {
          const a = aspectOf(room.model, id);
          const revealed = room.teams.filter((t) => room.scores[t.id] && room.scores[t.id][id] && room.scores[t.id][id].revealed).length;
          const submitted = room.teams.filter((t) => room.scores[t.id] && room.scores[t.id][id] && room.scores[t.id][id].submitted).length;
          const current = room.aspect === id;
          return html`
            <li key=${id} class=${current ? 'is-current' : ''} data-aspect=${id}>
              <div>
                <strong>${a ? a.name : id}</strong>${current && html` <span class="badge badge-now">now</span>`}
                <div class="muted small">${submitted}/${room.teams.length} submitted · ${revealed} revealed</div>
              </div>
              <div class="row-actions">
                <button type="button" class="icon-button" aria-label=${`Move ${a ? a.name : id} up`} disabled=${i === 0}
                  onClick=${() => conn.act('set_agenda', { order: move(room.agenda, i, -1) })}>↑</button>
                <button type="button" class="icon-button" aria-label=${`Move ${a ? a.name : id} down`} disabled=${i === room.agenda.length - 1}
                  onClick=${() => conn.act('set_agenda', { order: move(room.agenda, i, 1) })}>↓</button>
                ${!current && (room.phase === 'running' || room.phase === 'wrapup') && html`
                  <button type="button" onClick=${() => conn.act('goto_aspect', { aspect: id })}>Discuss</button>`}
              </div>
            </li>`;
        })}
      </ol>
    </section>`;
}

function Notes({ room }) {
  const [aspect, setAspect] = useState(room.aspect || room.agenda[0]);
  useEffect(() => {
    if (room.aspect) setAspect(room.aspect);
  }, [room.aspect]);
  const server = room.notes[aspect] || '';
  const [text, setText] = useState(server);
  const [dirty, setDirty] = useState(false);
  const [state, setState] = useState('');
  const [action, setAction] = useState('');
  const timer = useRef(0);
  const latest = useRef(text);
  useEffect(() => {
    if (!dirty) setText(server);
  }, [server, aspect]);
  useEffect(() => {
    setDirty(false);
    setText(room.notes[aspect] || '');
    return () => clearTimeout(timer.current);
  }, [aspect]);

  const save = async () => {
    clearTimeout(timer.current);
    const v = latest.current;
    setState('Saving…');
    const ok = await conn.act('set_note', { aspect, text: v });
    if (ok) {
      if (latest.current === v) setDirty(false);
      setState('Saved');
    } else {
      setState('Not saved');
    }
  };
  const actions = room.actions[aspect] || [];
  const addAction = async (e) => {
    e.preventDefault();
    const t = action.trim();
    if (!t) return;
    if (await conn.act('add_action', { aspect, text: t })) setAction('');
  };
  return html`
    <section class="card notes" aria-labelledby="notes-h">
      <div class="card-head">
        <h2 id="notes-h">Notes and actions</h2>
        <select id="notes-aspect" aria-label="Aspect of the notes" value=${aspect} onChange=${(e) => setAspect(e.target.value)}>
          ${room.agenda.map((id) => html`<option key=${id} value=${id}>${(aspectOf(room.model, id) || {}).name || id}</option>`)}
        </select>
      </div>
      <label for="note-text">Notes</label>
      <textarea id="note-text" rows="4" maxlength="5000" value=${text} disabled=${room.phase === 'closed'}
        onInput=${(e) => {
          setText(e.target.value);
          latest.current = e.target.value;
          setDirty(true);
          setState('Unsaved…');
          clearTimeout(timer.current);
          timer.current = setTimeout(save, noteDelay);
        }}
        onBlur=${() => { if (dirty) save(); }}></textarea>
      <p class="muted small" role="status">${state}</p>
      <h3>Action items</h3>
      ${actions.length ? html`
        <ul class="action-list">
          ${actions.map((x) => html`
            <li key=${x.id} class=${x.done ? 'is-done' : ''}>
              <label class="check">
                <input type="checkbox" checked=${x.done}
                  onChange=${(e) => conn.act('set_action_done', { aspect, action: x.id, on: e.target.checked })} />
                <span>${x.text}</span>
              </label>
              <button type="button" class="link-button small" aria-label=${`Remove action: ${x.text}`}
                onClick=${() => conn.act('remove_action', { aspect, action: x.id })}>Remove</button>
            </li>`)}
        </ul>` : html`<p class="muted">No action items yet.</p>`}
      <form class="inline-form" onSubmit=${addAction}>
        <label for="action-text" class="visually-hidden">New action item</label>
        <input id="action-text" type="text" maxlength="300" placeholder="New action item" value=${action}
          onInput=${(e) => setAction(e.target.value)} />
        <button type="submit">Add</button>
      </form>
    </section>`;
}

function Presence({ room }) {
  const p = conn.presence.value;
  if (!p) return null;
  const names = p.names || [];
  return html`
    <section class="card presence-card" aria-labelledby="presence-h">
      <h2 id="presence-h">Who is here</h2>
      <p><strong data-attendees=${p.attendees || 0}>${plural(p.attendees || 0, 'attendee')}</strong>${' · '}${plural(p.presenters || 0, 'presenter screen')}</p>
      <ul class="team-presence">
        ${room.teams.map((t) => {
          const n = (p.teams && p.teams[t.id]) || 0;
          return html`<li key=${t.id}><span class=${`dot ${n ? 'dot-on' : ''}`}></span> ${t.name}
            <span class="muted small">${n ? 'team lead here' : 'team lead away'}</span></li>`;
        })}
      </ul>
      ${names.length > 0 && html`
        <details>
          <summary>Attendees by name (${names.length})</summary>
          <ul class="name-list">
            ${names.map((x) => html`
              <li key=${x.participant}>${x.name}
                <button type="button" class="link-button small" aria-label=${`Remove ${x.name} from the room`}
                  onClick=${() => {
                    if (window.confirm(`Remove ${x.name} from the room?`)) conn.act('remove_participant', { participant: x.participant });
                  }}>Remove</button>
              </li>`)}
          </ul>
        </details>`}
    </section>`;
}

// replaceLinks rotates every key. The server answers the new ones and then
// closes every connection made with an old key, this one included, so the
// console moves to its new link.
async function replaceLinks() {
  if (!window.confirm('Replace every facilitator, team and presenter link? The old ones stop working at once; send the new team links to the team leads.')) return;
  const res = await conn.act('rotate_keys', {});
  if (!res || !res.facilitatorKey) return;
  const hash = `#key=${encodeURIComponent(res.facilitatorKey)}&presenter=${encodeURIComponent(res.presenterKey || '')}`;
  location.replace(`/facilitator/${encodeURIComponent(roomId)}${hash}`);
  location.reload();
}

function Links({ room }) {
  const [newTeam, setNewTeam] = useState('');
  const [added, setAdded] = useState(null);
  const [msg, setMsg] = useState('');
  const base = location.origin;
  const add = async (e) => {
    e.preventDefault();
    const name = newTeam.trim();
    if (!name) return;
    const res = await conn.act('add_team', { name });
    if (res) {
      setAdded({ name, link: res.link || `${base}/team/${encodeURIComponent(roomId)}#key=${encodeURIComponent(res.key || '')}` });
      setNewTeam('');
    }
  };
  const doExport = async (fmt) => {
    setMsg('');
    try {
      await exportResults(roomId, fmt, key, room.title);
      setMsg(`Exported ${fmt.toUpperCase()}.`);
    } catch (err) {
      setMsg(`Export failed: ${err.message}`);
    }
  };
  return html`
    <section class="card links" aria-labelledby="links-h">
      <h2 id="links-h">Links and export</h2>
      <${JoinQR} room=${room} />
      <${CopyField} label="Join link" value=${`${base}/j/${room.code}`} id="link-join" />
      <${CopyField} label="Results" value=${`${base}/results/${encodeURIComponent(roomId)}`} id="link-results" />
      ${presenterKey() && html`<${CopyField} label="Presenter screen" value=${`${base}/presenter/${encodeURIComponent(roomId)}#key=${encodeURIComponent(presenterKey())}`} id="link-presenter" secret />`}
      ${room.teams.map((t) => {
        const k = conn.me.value?.keys?.teams?.[t.id];
        return k && html`<${CopyField} key=${t.id} label=${`Team link: ${t.name}`} value=${`${base}/team/${encodeURIComponent(roomId)}#key=${encodeURIComponent(k)}`} id=${`link-team-${t.id}`} secret />`;
      })}
      <div class="export">
        <span>Export results:</span>
        <button type="button" onClick=${() => doExport('csv')}>CSV</button>
        <button type="button" onClick=${() => doExport('json')}>JSON</button>
        <button type="button" onClick=${() => doExport('md')}>Markdown</button>
        <p class="muted small" role="status">${msg}</p>
      </div>
      <div class="replace-links">
        <button type="button" class="button-danger" onClick=${replaceLinks}>Replace all links</button>
        <p class="muted small">If a facilitator, team or presenter link leaked: every key is replaced at once and the old links stop working. Attendees stay.</p>
      </div>
      <form class="inline-form" onSubmit=${add}>
        <label for="new-team">Add a team</label>
        <input id="new-team" type="text" maxlength="60" value=${newTeam} onInput=${(e) => setNewTeam(e.target.value)} />
        <button type="submit" disabled=${room.phase === 'closed'}>Add team</button>
      </form>
      ${added && html`<${CopyField} label=${`Link for ${added.name}`} value=${added.link} id="link-new-team" secret />`}
    </section>`;
}

function Console() {
  const room = conn.room.value;
  const me = conn.me.value;
  if (!key) {
    return html`<main class="narrow"><h1>No key in this link</h1><p>The facilitator link ends with <code>#key=…</code>. Use the link you got when you created the room.</p></main>`;
  }
  if (!room || !me) {
    return html`
      <${TopBar} conn=${conn} title="" role="Facilitator" />
      <${StoppedBanner} conn=${conn} />
      <main><p class="muted loading">Loading the console…</p></main>`;
  }
  return html`
    <${TopBar} conn=${conn} title=${room.title} role="Facilitator">
      <${LevelToggle} /><${MuteToggle} />
    </${TopBar}>
    <${StoppedBanner} conn=${conn} />
    <${Notice} conn=${conn} />
    <${LiveRegion} conn=${conn} />
    <main class="layout-3">
      <div class="col-a">
        <${PhaseBar} room=${room} />
        <section class="card now" aria-labelledby="now-h">
          <h2 id="now-h" class="visually-hidden">Now</h2>
          ${room.aspect ? html`<${AspectTitle} room=${room} aspectId=${room.aspect} level="3" />`
            : html`<p class="muted">Start the workshop to open the first aspect.</p>`}
          <${TurnBox} conn=${conn} room=${room} />
          <${TimerControls} room=${room} />
        </section>
        <${Queue} room=${room} />
        <${Estimates} room=${room} />
        <${Agenda} room=${room} />
      </div>
      <div class="col-b">
        <${QA} conn=${conn} room=${room} me=${me} moderator />
        <${Hands} conn=${conn} room=${room} me=${me} moderator />
      </div>
      <div class="col-c">
        <section class="card"><${Heatmap} room=${room} current=${room.aspect} /></section>
        <${Notes} room=${room} />
        <${Presence} room=${room} />
        <${Links} room=${room} />
      </div>
    </main>`;
}

conn.room.subscribe((r) => {
  if (r) document.title = `${r.title} · Facilitator`;
});

mount(html`<${Console} />`);
conn.start();
