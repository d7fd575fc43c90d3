// components.js: the pieces the pages share: the connection indicator,
// preference toggles, countdown, level chips, reveal cards, the heatmap,
// Q&A, raised hands and presence.

import { useState, useEffect } from '../vendor/hooks.module.js';
import {
  html, prefs, copyText, fmtClock, fmtTime, plural, aspectOf, teamName,
  levelInfo, levelText, levelColors,
} from './lib.js';
import { sortQuestions } from './state.js';
import { EstimateResult, roomEstimate } from './estimate.js';

// Icon is a small inline SVG (no icon font, no emoji font needed).
const iconPaths = {
  bell: 'M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6v-5a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1z',
  users: 'M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8zm7.5 0a3 3 0 1 0 0-6 3 3 0 0 0 0 6zM9 13c-4 0-7 2-7 4.5V20h14v-2.5C16 15 13 13 9 13zm7.5 0c-.55 0-1.08.05-1.58.14C16.2 14.2 17 15.7 17 17.5V20h5v-2.5c0-2.5-2.6-4.5-5.5-4.5z',
};

export function Icon({ name, off }) {
  return html`
    <svg class="icon" viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" focusable="false">
      <path d=${iconPaths[name]} fill="currentColor" />
      ${off && html`<path d="M3 3l18 18" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" />`}
    </svg>`;
}

// ConnBadge shows whether the page is live, and reconnects on demand.
export function ConnBadge({ conn }) {
  const status = conn.status.value;
  const label = {
    idle: 'Not connected',
    connecting: 'Connecting…',
    live: 'Live',
    reconnecting: 'Reconnecting…',
    stopped: 'Disconnected',
  }[status];
  return html`
    <div class="conn conn-${status}" role="status" aria-live="polite" data-status=${status}>
      <span class="conn-dot" aria-hidden="true"></span>
      <span class="conn-text">${label}</span>
      ${status === 'reconnecting' && html`
        <button type="button" class="link-button" onClick=${() => conn.retryNow()}>Retry now</button>`}
    </div>`;
}

// StoppedBanner explains a connection that will not come back by itself.
export function StoppedBanner({ conn }) {
  if (conn.status.value !== 'stopped') return null;
  return html`<div class="banner banner-error" role="alert">${conn.detail.value}</div>`;
}

// LevelToggle switches between level numbers and level names.
export function LevelToggle() {
  const names = prefs.names.value;
  return html`
    <div class="seg" role="group" aria-label="Show levels as">
      <button type="button" aria-pressed=${!names} onClick=${() => { prefs.names.value = false; }}>1–4</button>
      <button type="button" aria-pressed=${names} onClick=${() => { prefs.names.value = true; }}>Names</button>
    </div>`;
}

// MuteToggle silences the end-of-turn chime.
export function MuteToggle() {
  const muted = prefs.muted.value;
  return html`
    <button type="button" class="icon-button" aria-pressed=${muted}
      title=${muted ? 'Sound is off' : 'Sound is on'}
      onClick=${() => { prefs.muted.value = !muted; }}>
      <${Icon} name="bell" off=${muted} />
      <span class="visually-hidden">Mute the end-of-turn sound</span>
    </button>`;
}

// Notice shows the last command error until dismissed or replaced.
export function Notice({ conn }) {
  const n = conn.notice.value;
  useEffect(() => {
    if (!n) return undefined;
    const t = setTimeout(() => {
      if (conn.notice.value === n) conn.notice.value = null;
    }, 8000);
    return () => clearTimeout(t);
  }, [n]);
  if (!n) return null;
  return html`
    <div class="toast" role="alert">
      <span>${n.text}</span>
      <button type="button" class="link-button" onClick=${() => { conn.notice.value = null; }}>Dismiss</button>
    </div>`;
}

// LiveRegion reads announcements (reveals, turns) to screen readers.
export function LiveRegion({ conn }) {
  return html`<div class="visually-hidden" aria-live="polite" aria-atomic="true">${conn.announce.value}</div>`;
}

// PresenceCount is how many people are here.
export function PresenceCount({ conn }) {
  const p = conn.presence.value;
  if (!p) return null;
  const teams = Object.values(p.teams || {}).filter((n) => n > 0).length;
  const n = (p.attendees || 0) + teams + (p.facilitator ? 1 : 0);
  return html`<span class="presence" data-count=${n} title=${`${plural(p.attendees || 0, 'attendee')}, ${plural(teams, 'team lead')}${p.facilitator ? ', the facilitator' : ''}`}>
    <${Icon} name="users" /> ${n} here</span>`;
}

// TopBar is the header of a page: title, what the page is, status, toggles.
export function TopBar({ conn, title, role, children }) {
  return html`
    <header class="topbar">
      <div class="topbar-title">
        <span class="role-tag">${role}</span>
        <h1>${title || 'Workshop'}</h1>
      </div>
      <div class="topbar-tools">
        ${children}
        ${conn && html`<${PresenceCount} conn=${conn} />`}
        ${conn && html`<${ConnBadge} conn=${conn} />`}
      </div>
    </header>`;
}

// Countdown shows the time left in a turn from the server's end time.
export function Countdown({ conn, turn, className = '' }) {
  if (!turn || !turn.endsAt) return null;
  const left = Date.parse(turn.endsAt) - conn.clock.value;
  const over = left <= 0;
  const warn = !over && left <= 30000;
  return html`
    <span class=${`countdown ${over ? 'countdown-over' : ''} ${warn ? 'countdown-warn' : ''} ${className}`}
      role="timer" aria-label=${over ? 'Time is up' : `${fmtClock(left)} left`} data-left=${Math.round(left / 1000)}>
      ${over ? `Time's up ${fmtClock(left)}` : fmtClock(left)}
    </span>`;
}

// AspectTitle names the aspect under discussion and its question.
export function AspectTitle({ room, aspectId, level = 2 }) {
  const a = aspectOf(room.model, aspectId);
  if (!a) return null;
  const i = room.agenda.indexOf(a.id);
  const H = `h${level}`;
  return html`
    <div class="aspect-title">
      <p class="eyebrow">Aspect ${i + 1} of ${room.agenda.length}</p>
      <${H} class="aspect-name">${a.name}</${H}>
      ${a.question && html`<p class="aspect-question">${a.question}</p>`}
    </div>`;
}

// TurnBox shows who has the floor and the countdown.
export function TurnBox({ conn, room, big }) {
  const t = room.turn;
  if (!t) {
    return html`<div class=${`turn turn-none ${big ? 'turn-big' : ''}`}><p class="muted">Nobody has the floor.</p></div>`;
  }
  return html`
    <div class=${`turn ${big ? 'turn-big' : ''}`} data-turn=${t.team || t.participant}>
      <p class="eyebrow">${t.team ? 'Speaking team' : 'Speaking'}</p>
      <p class="turn-name">${t.name}</p>
      <${Countdown} conn=${conn} turn=${t} />
    </div>`;
}

// LevelChip is a level as a coloured chip, as a number or a name.
export function LevelChip({ model, aspect, level, large }) {
  const info = levelInfo(model, aspect, level);
  if (!info) return null;
  const { bg, fg } = levelColors(level, model.levels.length);
  // Preact sets a style object through the CSS object model, which the
  // CSP allows (it forbids style attributes in markup).
  return html`
    <span class=${`chip ${large ? 'chip-large' : ''}`} data-level=${level} style=${{ backgroundColor: bg, color: fg }}
      title=${`Level ${level}: ${info.name}${info.label ? ` — ${info.label}` : ''}`}>
      ${levelText(model, level)}
    </span>`;
}

// LevelExplain says what a level means for an aspect, and what the next
// level would take: the next step is what the discussion is for.
export function LevelExplain({ model, aspect, level }) {
  const info = levelInfo(model, aspect, level);
  if (!info) return null;
  const next = levelInfo(model, aspect, level + 1);
  return html`
    <div class="explain">
      <p class="explain-now"><strong>Level ${level} · ${info.name}${info.label ? ` — ${info.label}` : ''}.</strong>
        ${' '}${info.description || info.levelDescription}</p>
      ${next ? html`
        <p class="explain-next"><span class="next-tag">Next step</span>
          <strong>Level ${next.level} · ${next.name}${next.label ? ` — ${next.label}` : ''}.</strong>
          ${' '}${next.description || next.levelDescription}</p>`
      : html`<p class="explain-next"><span class="next-tag">Top level</span> This is the model's highest level.</p>`}
    </div>`;
}

// RevealCard shows one team's revealed score for an aspect.
export function RevealCard({ conn, room, aspect, team, score }) {
  const fresh = conn && conn.fresh.value[`${team.id}/${aspect}`];
  return html`
    <article class=${`reveal ${fresh ? 'reveal-new' : ''}`} data-team=${team.id} data-aspect=${aspect}>
      <header class="reveal-head">
        <h4>${team.name}</h4>
        ${score.submitted ? html`<${LevelChip} model=${room.model} aspect=${aspect} level=${score.level} large />`
          : html`<span class="chip chip-none">no score</span>`}
      </header>
      ${score.submitted ? html`
        <${LevelExplain} model=${room.model} aspect=${aspect} level=${score.level} />
        ${score.rationale && html`<blockquote class="rationale">${score.rationale}</blockquote>`}`
      : html`<p class="muted">This team did not submit a score.</p>`}
      <${EstimateResult} model=${room.model} team=${team.id} teamLabel=${team.name} result=${roomEstimate(room, team.id, aspect)} />
    </article>`;
}

// Reveals lists the revealed scores of an aspect.
export function Reveals({ conn, room, aspect, emptyText }) {
  const items = room.teams
    .map((t) => ({ team: t, score: room.scores[t.id] && room.scores[t.id][aspect] }))
    .filter((x) => x.score && x.score.revealed);
  if (!items.length) {
    return html`<p class="muted reveals-empty">${emptyText || 'No score revealed yet for this aspect.'}</p>`;
  }
  return html`
    <div class="reveals">
      ${items.map((x) => html`<${RevealCard} key=${x.team.id} conn=${conn} room=${room} aspect=${aspect} team=${x.team} score=${x.score} />`)}
    </div>`;
}

// spreadOf is max - min of the revealed submitted levels of an aspect, or
// null when fewer than one is revealed.
export function spreadOf(room, aspect) {
  const levels = room.teams
    .map((t) => room.scores[t.id] && room.scores[t.id][aspect])
    .filter((s) => s && s.revealed && s.submitted && s.level)
    .map((s) => s.level);
  if (!levels.length) return null;
  return Math.max(...levels) - Math.min(...levels);
}

// Heatmap is the teams x aspects matrix of revealed scores.
export function Heatmap({ room, current, caption = 'Scores revealed so far', big, conn, mine }) {
  const fresh = conn ? conn.fresh.value : {};
  const aspects = room.agenda.map((id) => aspectOf(room.model, id)).filter(Boolean);
  return html`
    <h2 class=${`heatmap-title ${big ? 'heatmap-title-big' : ''}`} aria-hidden="true">${caption}</h2>
    <div class="heatmap-wrap" role="region" aria-label=${caption} tabindex="0">
      <table class=${`heatmap ${big ? 'heatmap-big' : ''}`}>
        <caption class="visually-hidden">${caption}</caption>
        <thead>
          <tr>
            <th scope="col">Team</th>
            ${aspects.map((a) => html`<th scope="col" key=${a.id} class=${a.id === current ? 'col-current' : ''}>${a.name}</th>`)}
          </tr>
        </thead>
        <tbody>
          ${room.teams.map((t) => html`
            <tr key=${t.id} class=${t.id === mine ? 'row-mine' : ''}>
              <th scope="row">${t.name}${t.id === mine ? html` <span class="badge">you</span>` : ''}</th>
              ${aspects.map((a) => {
                const s = room.scores[t.id] && room.scores[t.id][a.id];
                const cls = [a.id === current && 'col-current', fresh[`${t.id}/${a.id}`] && 'cell-new'].filter(Boolean).join(' ');
                return html`<td key=${a.id} class=${cls} data-team=${t.id} data-aspect=${a.id}>${cell(room, a.id, s)}</td>`;
              })}
            </tr>`)}
        </tbody>
        <tfoot>
          <tr>
            <th scope="row">Spread</th>
            ${aspects.map((a) => {
              const sp = spreadOf(room, a.id);
              return html`<td key=${a.id} class=${`spread ${a.id === current ? 'col-current' : ''}`}>${sp === null ? '–' : sp}</td>`;
            })}
          </tr>
        </tfoot>
      </table>
    </div>`;
}

function cell(room, aspect, s) {
  if (!s || !s.revealed) {
    return html`<span class="cell-hidden" title="Not revealed yet"><span aria-hidden="true">·</span><span class="visually-hidden">not revealed</span></span>`;
  }
  if (!s.submitted) return html`<span class="cell-none">not submitted</span>`;
  return html`<${LevelChip} model=${room.model} aspect=${aspect} level=${s.level} />`;
}

// CopyField is a read-only link with a copy button.
export function CopyField({ label, value, id, secret }) {
  const [copied, setCopied] = useState('');
  const inputId = id || 'copy-' + label.replace(/\W+/g, '-').toLowerCase();
  const copy = async () => {
    const ok = await copyText(value);
    setCopied(ok ? 'Copied' : 'Select and copy by hand');
    setTimeout(() => setCopied(''), 2500);
  };
  return html`
    <div class="copy-field">
      <label for=${inputId}>${label}${secret && html` <span class="secret-tag">keep private</span>`}</label>
      <div class="copy-row">
        <input id=${inputId} type="text" readonly value=${value} onFocus=${(e) => e.target.select()} />
        <button type="button" onClick=${copy}>Copy</button>
        <a class="button button-quiet" href=${value} target="_blank" rel="noopener">Open</a>
      </div>
      <span class="copy-status" role="status">${copied}</span>
    </div>`;
}

// Hands lists raised hands; attendees raise and lower their own, the
// facilitator gives the floor or lowers them.
export function Hands({ conn, room, me, moderator }) {
  const mine = me && room.hands.some((h) => h.participant === me.participant);
  const canRaise = me && (me.role === 'attendee' || me.role === 'team') && room.phase === 'running';
  return html`
    <section class="card hands" aria-labelledby="hands-h">
      <h2 id="hands-h">Raised hands <span class="count">${room.hands.length}</span></h2>
      ${canRaise && html`
        <button type="button" class=${mine ? 'button-quiet' : ''} aria-pressed=${mine}
          onClick=${() => conn.act(mine ? 'lower_hand' : 'raise_hand', {})}>
          ${mine ? 'Lower my hand' : 'Raise my hand'}
        </button>`}
      ${room.hands.length ? html`
        <ol class="hand-list">
          ${room.hands.map((h) => html`
            <li key=${h.participant}>
              <span class="hand-name">${h.name}</span>
              ${me && h.participant === me.participant && html` <span class="badge">you</span>`}
              ${moderator && html`
                <span class="row-actions">
                  <button type="button" onClick=${() => conn.act('call_turn', { participant: h.participant })}>Give the floor</button>
                  <button type="button" class="button-quiet" onClick=${() => conn.act('lower_hand', { participant: h.participant })}>Lower</button>
                </span>`}
            </li>`)}
        </ol>` : html`<p class="muted">No hands raised.</p>`}
    </section>`;
}

const pageSize = 50;

// QA is the question list with the ask form. moderator adds the
// facilitator's controls and shows hidden and pending questions.
export function QA({ conn, room, me, moderator }) {
  const [sort, setSort] = useState('top');
  const [limit, setLimit] = useState(pageSize);
  const [filter, setFilter] = useState('all');
  const canAsk = me && me.role !== 'presenter' && (room.phase === 'running' || room.phase === 'wrapup');
  let qs = room.questions;
  if (moderator) {
    if (filter === 'pending') qs = qs.filter((q) => q.pending && !q.hidden);
    else if (filter === 'hidden') qs = qs.filter((q) => q.hidden);
    else if (filter === 'open') qs = qs.filter((q) => !q.hidden && !q.answered);
  }
  const sorted = sortQuestions(qs, sort);
  const shown = sorted.slice(0, limit);
  const pendingCount = moderator ? room.questions.filter((q) => q.pending && !q.hidden).length : 0;
  return html`
    <section class="card qa" aria-labelledby="qa-h" data-approve-first=${room.approveFirst ? 'on' : 'off'}>
      <div class="card-head">
        <h2 id="qa-h">Questions <span class="count">${room.questions.filter((q) => !q.hidden).length}</span></h2>
        <div class="seg" role="group" aria-label="Sort questions">
          <button type="button" aria-pressed=${sort === 'top'} onClick=${() => setSort('top')}>Top</button>
          <button type="button" aria-pressed=${sort === 'new'} onClick=${() => setSort('new')}>New</button>
        </div>
      </div>
      ${moderator && html`
        <div class="qa-mod-tools">
          <label class="check">
            <input type="checkbox" checked=${!!room.approveFirst}
              onChange=${(e) => conn.act('set_approve_first', { on: e.target.checked })} />
            Approve questions before they are shown
          </label>
          <div class="seg" role="group" aria-label="Show questions">
            ${[['all', 'All'], ['open', 'Open'], ['pending', `Pending (${pendingCount})`], ['hidden', 'Hidden']].map(([k, label]) => html`
              <button type="button" key=${k} aria-pressed=${filter === k} onClick=${() => setFilter(k)}>${label}</button>`)}
          </div>
        </div>`}
      ${canAsk ? html`<${AskForm} conn=${conn} room=${room} me=${me} />`
        : me && me.role !== 'presenter' && html`<p class="muted">${room.phase === 'closed' ? 'The room is closed.' : 'Questions open when the workshop starts.'}</p>`}
      ${shown.length ? html`
        <ul class="q-list">
          ${shown.map((q) => html`<${QuestionItem} key=${q.id} conn=${conn} room=${room} me=${me} q=${q} moderator=${moderator} />`)}
        </ul>` : html`<p class="muted">No questions yet.</p>`}
      ${sorted.length > limit && html`
        <button type="button" class="button-quiet" onClick=${() => setLimit(limit + pageSize)}>
          Show more (${sorted.length - limit} left)
        </button>`}
    </section>`;
}

function AskForm({ conn, room, me }) {
  const [text, setText] = useState('');
  const [anon, setAnon] = useState(false);
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState('');
  const submit = async (e) => {
    e.preventDefault();
    const t = text.trim();
    if (!t) {
      setMsg('Write a question first.');
      return;
    }
    setBusy(true);
    setMsg('');
    try {
      await conn.send('ask', { text: t, anonymous: anon });
      setText('');
      setMsg(room.approveFirst && me.role !== 'facilitator'
        ? 'Sent. Your question will show once the facilitator approves it.' : 'Question posted.');
    } catch (err) {
      setMsg(err.message);
    } finally {
      setBusy(false);
    }
  };
  const left = 500 - text.length;
  return html`
    <form class="ask" onSubmit=${submit}>
      <label for="ask-text">Ask a question</label>
      <textarea id="ask-text" rows="2" maxlength="500" value=${text} placeholder="What would you like to ask?"
        onInput=${(e) => setText(e.target.value)} aria-describedby="ask-count"></textarea>
      <div class="ask-row">
        ${me.role !== 'facilitator' && html`
          <label class="check"><input type="checkbox" checked=${anon} onChange=${(e) => setAnon(e.target.checked)} /> Ask anonymously</label>`}
        <span id="ask-count" class=${`muted small ${left < 50 ? 'warn' : ''}`}>${left} characters left</span>
        <button type="submit" disabled=${busy}>${busy ? 'Sending…' : 'Ask'}</button>
      </div>
      <p class="form-msg" role="status">${msg}</p>
    </form>`;
}

function QuestionItem({ conn, room, me, q, moderator }) {
  const mine = !!(me && q.voters && q.voters[me.participant]);
  const own = me && q.author && q.author === me.participant;
  const hl = room.highlighted === q.id;
  const canVote = me && me.role !== 'presenter' && !q.pending && room.phase !== 'closed';
  const reports = q.reporters ? Object.keys(q.reporters).length : 0;
  const who = q.anonymous ? 'Anonymous' : (q.authorName || 'Someone');
  const about = q.team ? ` · to ${teamName(room, q.team)}` : '';
  const cls = ['q', hl && 'q-highlighted', q.answered && 'q-answered', q.hidden && 'q-hidden', q.pending && 'q-pending'].filter(Boolean).join(' ');
  return html`
    <li class=${cls} data-question=${q.id}>
      <button type="button" class="vote" aria-pressed=${mine} disabled=${!canVote}
        aria-label=${`${mine ? 'Remove your upvote' : 'Upvote'}: ${q.votes || 0} ${q.votes === 1 ? 'vote' : 'votes'}`}
        onClick=${() => conn.act(mine ? 'unvote' : 'upvote', { question: q.id })}>
        <span aria-hidden="true">▲</span>
        <span class="vote-count">${q.votes || 0}</span>
      </button>
      <div class="q-body">
        <p class="q-text">${q.text}</p>
        <p class="q-meta">
          ${who}${own ? ' (you)' : ''}${about} · ${fmtTime(q.at)}
          ${hl && html` <span class="badge badge-hl">On screen</span>`}
          ${q.answered && html` <span class="badge badge-answered">Answered</span>`}
          ${q.pending && html` <span class="badge badge-pending">Waiting for approval</span>`}
          ${q.hidden && html` <span class="badge badge-hidden">Hidden${q.hiddenBy === 'reports' ? ' by reports' : ''}</span>`}
          ${moderator && reports > 0 && html` <span class="badge badge-warn">${plural(reports, 'report')}</span>`}
        </p>
        ${moderator && html`
          <div class="row-actions">
            ${q.pending && !q.hidden && html`<button type="button" onClick=${() => conn.act('approve_question', { question: q.id })}>Approve</button>`}
            ${!q.hidden && !q.pending && html`
              <button type="button" aria-pressed=${hl}
                onClick=${() => conn.act('highlight', hl ? {} : { question: q.id })}>${hl ? 'Take off screen' : 'Put on screen'}</button>`}
            <button type="button" aria-pressed=${!!q.answered}
              onClick=${() => conn.act('answer', { question: q.id, on: !q.answered })}>${q.answered ? 'Mark unanswered' : 'Mark answered'}</button>
            ${q.hidden ? html`<button type="button" onClick=${() => conn.act('restore_question', { question: q.id })}>Restore</button>`
              : html`<button type="button" class="button-danger" onClick=${() => conn.act('hide_question', { question: q.id })}>Hide</button>`}
          </div>`}
        ${!moderator && me && me.role !== 'presenter' && !own && !q.pending && room.phase !== 'closed' && html`
          <${ReportButton} conn=${conn} q=${q} me=${me} />`}
      </div>
    </li>`;
}

function ReportButton({ conn, q, me }) {
  const reported = !!(q.reporters && q.reporters[me.participant]);
  const [done, setDone] = useState(reported);
  if (done) return html`<p class="muted small">Reported. Thank you.</p>`;
  return html`
    <button type="button" class="link-button small" onClick=${async () => {
      if (await conn.act('report', { question: q.id })) setDone(true);
    }}>Report</button>`;
}

// JoinQR is the join QR code (rendered by the server) with the short code.
export function JoinQR({ room, big }) {
  const code = room.code || '';
  const shown = code.length === 8 ? code.slice(0, 4) + '-' + code.slice(4) : code;
  const joinUrl = `${location.origin}/j/${code}`;
  return html`
    <figure class=${`join-qr ${big ? 'join-qr-big' : ''}`}>
      <img src=${`/api/rooms/${encodeURIComponent(room.id)}/qr.svg`} alt=${`QR code to join: ${joinUrl}`} width="220" height="220" />
      <figcaption>
        <span class="join-label">Join at</span>
        <span class="join-url">${location.host}/j/</span>
        <span class="join-code" data-code=${code}>${shown}</span>
      </figcaption>
    </figure>`;
}
