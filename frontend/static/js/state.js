// state.js: the client's copy of a room. A snapshot replaces it; each event
// of an `events` message is applied in sequence order, the way the server's
// room.Evolve does, cut to what this client may see (PROTOCOL.md, "Events").

import { questionNumber } from './lib.js';

// normalize fills the fields that a view may leave out, so the pages can
// read them without checks.
export function normalize(room) {
  const r = room || {};
  r.teams = r.teams || [];
  r.agenda = r.agenda || [];
  r.queues = r.queues || {};
  r.spoken = r.spoken || {};
  r.hands = r.hands || [];
  r.scores = r.scores || {};
  r.questions = r.questions || [];
  r.notes = r.notes || {};
  r.actions = r.actions || {};
  r.removed = r.removed || {};
  r.estimates = r.estimates || {};
  r.estimateEachTurn = !!r.estimateEachTurn;
  r.highlighted = r.highlighted || '';
  r.model = r.model || { levels: [], aspects: [] };
  r.model.levels = r.model.levels || [];
  r.model.aspects = r.model.aspects || [];
  if (!r.agenda.length) r.agenda = r.model.aspects.map((a) => a.id);
  return r;
}

// estimation answers the room's estimate of team on aspect, made empty
// when there is none yet, as room's State.estimation does.
function estimation(s, team, aspect) {
  const byAspect = s.estimates[team] || (s.estimates[team] = {});
  return byAspect[aspect] || (byAspect[aspect] = { open: false, count: 0, revealed: false });
}

// setOwnEstimate records participant's own level, in a new levels object
// so that pages holding the old one render again.
function setOwnEstimate(est, participant, level) {
  est.levels = Object.assign({}, est.levels, { [participant]: level });
}

function assessment(s, team, aspect) {
  const byAspect = s.scores[team] || (s.scores[team] = {});
  return byAspect[aspect] || (byAspect[aspect] = { submitted: false, revealed: false });
}

// withheld keeps, per state, what this client learned from events but a
// snapshot would not show it yet, so that it ends where room.View would:
// another team's submission time, which a view shows only once the score is
// revealed (and a revealed event does not carry it), by team and aspect;
// and its own votes on questions it does not hold (hidden from it, or cut
// to private in a range that hides them), since a view shows its own vote
// again once such a question is restored and question_restored carries no
// voters. A WeakMap keeps it out of the state that pages read and print.
const withheld = new WeakMap();

function withheldOf(s) {
  let w = withheld.get(s);
  if (!w) {
    w = { submittedAt: {}, votes: {} };
    withheld.set(s, w);
  }
  return w;
}

function findQuestion(s, id) {
  return s.questions.find((q) => q.id === id);
}

// putQuestion inserts q in posting order or replaces the one with its id,
// keeping the votes and this client's own vote already known.
function putQuestion(s, q, me) {
  const old = findQuestion(s, q.id);
  if (old) {
    const votes = old.votes;
    const voters = old.voters;
    Object.keys(old).forEach((k) => delete old[k]);
    Object.assign(old, q, { votes, voters });
    return;
  }
  const c = Object.assign({ votes: 0 }, q);
  const w = withheldOf(s);
  if (w.votes[c.id] && me && me.participant) {
    c.voters = { [me.participant]: true };
  }
  delete w.votes[c.id];
  const n = questionNumber(c.id);
  const i = s.questions.findIndex((x) => questionNumber(x.id) > n);
  if (i < 0) s.questions.push(c);
  else s.questions.splice(i, 0, c);
}

// setVote records whether participant votes for q, in a new voters object
// so that pages holding the old one render again.
function setVote(q, participant, voted) {
  q.voters = Object.assign({}, q.voters);
  if (voted) q.voters[participant] = true;
  else delete q.voters[participant];
}

function isOwnTeam(me, team) {
  return me && me.role === 'team' && me.team === team;
}

