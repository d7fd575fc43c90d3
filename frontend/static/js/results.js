// results.js: the results page (/results/{id}, with #key=FACILITATOR_KEY
// for the export buttons). The teams x aspects heatmap of revealed scores
// with level names, the spread per aspect, each team's rationale, notes and
// action items; a calibration layer (the room's median estimate and the
// gap per cell) and per aspect the room's estimates and a summary. It prints cleanly (see @media print in app.css).

import { useState, useEffect } from '../vendor/hooks.module.js';
import {
  html, mount, api, roomIdFromPath, hashParams, aspectOf, levelInfo, levelColors, exportResults, prefs,
} from './lib.js';
import { LevelToggle, LevelExplain } from './components.js';
import { EstimateResult, fmtGap, fmtNum } from './estimate.js';

const roomId = roomIdFromPath();
const key = hashParams().get('key') || '';
const refreshEvery = 15000; // ms between refreshes while the page is visible

function Chip({ model, aspect, level }) {
  const info = levelInfo(model, aspect, level);
  if (!info) return null;
  const { bg, fg } = levelColors(level, model.levels.length);
  return html`
    <span class="chip chip-result" data-level=${level} style=${{ backgroundColor: bg, color: fg }}>
      ${prefs.names.value ? html`${info.name}` : html`<span class="chip-num">${level}</span> ${info.name}`}
    </span>`;
}

// Calibration is one cell's calibration layer: the room's median and the
// gap, flagged at a level or more.
function Calibration({ e }) {
  if (!e || !e.count) return html`<span class="cal">not estimated</span>`;
  const gap = typeof e.gap === 'number' ? ` · gap ${fmtGap(e.gap)}` : '';
  return html`<span class=${`cal ${e.flagged ? 'cal-flagged' : ''}`} data-median=${e.median} data-gap=${e.gap}>
    ${e.flagged && html`<span aria-hidden="true">⚑ </span><span class="visually-hidden">flagged: </span>`}room ${fmtNum(e.median)}${gap}</span>`;
}

function hasCalibration(res) {
  return res.aspects.some((a) => a.calibration);
}

function Matrix({ res, model, layer }) {
  return html`
    <h2 class="heatmap-title" aria-hidden="true">Revealed scores, teams by aspect${layer ? ', with the room\'s estimate' : ''}</h2>
    <div class="heatmap-wrap" role="region" aria-label="Results matrix" tabindex="0" data-layer=${layer ? 'calibration' : 'scores'}>
      <table class="heatmap heatmap-results">
        <caption class="visually-hidden">Revealed scores, teams by aspect</caption>
        <thead>
          <tr><th scope="col">Team</th>${res.aspects.map((a) => html`<th scope="col" key=${a.id}>${a.name}</th>`)}</tr>
        </thead>
        <tbody>
          ${res.teams.map((t, i) => html`
            <tr key=${t.id}>
              <th scope="row">${t.name}</th>
              ${res.aspects.map((a) => {
                const sc = a.scores[i] || {};
                let body;
                if (sc.status === 'revealed') {
                  body = html`<${Chip} model=${model} aspect=${a.id} level=${sc.level} />${layer && html`<${Calibration} e=${sc.estimate} />`}`;
                }
                else if (sc.status === 'not_submitted') body = html`<span class="cell-none">not submitted</span>`;
                else body = html`<span class="cell-hidden" title="Not revealed"><span aria-hidden="true">·</span><span class="visually-hidden">not revealed</span></span>`;
                return html`<td key=${a.id} data-team=${t.id} data-aspect=${a.id}>${body}</td>`;
              })}
            </tr>`)}
        </tbody>
        <tfoot>
          <tr><th scope="row">Spread</th>${res.aspects.map((a) => html`<td key=${a.id} class="spread" data-spread=${a.spread}>${hasScores(a) ? a.spread : '–'}</td>`)}</tr>
          <tr><th scope="row">Mean</th>${res.aspects.map((a) => html`<td key=${a.id} class="spread">${hasScores(a) ? a.mean.toFixed(1) : '–'}</td>`)}</tr>
          ${layer && html`
            <tr><th scope="row">Mean gap</th>${res.aspects.map((a) => html`<td key=${a.id} class="spread" data-mean-gap=${a.calibration ? a.calibration.meanAbsGap : ''}>${a.calibration ? fmtNum(a.calibration.meanAbsGap) : '–'}</td>`)}</tr>`}
        </tfoot>
      </table>
    </div>`;
}

function hasScores(a) {
  return a.scores.some((s) => s.status === 'revealed');
}

// CalibrationSummary says in a line how the teams' own levels compare with
// the room's estimates of them on an aspect, and whom to discuss first.
function CalibrationSummary({ c, name }) {
  if (!c) return null;
  const parts = [`The room estimated ${c.estimated} ${c.estimated === 1 ? 'team' : 'teams'}; mean gap ${fmtNum(c.meanAbsGap)} ${c.meanAbsGap === 1 ? 'level' : 'levels'}.`];
  if (c.higher) parts.push(`${c.higher} ${c.higher === 1 ? 'team sees itself' : 'teams see themselves'} a level or more higher than the room does.`);
  if (c.lower) parts.push(`${c.lower} ${c.lower === 1 ? 'team sees itself' : 'teams see themselves'} a level or more lower.`);
  if (!c.higher && !c.lower) parts.push('No team is a level or more apart from the room.');
  return html`
    <div class="calibration" data-calibration=${c.estimated}>
      <p>${parts.join(' ')}</p>
      ${c.qaFirst && c.qaFirst.length > 0 && html`<p><strong>Discuss first:</strong> ${c.qaFirst.map(name).join(', ')}</p>`}
    </div>`;
}

