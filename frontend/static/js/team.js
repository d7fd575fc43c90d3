// team.js: the team lead's page (/team/{id}#key=KEY). Per aspect, pick a
// level (each with its name and description) and write a rationale; the
// draft saves itself a moment after each change (save_draft), submit makes
// it the team's score, and it stays editable until the facilitator reveals
// it. The page also follows the workshop: who speaks, the room's estimate
// (the lead estimates the other teams; of its own team it sees only how
// many have estimated until the reveal), what was revealed.

import { useState, useEffect, useRef } from '../vendor/hooks.module.js';
import { html, mount, roomIdFromPath, hashParams, aspectOf, fmtTime } from './lib.js';
import { Conn } from './conn.js';
import { chime, armSound } from './sound.js';
import {
  TopBar, StoppedBanner, LevelToggle, MuteToggle, Notice, LiveRegion, AspectTitle,
  TurnBox, Reveals, Heatmap, QA, Hands, LevelChip,
} from './components.js';
import { EstimatePickers } from './estimate.js';

const roomId = roomIdFromPath();
const key = hashParams().get('key') || '';
const draftDelay = 800; // ms after the last change before a draft is saved

const conn = new Conn({
  roomId,
  identity: () => (key ? { key } : null),
  onTurnEnd: () => chime(),
});
armSound();

// statusOf describes where a team's score for an aspect stands.
function statusOf(score) {
  if (!score) return { key: 'empty', text: 'Not started' };
  if (score.revealed) return { key: 'revealed', text: 'Revealed' };
  if (score.submitted) {
    const changed = (score.draftLevel || 0) !== (score.level || 0) || (score.draftRationale || '') !== (score.rationale || '');
    return changed ? { key: 'changed', text: 'Submitted, with unsent changes' } : { key: 'submitted', text: 'Submitted' };
  }
  if (score.draftLevel || score.draftRationale) return { key: 'draft', text: 'Draft' };
  return { key: 'empty', text: 'Not started' };
}

function AspectNav({ room, team, selected, onSelect }) {
  return html`
    <nav class="aspect-nav" aria-label="Aspects">
      <ol>
        ${room.agenda.map((id) => {
          const a = aspectOf(room.model, id);
          const st = statusOf(room.scores[team] && room.scores[team][id]);
          return html`
            <li key=${id}>
              <button type="button" class=${`aspect-tab st-${st.key}`} aria-current=${selected === id ? 'true' : undefined}
                onClick=${() => onSelect(id)} data-aspect=${id}>
                <span class="aspect-tab-name">${a ? a.name : id}${room.aspect === id ? html` <span class="badge badge-now">now</span>` : ''}</span>
                <span class="aspect-tab-status">${st.text}</span>
              </button>
            </li>`;
        })}
      </ol>
    </nav>`;
}

