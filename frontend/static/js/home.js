// home.js: the home page (/). Join a workshop by its short code, or create
// a room (title, the built-in PEMM or a custom model pasted as JSON, team
// names) and get its links: facilitator, presenter, one per team, the join
// link with its QR code, and the results.

import { useState } from '../vendor/hooks.module.js';
import { html, mount, api, saveBlob } from './lib.js';
import { CopyField } from './components.js';

const exampleModel = {
  name: 'Delivery maturity',
  levels: [
    { name: 'Starting', description: 'Practices depend on individuals.' },
    { name: 'Repeatable', description: 'Practices are shared and written down.' },
    { name: 'Measured', description: 'Practices are measured and improved.' },
  ],
  aspects: [
    {
      id: 'ci', name: 'Continuous integration', question: 'How is code integrated and tested?',
      cells: [
        { label: 'Manual', description: 'Builds and tests run by hand before a release.' },
        { label: 'Automated', description: 'Every change is built and tested automatically.' },
        { label: 'Fast feedback', description: 'Results arrive in minutes and failures are fixed first.' },
      ],
    },
    {
      id: 'deploy', name: 'Deployment', question: 'How do changes reach production?',
      cells: [
        { label: 'Ticketed', description: 'Deployments are requested and done by another team.' },
        { label: 'Scripted', description: 'A documented script deploys with a few manual steps.' },
        { label: 'Continuous', description: 'Changes deploy on merge with automatic rollback.' },
      ],
    },
  ],
};

// jsonError turns a JSON.parse error into "line L, column C: message".
function jsonError(text, err) {
  const m = /position (\d+)/.exec(err.message);
  if (!m) return err.message.replace(/^JSON\.parse: /, '');
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return `line ${line}, column ${col}: ${err.message.replace(/ in JSON at position \d+.*$/, '').replace(/^JSON\.parse: /, '')}`;
}

// checkModel does the server's structural checks early, naming the field
// the way the server does. The server checks again and has the last word.
export function checkModel(m) {
  if (!m || typeof m !== 'object' || Array.isArray(m)) return 'the model must be a JSON object';
  if (typeof m.name !== 'string' || !m.name.trim()) return 'name: required';
  if (!Array.isArray(m.levels)) return 'levels: required, a list of {"name", "description"}';
  if (m.levels.length < 2 || m.levels.length > 10) return `levels: a model has 2 to 10 levels, got ${m.levels.length}`;
  for (let i = 0; i < m.levels.length; i++) {
    const l = m.levels[i];
    if (!l || typeof l.name !== 'string' || !l.name.trim()) return `levels[${i}].name: required`;
  }
  if (!Array.isArray(m.aspects)) return 'aspects: required, a list of {"name", "question", "cells"}';
  if (m.aspects.length < 1 || m.aspects.length > 12) return `aspects: a model has 1 to 12 aspects, got ${m.aspects.length}`;
  for (let i = 0; i < m.aspects.length; i++) {
    const a = m.aspects[i];
    if (!a || typeof a.name !== 'string' || !a.name.trim()) return `aspects[${i}].name: required`;
    if (!Array.isArray(a.cells)) return `aspects[${i}].cells: required, one {"label", "description"} per level`;
    if (a.cells.length !== m.levels.length) {
      return `aspects[${i}].cells: want one cell per level (${m.levels.length}), got ${a.cells.length}`;
    }
    for (let j = 0; j < a.cells.length; j++) {
      const c = a.cells[j];
      if (!c || typeof c.label !== 'string' || !c.label.trim()) return `aspects[${i}].cells[${j}].label: required`;
    }
  }
  return '';
}