function AspectDetail({ res, model, a }) {
  const asp = aspectOf(model, a.id);
  const revealed = a.scores.filter((s) => s.status === 'revealed');
  const name = (id) => (res.teams.find((t) => t.id === id) || {}).name || id;
  return html`
    <section class="card result-aspect" data-aspect=${a.id}>
      <h2>${a.name}</h2>
      ${asp && asp.question && html`<p class="aspect-question">${asp.question}</p>`}
      <p class="muted">${hasScores(a) ? `Levels ${a.min} to ${a.max}, spread ${a.spread}.` : 'No score revealed.'}</p>
      <${CalibrationSummary} c=${a.calibration} name=${name} />
      ${revealed.length > 0 && html`
        <ul class="result-teams">
          ${revealed.map((s) => html`
            <li key=${s.team}>
              <div class="result-team-head"><strong>${name(s.team)}</strong> <${Chip} model=${model} aspect=${a.id} level=${s.level} /></div>
              <${LevelExplain} model=${model} aspect=${a.id} level=${s.level} />
              ${s.rationale && html`<blockquote class="rationale">${s.rationale}</blockquote>`}
              <${EstimateResult} model=${model} team=${s.team} teamLabel=${name(s.team)} result=${s.estimate} />
            </li>`)}
        </ul>`}
      ${a.note && html`<h3>Notes</h3><p class="note-text">${a.note}</p>`}
      ${a.actions && a.actions.length > 0 && html`
        <h3>Action items</h3>
        <ul class="result-actions">
          ${a.actions.map((x) => html`
            <li key=${x.id} class=${x.done ? 'is-done' : ''}>
              <span class="box" aria-hidden="true">${x.done ? '☑' : '☐'}</span>
              <span class="visually-hidden">${x.done ? 'Done: ' : 'Open: '}</span>
              <span>${x.text}</span>
            </li>`)}
        </ul>`}
    </section>`;
}

function Exports({ title }) {
  const [msg, setMsg] = useState('');
  if (!key) return null;
  const go = async (fmt) => {
    setMsg('');
    try {
      await exportResults(roomId, fmt, key, title);
      setMsg(`Exported ${fmt.toUpperCase()}.`);
    } catch (err) {
      setMsg(`Export failed: ${err.message}`);
    }
  };
  return html`
    <div class="export no-print">
      <span>Export:</span>
      <button type="button" onClick=${() => go('csv')}>CSV</button>
      <button type="button" onClick=${() => go('json')}>JSON</button>
      <button type="button" onClick=${() => go('md')}>Markdown</button>
      <span class="muted small" role="status">${msg}</span>
    </div>`;
}

function Results() {
  const [res, setRes] = useState(null);
  const [room, setRoom] = useState(null);
  const [err, setErr] = useState('');
  const [updated, setUpdated] = useState(null);
  const [layer, setLayer] = useState(true);
  const load = async () => {
    try {
      const [r, v] = await Promise.all([
        api('GET', `/api/rooms/${encodeURIComponent(roomId)}/results`),
        api('GET', `/api/rooms/${encodeURIComponent(roomId)}`),
      ]);
      setRes(r);
      setRoom(v);
      setErr('');
      setUpdated(new Date());
      document.title = `${r.title} · Results`;
    } catch (e) {
      setErr(e.status === 404 ? 'This room does not exist.' : e.message);
    }
  };
  useEffect(() => {
    load();
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') load();
    }, refreshEvery);
    return () => clearInterval(t);
  }, []);
  if (!res || !room) {
    return html`<main class="narrow">${err ? html`<h1>Results</h1><p class="banner banner-error" role="alert">${err}</p>` : html`<p class="muted loading">Loading the results…</p>`}</main>`;
  }
  const model = room.model;
  return html`
    <header class="topbar">
      <div class="topbar-title">
        <span class="role-tag">Results</span>
        <h1>${res.title}</h1>
      </div>
      <div class="topbar-tools no-print">
        <${LevelToggle} />
        ${hasCalibration(res) && html`
          <div class="seg" role="group" aria-label="Heatmap layer">
            <button type="button" aria-pressed=${!layer} onClick=${() => setLayer(false)}>Scores</button>
            <button type="button" aria-pressed=${layer} onClick=${() => setLayer(true)}>With the room's estimate</button>
          </div>`}
        <button type="button" onClick=${() => load()}>Refresh</button>
        <button type="button" onClick=${() => window.print()}>Print</button>
      </div>
    </header>
    <main class="results">
      <p class="muted">${res.model} · ${res.teams.length} teams · ${res.aspects.length} aspects
        ${room.phase !== 'closed' && updated && html` · updated ${updated.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })}`}</p>
      ${err && html`<p class="banner banner-error no-print" role="alert">${err}</p>`}
      <${Exports} title=${res.title} />
      <section class="card"><${Matrix} res=${res} model=${model} layer=${layer && hasCalibration(res)} /></section>
      <p class="legend">
        ${model.levels.map((l, i) => html`<span key=${i} class="legend-item"><${Chip} model=${model} aspect="" level=${i + 1} /> ${l.description || ''}</span>`)}
      </p>
      ${res.aspects.map((a) => html`<${AspectDetail} key=${a.id} res=${res} model=${model} a=${a} />`)}
    </main>`;
}

mount(html`<${Results} />`);