// Editor is the level picker and rationale for one aspect.
function Editor({ room, team, aspectId }) {
  const aspect = aspectOf(room.model, aspectId);
  const score = (room.scores[team] && room.scores[team][aspectId]) || {};
  const locked = !!score.revealed || room.phase === 'closed';
  const serverLevel = score.draftLevel || score.level || 0;
  const serverText = score.draftRationale !== undefined && score.draftRationale !== '' ? score.draftRationale : (score.rationale || '');

  const [level, setLevel] = useState(serverLevel);
  const [text, setText] = useState(serverText);
  const [dirty, setDirty] = useState(false);
  const [saveState, setSaveState] = useState('');
  const [submitMsg, setSubmitMsg] = useState('');
  const [busy, setBusy] = useState(false);
  const timer = useRef(0);
  const latest = useRef({ level, text });
  latest.current = { level, text };
  const unsaved = useRef(false);

  // A new aspect, or a change from elsewhere (another tab, a reconnect):
  // take the server's draft unless the user is in the middle of editing.
  useEffect(() => {
    if (!dirty) {
      setLevel(serverLevel);
      setText(serverText);
    }
  }, [aspectId, serverLevel, serverText]);
  // Leaving the aspect (or the page) with a draft not yet saved: save it
  // now rather than lose it.
  useEffect(() => {
    setDirty(false);
    setSaveState('');
    setSubmitMsg('');
    const flush = () => {
      if (!unsaved.current) return;
      clearTimeout(timer.current);
      unsaved.current = false;
      const v = latest.current;
      conn.send('save_draft', { aspect: aspectId, level: v.level, rationale: v.text }).catch(() => {});
    };
    window.addEventListener('pagehide', flush);
    return () => {
      window.removeEventListener('pagehide', flush);
      flush();
    };
  }, [aspectId]);

  const save = async () => {
    clearTimeout(timer.current);
    unsaved.current = false;
    const v = latest.current;
    setSaveState('saving');
    try {
      await conn.send('save_draft', { aspect: aspectId, level: v.level, rationale: v.text });
      // Only clean if nothing changed while the save was on its way.
      if (latest.current.level === v.level && latest.current.text === v.text) setDirty(false);
      setSaveState('saved:' + new Date().toISOString());
    } catch (err) {
      setSaveState('error:' + err.message);
    }
  };
  const changed = (lv, tx) => {
    latest.current = { level: lv, text: tx };
    unsaved.current = true;
    setDirty(true);
    setSaveState('pending');
    clearTimeout(timer.current);
    timer.current = setTimeout(save, draftDelay);
  };
  const submit = async (e) => {
    e.preventDefault();
    if (!level) {
      setSubmitMsg('Choose a level first.');
      return;
    }
    clearTimeout(timer.current);
    unsaved.current = false;
    setBusy(true);
    setSubmitMsg('');
    try {
      await conn.send('submit', { aspect: aspectId, level, rationale: text });
      setDirty(false);
      setSaveState('');
      setSubmitMsg('Submitted. You can still change it until it is revealed.');
    } catch (err) {
      setSubmitMsg(err.message);
    } finally {
      setBusy(false);
    }
  };

  if (!aspect) return null;
  const st = statusOf(score);
  let saveText = '';
  if (saveState === 'pending') saveText = 'Unsaved changes…';
  else if (saveState === 'saving') saveText = 'Saving draft…';
  else if (saveState.startsWith('saved:')) saveText = `Draft saved at ${fmtTime(saveState.slice(6))}`;
  else if (saveState.startsWith('error:')) saveText = `Draft not saved: ${saveState.slice(6)}`;

  return html`
    <form class="card editor" onSubmit=${submit} data-aspect=${aspectId}>
      <${AspectTitle} room=${room} aspectId=${aspectId} level="2" />
      <p class=${`status-line st-${st.key}`} data-status=${st.key}>
        <strong>${st.text}</strong>
        ${score.submitted && score.submittedAt && html` · submitted at ${fmtTime(score.submittedAt)}`}
        ${score.submitted && !score.revealed && html` · submitted level: <${LevelChip} model=${room.model} aspect=${aspectId} level=${score.level} />`}
      </p>
      ${locked && html`<p class="banner">${score.revealed ? 'This score has been revealed and can no longer change.' : 'The room is closed.'}</p>`}
      <fieldset class="levels" disabled=${locked}>
        <legend>Your team's level</legend>
        ${aspect.cells.map((c, i) => {
          const n = i + 1;
          const lv = room.model.levels[i] || {};
          const id = `lv-${aspectId}-${n}`;
          return html`
            <div class=${`level-option ${level === n ? 'is-chosen' : ''}`} key=${n}>
              <input type="radio" name=${`level-${aspectId}`} id=${id} value=${n} checked=${level === n}
                onChange=${() => { setLevel(n); changed(n, text); }} />
              <label for=${id}>
                <span class="level-head"><span class="level-num">${n}</span> ${lv.name}${c.label ? html` — <strong>${c.label}</strong>` : ''}</span>
                ${(c.description || lv.description) && html`<span class="level-desc">${c.description || lv.description}</span>`}
              </label>
            </div>`;
        })}
      </fieldset>
      <label for=${`why-${aspectId}`}>Rationale</label>
      <textarea id=${`why-${aspectId}`} rows="5" maxlength="2000" value=${text} disabled=${locked}
        placeholder="Why this level? What would it take to reach the next one?"
        onInput=${(e) => { setText(e.target.value); changed(level, e.target.value); }}></textarea>
      <div class="editor-row">
        <span class="save-state muted small" role="status" data-save=${saveState.split(':')[0]}>${saveText}</span>
        <span class="muted small">${2000 - text.length} characters left</span>
      </div>
      ${!locked && html`
        <div class="editor-row">
          <button type="submit" disabled=${busy || !level}>${score.submitted ? 'Submit changes' : 'Submit'}</button>
          ${saveState === 'pending' && html`<button type="button" class="button-quiet" onClick=${save}>Save draft now</button>`}
        </div>`}
      <p class="form-msg" role="status">${locked ? '' : submitMsg}</p>
    </form>`;
}

function TeamView() {
  const room = conn.room.value;
  const me = conn.me.value;
  const [selected, setSelected] = useState('');
  if (!key) {
    return html`<main class="narrow"><h1>No key in this link</h1><p>A team link ends with <code>#key=…</code>. Ask the facilitator for your team's link.</p></main>`;
  }
  if (!room || !me) {
    return html`
      <${TopBar} conn=${conn} title="" role="Team lead" />
      <${StoppedBanner} conn=${conn} />
      <main><p class="muted loading">Loading your team's page…</p></main>`;
  }
  const team = me.team;
  const teamObj = room.teams.find((t) => t.id === team);
  const current = selected || (room.aspect && room.agenda.includes(room.aspect) ? room.aspect : room.agenda[0]);
  const myTurn = room.turn && room.turn.team === team;
  return html`
    <${TopBar} conn=${conn} title=${room.title} role=${`Team lead · ${teamObj ? teamObj.name : team}`}>
      <${LevelToggle} /><${MuteToggle} />
    </${TopBar}>
    <${StoppedBanner} conn=${conn} />
    <${Notice} conn=${conn} />
    <${LiveRegion} conn=${conn} />
    ${myTurn && html`<div class="banner banner-turn" role="status">It is your team's turn to speak.</div>`}
    <main class="layout-2">
      <div class="col-main">
        <${EstimatePickers} conn=${conn} room=${room} me=${me} />
        <p class="muted">Record a level and a rationale for each aspect. Nobody else sees them before the facilitator reveals them.</p>
        <${AspectNav} room=${room} team=${team} selected=${current} onSelect=${setSelected} />
        <${Editor} key=${current} room=${room} team=${team} aspectId=${current} />
      </div>
      <div class="col-side">
        ${room.aspect && html`
          <section class="card now">
            <${AspectTitle} room=${room} aspectId=${room.aspect} level="2" />
            <${TurnBox} conn=${conn} room=${room} />
          </section>
          <section class="card">
            <h2>Revealed for this aspect</h2>
            <${Reveals} conn=${conn} room=${room} aspect=${room.aspect} />
          </section>`}
        <section class="card"><${Heatmap} room=${room} current=${room.aspect} conn=${conn} mine=${team} /></section>
        <${QA} conn=${conn} room=${room} me=${me} />
        <${Hands} conn=${conn} room=${room} me=${me} />
      </div>
    </main>`;
}

conn.room.subscribe((r) => {
  if (r) document.title = `${r.title} · Team`;
});

mount(html`<${TeamView} />`);
conn.start();
