// estimate.js: the room's estimate on the pages (PROTOCOL.md, "The room's
// estimate"). Before a team's reveal everyone else picks the level they
// think it stands at; until the reveal a page shows only how many have
// estimated and, to each person, their own pick. The reveal shows the
// histogram of estimates beside the team's own level, the median, the mean
// and the gap, flagged at a level or more.

import { html, plural, teamName } from './lib.js';
import { estimateOf, ownEstimate } from './state.js';

// fmtNum is a median or a mean as it reads: 2, 2.5, 2.33.
export function fmtNum(x) {
  return String(Math.round((x || 0) * 100) / 100);
}

// fmtGap is a gap with its sign: +1, −2 (a real minus), 0.
export function fmtGap(g) {
  if (!g) return '0';
  return (g > 0 ? '+' : '−') + fmtNum(Math.abs(g));
}

function levelName(model, n) {
  const lv = model.levels[n - 1];
  return lv && lv.name ? lv.name : String(n);
}

// estimators is how many could estimate team: the attendees here and the
// leads of the other teams here, from presence; 0 when presence is unknown.
export function estimators(presence, team) {
  if (!presence) return 0;
  let n = presence.attendees || 0;
  for (const [id, c] of Object.entries(presence.teams || {})) {
    if (id !== team && c > 0) n++;
  }
  return n;
}

// canEstimate reports whether me may estimate team: attendees and the
// leads of other teams, while the room runs.
export function canEstimate(room, me, team) {
  if (!me || room.phase !== 'running') return false;
  if (me.role === 'attendee') return !!me.participant;
  return me.role === 'team' && me.team !== team;
}

// openTeams lists the teams taking estimates on aspect, the speaking team
// first, then in queue order.
export function openTeams(room, aspect) {
  const queue = (room.queues[aspect] && room.queues[aspect].length) ? room.queues[aspect] : room.teams.map((t) => t.id);
  const speaking = room.turn && room.turn.team;
  const ids = queue.filter((id) => {
    const est = estimateOf(room, id, aspect);
    return est && est.open;
  });
  return ids.sort((a, b) => (b === speaking) - (a === speaking));
}

// EstimateProgress is how many have estimated team so far: a count, and a
// bar against how many could when presence says.
export function EstimateProgress({ room, team, aspect, presence, label }) {
  const est = estimateOf(room, team, aspect);
  const count = (est && est.count) || 0;
  const of = Math.max(count, estimators(presence, team));
  const name = teamName(room, team);
  const text = of ? `${count} of ${of} estimated` : `${plural(count, 'estimate')}`;
  return html`
    <div class="est-progress" data-team=${team} data-count=${count} data-open=${est && est.open ? 'true' : 'false'}>
      <span class="est-progress-label">${label || name}</span>
      ${of > 0 && html`<progress max=${of} value=${count} aria-label=${`Estimates of ${name}: ${text}`}></progress>`}
      <span class="est-progress-count">${text}${est && !est.open ? ' · closed' : ''}</span>
    </div>`;
}

// EstimatePicker is the level picker for one team: a button per model
// level, the person's own pick pressed, and how many have estimated.
export function EstimatePicker({ conn, room, me, team, aspect }) {
  const est = estimateOf(room, team, aspect);
  const open = !!(est && est.open);
  const own = ownEstimate(room, team, aspect, me);
  const name = teamName(room, team);
  const hid = `est-h-${team}`;
  const pick = (n) => {
    if (n !== own) conn.act('estimate', { aspect, team, level: n });
  };
  return html`
    <section class="est-pick" data-team=${team} aria-labelledby=${hid}>
      <h3 id=${hid}>Where does ${name} stand?</h3>
      <div class="est-levels" role="group" aria-label=${`Estimate ${name}`}>
        ${room.model.levels.map((lv, i) => {
          const n = i + 1;
          return html`
            <button type="button" key=${n} class="est-level" data-level=${n} aria-pressed=${own === n} disabled=${!open}
              aria-label=${`Estimate ${name} at level ${n}, ${levelName(room.model, n)}`} onClick=${() => pick(n)}>
              <span class="est-num" aria-hidden="true">${n}</span>
              <span class="est-name" aria-hidden="true">${levelName(room.model, n)}</span>
            </button>`;
        })}
      </div>
      <p class="est-own small" role="status">
        ${own ? `Your estimate: level ${own}, ${levelName(room.model, own)}.` : (open ? 'Pick a level.' : 'You did not estimate.')}
        ${' '}${open ? 'Only you see it; you can change it until estimating closes.' : 'Estimating is closed.'}
      </p>
      <${EstimateProgress} room=${room} team=${team} aspect=${aspect} presence=${conn.presence.value} label="So far" />
    </section>`;
}