// applyEvent applies one event to s (in place) for the client me
// ({role, team, participant}) and answers s.
export function applyEvent(s, e, me) {
  s.seq = e.seq;
  const fac = me && me.role === 'facilitator';
  switch (e.type) {
    case 'estimates_opened':
    case 'estimates_closed':
      for (const team of e.order || []) {
        estimation(s, team, e.aspect).open = e.type === 'estimates_opened';
      }
      break;
    case 'estimated': {
      // Someone else's twin has no participant, only the count.
      const est = estimation(s, e.team, e.aspect);
      est.count = e.count || 0;
      if (e.participant) setOwnEstimate(est, e.participant, e.level);
      break;
    }
    case 'estimate_each_turn_set':
      s.estimateEachTurn = !!e.on;
      break;
    case 'room_created':
      // Clients get a snapshot instead; take it if one comes anyway.
      return normalize(Object.assign(e.room || {}, { seq: e.seq }));
    case 'started':
    case 'aspect_changed':
      s.phase = 'running';
      s.aspect = e.aspect;
      break;
    case 'agenda_set':
      s.agenda = (e.order || []).slice();
      break;
    case 'team_added':
      s.teams.push({ id: e.team, name: e.name });
      for (const a of s.model.aspects) {
        s.queues[a.id] = (s.queues[a.id] || []).concat(e.team);
      }
      break;
    case 'queue_set':
      s.queues[e.aspect] = (e.order || []).slice();
      break;
    case 'turn_started': {
      const t = Object.assign({}, e.turn);
      s.turn = t;
      if (t.team) {
        const spoken = s.spoken[t.aspect] || (s.spoken[t.aspect] = []);
        if (!spoken.includes(t.team)) spoken.push(t.team);
      }
      break;
    }
    case 'turn_changed':
      s.turn = Object.assign({}, e.turn);
      break;
    case 'turn_ended':
      s.turn = null;
      break;
    case 'draft_saved': {
      const a = assessment(s, e.team, e.aspect);
      a.draftLevel = e.level || 0;
      a.draftRationale = e.rationale || '';
      break;
    }
    case 'submitted': {
      const a = assessment(s, e.team, e.aspect);
      a.submitted = true;
      if (isOwnTeam(me, e.team)) {
        a.submittedAt = e.at;
        a.level = e.level;
        a.rationale = e.rationale || '';
        a.draftLevel = e.level;
        a.draftRationale = e.rationale || '';
      } else {
        // Another team's time shows with its revealed score, as in a
        // snapshot; until then it waits in withheld.
        const byAspect = withheldOf(s).submittedAt;
        (byAspect[e.team] || (byAspect[e.team] = {}))[e.aspect] = e.at;
      }
      break;
    }
    case 'revealed':
      for (const sc of e.scores || []) {
        const a = assessment(s, sc.team, e.aspect);
        a.revealed = true;
        a.submitted = !!sc.submitted;
        // A score without a level was taken back later in the same
        // range (PROTOCOL.md, "Events"): it says only that the team
        // submitted, and a team keeps its own level.
        if (sc.submitted && sc.level) {
          a.level = sc.level;
          a.rationale = sc.rationale || '';
          if (!isOwnTeam(me, sc.team)) {
            const at = (withheldOf(s).submittedAt[sc.team] || {})[e.aspect];
            if (at) a.submittedAt = at;
          }
        }
        // The reveal closes estimating for the team and shows its
        // result; a twin cut against a later take-back carries none and
        // closes all the same.
        const known = s.estimates[sc.team] && s.estimates[sc.team][e.aspect];
        if (known || sc.estimate) {
          const est = known || estimation(s, sc.team, e.aspect);
          est.open = false;
          if (sc.estimate) {
            est.revealed = true;
            est.result = copyResult(sc.estimate);
          }
        }
      }
      break;
    case 'reveal_hidden':
      for (const team of e.order || []) {
        const a = assessment(s, team, e.aspect);
        a.revealed = false;
        if (!isOwnTeam(me, team)) {
          delete a.level;
          delete a.rationale;
          delete a.submittedAt;
        }
        const est = s.estimates[team] && s.estimates[team][e.aspect];
        if (est) {
          est.revealed = false;
          delete est.result;
        }
      }
      break;
    case 'question_posted':
      if (e.q) putQuestion(s, e.q, me);
      break;
    case 'question_approved':
    case 'question_restored':
      if (e.q) putQuestion(s, e.q, me);
      break;
    case 'upvoted':
    case 'unvoted': {
      // Only the voter and the facilitator get the participant; a twin
      // without one changes the count alone (an absent participant must
      // not match a client that has none, such as the public view).
      const q = findQuestion(s, e.question);
      const named = !!e.participant && (fac || (me && e.participant === me.participant));
      if (q) {
        q.votes = e.count || 0;
        if (named) setVote(q, e.participant, e.type === 'upvoted');
      } else if (named && !fac) {
        // Its own vote on a question this client does not hold.
        if (e.type === 'upvoted') withheldOf(s).votes[e.question] = true;
        else delete withheldOf(s).votes[e.question];
      }
      break;
    }
    case 'reported': {
      const q = findQuestion(s, e.question);
      if (q) {
        q.reporters = Object.assign({}, q.reporters, { [e.participant]: true });
      }
      break;
    }
    case 'highlighted':
      s.highlighted = e.question || '';
      break;
    case 'answered': {
      const q = findQuestion(s, e.question);
      if (q) q.answered = !!e.on;
      break;
    }
    case 'question_hidden': {
      if (fac) {
        const q = findQuestion(s, e.question);
        if (q) {
          q.hidden = true;
          q.hiddenBy = e.name;
        }
      } else {
        const q = findQuestion(s, e.question);
        if (q && me && me.participant && q.voters && q.voters[me.participant]) {
          withheldOf(s).votes[q.id] = true;
        }
        s.questions = s.questions.filter((x) => x.id !== e.question);
      }
      if (s.highlighted === e.question) s.highlighted = '';
      break;
    }
    case 'approve_first_set':
      s.approveFirst = !!e.on;
      break;
    case 'hand_raised':
      s.hands = s.hands.filter((h) => h.participant !== e.participant);
      s.hands.push({ participant: e.participant, name: e.name, at: e.at });
      break;
    case 'hand_lowered':
      s.hands = s.hands.filter((h) => h.participant !== e.participant);
      break;
    case 'note_set':
      s.notes[e.aspect] = e.text || '';
      break;
    case 'action_added':
      s.actions[e.aspect] = (s.actions[e.aspect] || []).concat(Object.assign({ done: false }, e.action));
      break;
    case 'action_done':
      for (const x of s.actions[e.aspect] || []) {
        if (x.id === e.action.id) x.done = !!e.action.done;
      }
      break;
    case 'action_removed':
      s.actions[e.aspect] = (s.actions[e.aspect] || []).filter((x) => x.id !== e.action.id);
      break;
    case 'wrapped_up':
      s.phase = 'wrapup';
      break;
    case 'closed':
      s.phase = 'closed';
      s.closedAt = e.at;
      s.turn = null;
      break;
    case 'participant_removed':
      s.removed[e.participant] = true;
      s.hands = s.hands.filter((h) => h.participant !== e.participant);
      break;
    case 'keys_rotated':
      s.secrets = { generation: e.count };
      break;
    default:
      // 'private' and anything newer than this page: only the sequence moves.
      break;
  }
  return s;
}