function JoinByCode() {
  const path = location.pathname;
  const fromLink = path.startsWith('/j/') ? decodeURIComponent(path.slice(3)) : '';
  const q = new URLSearchParams(location.search);
  const [code, setCode] = useState(fromLink || q.get('code') || '');
  const [err, setErr] = useState(fromLink || q.get('error') ? 'No workshop with this code. Check the code and try again.' : '');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const c = code.replace(/[\s-]/g, '').toUpperCase();
    if (!c) {
      setErr('Enter the code shown on the screen.');
      return;
    }
    setBusy(true);
    setErr('');
    try {
      const r = await api('GET', `/api/join/${encodeURIComponent(c)}`);
      location.assign(`/room/${encodeURIComponent(r.id)}`);
    } catch (e2) {
      if (e2.status === 404) setErr('No workshop with this code. Check the code and try again.');
      else if (e2.status === 429) setErr('Too many tries. Wait a moment, then try again.');
      else setErr(e2.message);
      setBusy(false);
    }
  };
  return html`
    <section class="card join-card" aria-labelledby="join-h">
      <h2 id="join-h">Join a workshop</h2>
      <form onSubmit=${submit}>
        <label for="join-code">Code</label>
        <div class="inline-form">
          <input id="join-code" type="text" inputmode="text" autocapitalize="characters" autocomplete="off"
            spellcheck="false" placeholder="K7PQ-M3TX" maxlength="20" value=${code}
            onInput=${(e) => setCode(e.target.value)} aria-describedby="join-code-err" />
          <button type="submit" disabled=${busy}>Join</button>
        </div>
        <p id="join-code-err" class="form-error" role="alert">${err}</p>
      </form>
    </section>`;
}

function CreateForm({ onCreated }) {
  const [title, setTitle] = useState('');
  const [teams, setTeams] = useState('');
  const [kind, setKind] = useState('pemm');
  const [modelText, setModelText] = useState('');
  const [err, setErr] = useState('');
  const [modelErr, setModelErr] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e) => {
    e.preventDefault();
    setErr('');
    setModelErr('');
    const names = teams.split('\n').map((s) => s.trim()).filter(Boolean);
    if (!title.trim()) {
      setErr('title: required');
      return;
    }
    if (!names.length) {
      setErr('teams: name at least one team, one per line');
      return;
    }
    let model = 'pemm';
    if (kind === 'custom') {
      try {
        model = JSON.parse(modelText);
      } catch (e2) {
        setModelErr(`The model is not valid JSON: ${jsonError(modelText, e2)}`);
        return;
      }
      const problem = checkModel(model);
      if (problem) {
        setModelErr(`The model has a problem: ${problem}`);
        return;
      }
    }
    setBusy(true);
    try {
      const res = await api('POST', '/api/rooms', { title: title.trim(), teams: names, model });
      onCreated(res);
    } catch (e2) {
      const msg = e2.message || 'The room could not be created.';
      if (kind === 'custom' && /^(model|name|levels|aspects)/.test(msg)) setModelErr(`The model has a problem: ${msg}`);
      else setErr(msg);
    } finally {
      setBusy(false);
    }
  };

  return html`
    <section class="card create-card" aria-labelledby="create-h">
      <h2 id="create-h">Create a room</h2>
      <form onSubmit=${submit} novalidate>
        <label for="room-title">Title</label>
        <input id="room-title" type="text" maxlength="120" value=${title} placeholder="Platform maturity Q3"
          onInput=${(e) => setTitle(e.target.value)} required />

        <label for="room-teams">Teams <span class="muted small">(one per line)</span></label>
        <textarea id="room-teams" rows="5" value=${teams} placeholder=${'Payments\nSearch\nIdentity'}
          onInput=${(e) => setTeams(e.target.value)}></textarea>

        <fieldset class="model-choice">
          <legend>Maturity model</legend>
          <label class="check"><input type="radio" name="model" value="pemm" checked=${kind === 'pemm'}
            onChange=${() => setKind('pemm')} /> CNCF Platform Engineering Maturity Model (5 aspects, 4 levels)</label>
          <label class="check"><input type="radio" name="model" value="custom" checked=${kind === 'custom'}
            onChange=${() => setKind('custom')} /> My own model (JSON)</label>
        </fieldset>
        ${kind === 'custom' && html`
          <label for="room-model">Model as JSON</label>
          <textarea id="room-model" class="mono" rows="12" spellcheck="false" value=${modelText}
            aria-describedby="room-model-help room-model-err"
            onInput=${(e) => setModelText(e.target.value)}></textarea>
          <p id="room-model-help" class="muted small">2 to 10 levels, 1 to 12 aspects, one cell per level in every aspect;
            labels up to 60 characters, descriptions up to 300.
            <button type="button" class="link-button" onClick=${() => setModelText(JSON.stringify(exampleModel, null, 2))}>Insert an example</button></p>
          <p id="room-model-err" class="form-error" role="alert">${modelErr}</p>`}
        <p class="form-error" role="alert" id="create-err">${err}</p>
        <button type="submit" class="button-primary" disabled=${busy}>${busy ? 'Creating…' : 'Create room'}</button>
      </form>
    </section>`;
}