// EstimatePickers are the pickers of every team open on the current
// aspect that me may estimate, and the progress of the ones it may not
// (its own team).
export function EstimatePickers({ conn, room, me }) {
  const aspect = room.aspect;
  if (!aspect) return null;
  // A team closed but not yet revealed stays, disabled, where this
  // person estimated it: their own pick shows until the reveal.
  const open = openTeams(room, aspect);
  const closed = room.teams.map((t) => t.id).filter((id) => {
    const est = estimateOf(room, id, aspect);
    const sc = room.scores[id] && room.scores[id][aspect];
    return est && !est.open && !est.revealed && !(sc && sc.revealed) && ownEstimate(room, id, aspect, me);
  });
  const ids = open.concat(closed);
  if (!ids.length) return null;
  return html`
    <section class="card est-card" aria-labelledby="est-card-h" data-estimating=${ids.join(' ')}>
      <h2 id="est-card-h">The room's estimate</h2>
      <p class="muted small">${ids.some((id) => canEstimate(room, me, id))
        ? 'Before the reveal, say where you think each team stands. Nobody sees the estimates until the reveal, not even the facilitator.'
        : 'Everyone else says where they think your team stands. Until the reveal only the count shows, to everyone.'}</p>
      ${ids.map((id) => (canEstimate(room, me, id)
        ? html`<${EstimatePicker} key=${id} conn=${conn} room=${room} me=${me} team=${id} aspect=${aspect} />`
        : html`<${EstimateProgress} key=${id} room=${room} team=${id} aspect=${aspect} presence=${conn.presence.value}
            label=${me && me.team === id ? 'The room is estimating your team' : `Estimating ${teamName(room, id)}`} />`))}
    </section>`;
}

// EstimateResult is the revealed estimate of team on aspect: a histogram
// with one bar per model level (the team's own level marked), the median,
// the mean and the gap; nothing when the room did not estimate the team.
export function EstimateResult({ model, teamLabel, result, big, team }) {
  if (!result) return null;
  const hist = model.levels.map((_, i) => (result.histogram && result.histogram[i]) || 0);
  const top = Math.max(1, ...hist);
  const count = result.count || 0;
  const hasGap = typeof result.gap === 'number';
  const counts = hist.map((c, i) => `level ${i + 1} ${levelName(model, i + 1)}: ${c}`).join(', ');
  const alt = count
    ? `The room's estimates of ${teamLabel}, ${plural(count, 'estimate')}: ${counts}. Median ${fmtNum(result.median)}, mean ${fmtNum(result.mean)}.`
    : `Nobody estimated ${teamLabel}.`;
  return html`
    <figure class=${`est-result ${big ? 'est-result-big' : ''} ${result.flagged ? 'est-flagged' : ''}`} data-team=${team}
      data-flagged=${result.flagged ? 'true' : 'false'} data-median=${result.median || 0}>
      <figcaption class="est-caption">Room's estimate${big ? ` of ${teamLabel}` : ''} · ${plural(count, 'estimate')}</figcaption>
      <div class="est-hist" role="img" aria-label=${alt}>
        ${hist.map((c, i) => {
          const n = i + 1;
          const self = result.self === n;
          return html`
            <div key=${n} class=${`est-col ${self ? 'est-self' : ''}`} data-level=${n} data-count=${c}>
              <span class="est-bar-count">${c}</span>
              <span class="est-bar-track"><span class="est-bar" style=${{ height: `${Math.round((c / top) * 100)}%` }}></span></span>
              <span class="est-bar-level">${n}</span>
              <span class="est-self-tag">${self ? 'team' : ''}</span>
            </div>`;
        })}
      </div>
      ${count > 0 && html`
        <dl class="est-stats">
          <div><dt>Team</dt><dd>${result.self ? `${result.self} ${levelName(model, result.self)}` : 'no score'}</dd></div>
          <div><dt>Median</dt><dd class="est-median">${fmtNum(result.median)}</dd></div>
          <div><dt>Mean</dt><dd class="est-mean">${fmtNum(result.mean)}</dd></div>
          ${hasGap && html`<div><dt>Gap</dt><dd class="est-gap" data-gap=${result.gap}>${fmtGap(result.gap)}</dd></div>`}
        </dl>`}
      ${result.flagged && html`
        <p class="est-flag" data-flag=${team}><span aria-hidden="true">⚑ </span>${result.gap > 0
          ? `${teamLabel} sees itself higher than the room does`
          : `${teamLabel} sees itself lower than the room does`} (gap ${fmtGap(result.gap)}): discuss first.</p>`}
    </figure>`;
}

// roomEstimate is the revealed result of team on aspect in room, or null.
export function roomEstimate(room, team, aspect) {
  const est = estimateOf(room, team, aspect);
  return est && est.revealed && est.result ? est.result : null;
}

// discussFirst lists the flagged teams of aspect, the largest gap first
// (the order of the results' qaFirst): [{team, gap}].
export function discussFirst(room, aspect) {
  const out = [];
  for (const t of room.teams) {
    const r = roomEstimate(room, t.id, aspect);
    if (r && r.flagged && typeof r.gap === 'number') out.push({ team: t.id, gap: r.gap });
  }
  return out.sort((a, b) => Math.abs(b.gap) - Math.abs(a.gap));
}