// applyTally applies a `tally` (PROTOCOL.md, "Tallies") to s in place: the
// new vote counts, this client's own vote and report, and the hand queue.
// The totals are the room's at t.seq, so it applies to a copy at any
// sequence from t.from - 1 on; the caller checks that.
export function applyTally(s, t, me) {
  s.seq = t.seq;
  const self = me && me.participant;
  for (const v of t.votes || []) {
    const q = findQuestion(s, v.question);
    if (q && v.hidden) {
      // Hidden from this client by an event that follows: only its own
      // vote moves, and that event keeps it for a restore.
      if (self && typeof v.voted === 'boolean') {
        setVote(q, self, v.voted);
      }
      continue;
    }
    if (!q) {
      if (self && typeof v.voted === 'boolean') {
        if (v.voted) withheldOf(s).votes[v.question] = true;
        else delete withheldOf(s).votes[v.question];
      }
      continue;
    }
    q.votes = v.votes || 0;
    if (self && typeof v.voted === 'boolean') {
      setVote(q, self, v.voted);
    }
    if (self && v.reported) q.reporters = Object.assign({}, q.reporters, { [self]: true });
  }
  if (t.handsChanged) s.hands = (t.hands || []).slice();
  for (const c of t.estimates || []) {
    const est = estimation(s, c.team, c.aspect);
    est.count = c.count || 0;
    if (self && c.level > 0) setOwnEstimate(est, self, c.level);
  }
  return s;
}

// applyOwnEstimate shows this client's own estimate as its ack answered it
// (result: {aspect, team, level, count}), before the tally that carries it.
// Counts only grow, so a tally that came first is not taken back.
export function applyOwnEstimate(s, result, me) {
  if (!me || !me.participant || !result.team || !result.aspect || !(result.level > 0)) return s;
  const est = estimation(s, result.team, result.aspect);
  est.count = Math.max(est.count || 0, result.count || 0);
  setOwnEstimate(est, me.participant, result.level);
  return s;
}

function copyResult(r) {
  return Object.assign({}, r, { histogram: (r.histogram || []).slice() });
}

// estimateOf answers the room's estimate of team on aspect, or null.
export function estimateOf(room, team, aspect) {
  return (room.estimates[team] && room.estimates[team][aspect]) || null;
}

// ownEstimate answers the level me gave team on aspect, or 0.
export function ownEstimate(room, team, aspect, me) {
  const est = estimateOf(room, team, aspect);
  return (est && est.levels && me && me.participant && est.levels[me.participant]) || 0;
}

// applyOwnVote shows this client's own vote as its ack answered it
// (result: {question, votes, voted}), before the tally that carries it.
export function applyOwnVote(s, result, me) {
  const q = findQuestion(s, result.question);
  if (!q || !me || !me.participant || typeof result.voted !== 'boolean') return s;
  q.votes = result.votes || 0;
  setVote(q, me.participant, result.voted);
  return s;
}

// sortQuestions orders questions by votes (most first), then posting time
// (oldest first), the server's order; or newest first when by is 'new'.
export function sortQuestions(qs, by) {
  const out = qs.slice();
  if (by === 'new') {
    out.sort((a, b) => questionNumber(b.id) - questionNumber(a.id));
  } else {
    out.sort((a, b) => (b.votes || 0) - (a.votes || 0) || questionNumber(a.id) - questionNumber(b.id));
  }
  return out;
}

// revealedFor lists the revealed scores of an aspect in team order.
export function revealedFor(room, aspect) {
  const out = [];
  for (const t of room.teams) {
    const a = room.scores[t.id] && room.scores[t.id][aspect];
    if (a && a.revealed) out.push({ team: t, score: a });
  }
  return out;
}