// facilitatorLink adds the presenter key to the facilitator link's
// fragment, so the console can open the presenter screen. Fragments never
// reach the server.
function facilitatorLink(res) {
  const link = res.links.facilitator;
  return res.presenterKey ? `${link}&presenter=${encodeURIComponent(res.presenterKey)}` : link;
}

function Created({ res, onAgain }) {
  const code = res.code || '';
  const shown = code.length === 8 ? code.slice(0, 4) + '-' + code.slice(4) : code;
  const fac = facilitatorLink(res);
  const saveLinks = () => {
    const lines = [
      res.title, '',
      `Facilitator (keep private): ${fac}`,
      `Presenter screen: ${res.links.presenter}`,
      ...res.teams.map((t) => `Team ${t.name} (for its team lead): ${t.link}`),
      `Join link: ${res.links.join}  (code ${shown})`,
      `Results: ${res.links.results}`, '',
    ];
    saveBlob(new Blob([lines.join('\n')], { type: 'text/plain' }), 'workshop-links.txt');
  };
  return html`
    <section class="card created" aria-labelledby="created-h">
      <h2 id="created-h" tabindex="-1">Room created: ${res.title}</h2>
      <p class="banner">Each link is a key: whoever has it acts in that role. Send team links only to each team's lead,
        and keep the facilitator link to yourself. Save them now.</p>
      <div class="created-grid">
        <div>
          <h3>Facilitator</h3>
          <${CopyField} label="Facilitator console" value=${fac} id="link-facilitator" secret />
          <${CopyField} label="Presenter screen" value=${res.links.presenter} id="link-presenter" secret />
          <h3>Team leads</h3>
          <ul class="link-list">
            ${res.teams.map((t) => html`<li key=${t.id}><${CopyField} label=${t.name} value=${t.link} id=${`link-team-${t.id}`} secret /></li>`)}
          </ul>
          <h3>Everyone</h3>
          <${CopyField} label="Join link" value=${res.links.join} id="link-join" />
          <${CopyField} label="Results" value=${res.links.results} id="link-results" />
        </div>
        <figure class="join-qr">
          <img src=${res.qr} alt=${`QR code to join: ${res.links.join}`} width="220" height="220" />
          <figcaption>
            <span class="join-label">Join code</span>
            <span class="join-code" data-code=${code}>${shown}</span>
          </figcaption>
        </figure>
      </div>
      <div class="row-actions">
        <a class="button button-primary" href=${fac}>Open the facilitator console</a>
        <button type="button" onClick=${saveLinks}>Save links as a text file</button>
        <button type="button" class="button-quiet" onClick=${onAgain}>Create another room</button>
      </div>
    </section>`;
}

function Home() {
  const [created, setCreated] = useState(null);
  return html`
    <header class="topbar">
      <div class="topbar-title">
        <span class="role-tag">Maturity leveling workshop</span>
        <h1>Where is our platform, and what is the next step?</h1>
      </div>
    </header>
    <main class="home">
      ${created ? html`<${Created} res=${created} onAgain=${() => setCreated(null)} />` : html`
        <div class="home-grid">
          <${JoinByCode} />
          <${CreateForm} onCreated=${(r) => {
            setCreated(r);
            setTimeout(() => {
              const h = document.getElementById('created-h');
              if (h) h.focus();
            }, 0);
          }} />
        </div>
        <section class="card about">
          <h2>How it works</h2>
          <ol>
            <li>The facilitator creates a room and sends each team lead their link.</li>
            <li>Each team records a level and a rationale per aspect. Nobody sees them before the reveal.</li>
            <li>In the workshop, teams speak in turn, scores are revealed, and everyone asks and upvotes questions.</li>
            <li>The results, notes and action items stay readable and can be exported.</li>
          </ol>
        </section>`}
    </main>`;
}

mount(html`<${Home} />`);
