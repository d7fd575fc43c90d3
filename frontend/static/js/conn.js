// conn.js: one WebSocket to a room, kept alive for the life of the page.
//
// The connection says hello (a key, a display name, or a participant id and
// token) with the epoch and sequence it already has, applies `snapshot` and
// `events` to its copy of the room, asks again with `resume` when it sees a
// gap, measures the server's clock with ping/pong so every screen counts
// down to the same instant, and reconnects by itself with backoff when the
// socket drops. Commands carry an id and stay pending until their `ack` or
// `error`; after a reconnect they are sent again with the same id, which the
// server answers once (PROTOCOL.md, "Commands").

import { signal, batch } from '../vendor/signals.module.js';
import { randomId } from './lib.js';
import { applyEvent, applyOwnEstimate, applyOwnVote, applyTally, normalize } from './state.js';

// Timings, in milliseconds. pingEvery < silentLimit: a healthy connection
// always hears a pong before it is judged dead.
const pingEvery = 15000; // between pings once the clock is measured
const silentLimit = 40000; // no message for this long: the socket is dead
const backoffFirst = 500; // first reconnect delay after a failure
const backoffMax = 10000; // reconnect delays grow up to this
const goingAwaySpread = 800; // 1001 reconnects are spread over this
const resumeEvery = 2000; // at most one resume per this, while one is answered
const pongGapWait = 1500; // a pong ahead of us: wait this long for the events
const freshFor = 4000; // how long a reveal counts as new (animation, announce)
const maxRetries = 3; // resends of a rate-limited or unavailable command
const renderEvery = 50; // events within this long are rendered together

// Close codes after which reconnecting cannot help (PROTOCOL.md).
const fatal = {
  1008: 'The server refused this page (policy violation). Reload the page.',
  4000: 'The server did not understand this page. Reload the page.',
  4001: 'This link is not valid (wrong or old key). Ask the facilitator for a new link.',
  4003: 'You were removed from this room, or its links were replaced.',
  4004: 'This room does not exist.',
};

// CommandError is the server's `error` answer to a command.
export class CommandError extends Error {
  constructor(code, message, retryAfter) {
    super(message);
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// Conn is the page's connection to one room. Its signals are what the
// pages render from:
//   status   'idle' | 'connecting' | 'live' | 'reconnecting' | 'stopped'
//   detail   a sentence about the status (why it stopped, when it retries)
//   room     the room as this client may see it (replaced on every change)
//   presence the latest presence message
//   me       the welcome message: role, participant, name, team
//   clock    the server's clock in ms, ticking four times a second
//   fresh    "team/aspect" -> ms of reveals that just happened
//   notice   the last error to show the user {text, at}
//   announce text for the screen reader's live region
export class Conn {
  // opts: roomId; identity() answers the hello fields ({key}, {name} or
  // {participant, token}) or null to wait; onWelcome(msg); onFatal(code);
  // onTurnEnd(turn) when a countdown reaches zero on this screen.
  constructor(opts) {
    this.opts = opts;
    this.roomId = opts.roomId;
    this.status = signal('idle');
    this.detail = signal('');
    this.room = signal(null);
    this.presence = signal(null);
    this.me = signal(null);
    this.clock = signal(Date.now());
    this.fresh = signal({});
    this.notice = signal(null);
    this.announce = signal('');
    this.retryAt = signal(0);

    this.ws = null;
    this.welcomed = false;
    this.state = null;
    this.epoch = '';
    this.seq = 0;
    this.offset = 0;
    this.samples = [];
    this.pending = new Map();
    this.listeners = [];
    this.attempt = 0;
    this.timer = 0;
    this.pingTimer = 0;
    this.lastMessageAt = 0;
    this.lastResumeAt = 0;
    this.stopped = false;
    this.prevRemaining = null;
    this.publishTimer = 0;

    this.tick = this.tick.bind(this);
    setInterval(this.tick, 250);
    const wake = () => {
      if (!this.stopped && !this.ws && document.visibilityState !== 'hidden') this.connectNow();
    };
    document.addEventListener('visibilitychange', wake);
    window.addEventListener('online', wake);
  }

  // onEvent registers fn(event, room) for every event applied live.
  onEvent(fn) {
    this.listeners.push(fn);
  }

  url() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${proto}//${location.host}/api/rooms/${encodeURIComponent(this.roomId)}/ws`;
  }

  // start connects once identity() has something to say.
  start() {
    this.stopped = false;
    this.connectNow();
  }

  connectNow() {
    clearTimeout(this.timer);
    this.timer = 0;
    if (this.ws || this.stopped) return;
    const who = this.opts.identity();
    if (!who) return;
    this.status.value = this.state ? 'reconnecting' : 'connecting';
    this.detail.value = this.state ? 'Reconnecting…' : 'Connecting…';
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.scheduleReconnect(1006);
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      const hello = Object.assign({ type: 'hello' }, this.opts.identity() || {});
      if (this.state && this.epoch) {
        hello.epoch = this.epoch;
        hello.seq = this.seq;
      }
      this.lastMessageAt = Date.now();
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastMessageAt = Date.now();
      for (const line of String(ev.data).split('\n')) {
        if (!line.trim()) continue;
        let msg;
        try {
          msg = JSON.parse(line);
        } catch (_) {
          continue;
        }
        this.handle(msg);
      }
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.welcomed = false;
      clearTimeout(this.pingTimer);
      this.onClose(ev.code, ev.reason);
    };
    ws.onerror = () => {
      // onclose follows and decides what to do.
    };
  }

  onClose(code, reason) {
    if (this.stopped) return;
    if (fatal[code]) {
      // A removed attendee who comes back is refused as unauthorized
      // with a reason that says so.
      const removed = code === 4003 || /removed/i.test(reason || '');
      this.stop(removed ? fatal[4003] : fatal[code]);
      if (this.opts.onFatal) this.opts.onFatal(code, reason);
      return;
    }
    this.scheduleReconnect(code);
  }

  scheduleReconnect(code) {
    let delay;
    if (code === 1001 && this.attempt === 0) {
      delay = Math.random() * goingAwaySpread;
    } else {
      const base = Math.min(backoffMax, backoffFirst * 2 ** this.attempt);
      delay = base / 2 + Math.random() * base / 2;
      if (code === 4029) delay = Math.max(delay, 5000);
    }
    this.attempt++;
    this.status.value = 'reconnecting';
    this.retryAt.value = Date.now() + delay;
    this.detail.value = 'Connection lost. Reconnecting…';
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connectNow(), delay);
  }

  // stop closes the connection for good and shows why.
  stop(why) {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.pingTimer);
    this.status.value = 'stopped';
    this.detail.value = why || 'Disconnected.';
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000, 'bye');
      } catch (_) {
        // already closed
      }
    }
  }

  // restart forgets the stop and connects again. fresh also forgets the
  // room (a new identity may see a different room: its own questions).
  restart(fresh) {
    if (fresh) {
      this.state = null;
      this.epoch = '';
      this.seq = 0;
    }
    this.stopped = false;
    this.attempt = 0;
    this.connectNow();
  }

  // retryNow skips the remaining backoff.
  retryNow() {
    if (this.stopped) this.stopped = false;
    this.connectNow();
  }

  handle(msg) {
    switch (msg.type) {
      case 'welcome':
        this.welcomed = true;
        this.attempt = 0;
        if (!this.samples.length && typeof msg.now === 'number') this.offset = msg.now - Date.now();
        batch(() => {
          this.me.value = msg;
          this.status.value = 'live';
          this.detail.value = 'Connected';
        });
        if (this.opts.onWelcome) this.opts.onWelcome(msg);
        for (const p of this.pending.values()) this.write(p.msg);
        this.startPings();
        break;
      case 'snapshot':
        this.epoch = msg.epoch || '';
        this.seq = msg.seq || 0;
        if (!this.samples.length && typeof msg.now === 'number') this.offset = msg.now - Date.now();
        this.state = normalize(msg.room);
        this.state.seq = this.seq;
        batch(() => {
          this.publish();
          if (msg.presence) this.presence.value = msg.presence;
        });
        break;
      case 'events':
        this.applyEvents(msg);
        break;
      case 'tally':
        this.applyTally(msg);
        break;
      case 'presence':
        this.presence.value = msg.presence;
        break;
      case 'ack': {
        const p = this.pending.get(msg.id);
        if (p) {
          this.pending.delete(msg.id);
          // Others get a vote in the next tally; the voter sees it now.
          if (this.state && msg.result && typeof msg.result.voted === 'boolean') {
            this.state = applyOwnVote(this.state, msg.result, this.me.value);
            this.schedulePublish();
          }
          // The same for an estimate: one's own pick shows at once.
          if (this.state && msg.result && p.msg.type === 'estimate' && msg.result.level) {
            this.state = applyOwnEstimate(this.state, msg.result, this.me.value);
            this.schedulePublish();
          }
          p.resolve(msg.result || {});
        }
        break;
      }
      case 'error':
        this.onError(msg);
        break;
      case 'pong':
        this.onPong(msg);
        break;
      default:
        break;
    }
  }

  applyEvents(msg) {
    if (!this.state) return; // a snapshot is on its way (events belong to its epoch)
    const applied = [];
    for (const e of msg.events || []) {
      if (e.seq <= this.seq) continue; // already have it
      if (e.seq !== this.seq + 1) {
        this.resume(false);
        break;
      }
      this.state = applyEvent(this.state, e, this.me.value);
      this.seq = e.seq;
      applied.push(e);
    }
    if (!applied.length) return;
    this.schedulePublish();
    batch(() => {
      // Events that came together are announced together (a turn and
      // the estimating it opens).
      const said = applied.map((e) => this.noteEvent(e)).filter(Boolean);
      if (said.length) this.announce.value = said.join(' ');
    });
    for (const e of applied) {
      for (const fn of this.listeners) fn(e, this.state);
    }
  }

  // applyTally applies a tally: totals at msg.seq standing for the events
  // msg.from to msg.seq, so a copy anywhere in that range takes them; one
  // further behind has missed events and resumes.
  applyTally(msg) {
    if (!this.state) return; // a snapshot is on its way
    if (msg.seq <= this.seq) return; // already have it
    if (msg.from > this.seq + 1) {
      this.resume(false);
      return;
    }
    this.state = applyTally(this.state, msg, this.me.value);
    this.seq = msg.seq;
    this.schedulePublish();
  }

  // schedulePublish renders soon: a burst of messages (votes, say) is
  // rendered together rather than once per message.
  schedulePublish() {
    if (!this.publishTimer) {
      this.publishTimer = setTimeout(() => {
        this.publishTimer = 0;
        this.publish();
      }, renderEvery);
    }
  }

  // publish hands the pages a new room object so that they render again.
  publish() {
    clearTimeout(this.publishTimer);
    this.publishTimer = 0;
    this.room.value = Object.assign({}, this.state);
  }

  // noteEvent marks fresh reveals and answers what to announce of e ('' for
  // nothing).
  noteEvent(e) {
    if (e.type === 'revealed') {
      const now = Date.now();
      const fresh = Object.assign({}, this.fresh.value);
      const names = [];
      for (const sc of e.scores || []) {
        fresh[`${sc.team}/${e.aspect}`] = now;
        const t = this.state.teams.find((x) => x.id === sc.team);
        const lv = sc.submitted && this.state.model.levels[sc.level - 1];
        names.push(`${t ? t.name : sc.team}: ${lv ? `level ${sc.level}, ${lv.name}` : 'not submitted'}`);
      }
      this.fresh.value = fresh;
      setTimeout(() => this.expireFresh(), freshFor + 50);
      return 'Revealed. ' + names.join('; ');
    } else if (e.type === 'estimates_opened' || e.type === 'estimates_closed') {
      const names = (e.order || []).map((id) => {
        const t = this.state.teams.find((x) => x.id === id);
        return t ? t.name : id;
      });
      return `Estimating ${e.type === 'estimates_opened' ? 'open' : 'closed'} for ${names.join(', ')}.`;
    } else if (e.type === 'turn_started' && e.turn) {
      return `${e.turn.name} has the floor.`;
    } else if (e.type === 'aspect_changed' || e.type === 'started') {
      const a = this.state.model.aspects.find((x) => x.id === e.aspect);
      if (a) return `Now discussing ${a.name}.`;
    }
    return '';
  }

  expireFresh() {
    const now = Date.now();
    const fresh = {};
    for (const [k, t] of Object.entries(this.fresh.value)) {
      if (now - t < freshFor) fresh[k] = t;
    }
    this.fresh.value = fresh;
  }

  // resume asks for what this client missed. force skips the rate limit
  // (a new epoch always needs an answer).
  resume(force) {
    const now = Date.now();
    if (!force && now - this.lastResumeAt < resumeEvery) return;
    if (!this.welcomed) return;
    this.lastResumeAt = now;
    this.resumes = (this.resumes || 0) + 1;
    this.write({ type: 'resume', id: 'resume-' + this.resumes, epoch: this.epoch, seq: this.seq });
  }

  onError(msg) {
    const p = msg.id ? this.pending.get(msg.id) : null;
    if (p && (msg.code === 'rate_limited' || msg.code === 'unavailable') && p.tries < maxRetries) {
      p.tries++;
      const wait = Math.max(250, Math.min(10000, msg.retryAfter || 1000 * p.tries));
      setTimeout(() => {
        if (this.pending.has(msg.id)) this.write(p.msg);
      }, wait);
      return;
    }
    if (p) {
      this.pending.delete(msg.id);
      p.reject(new CommandError(msg.code, msg.message, msg.retryAfter));
      return;
    }
    if (msg.code === 'rate_limited' && msg.id) {
      // A refused resume or ping is the connection's business, not the
      // person's: ask again when the server says (PROTOCOL.md, "resume");
      // a refused ping is followed by the next one anyway.
      if (msg.id.startsWith('resume-')) {
        setTimeout(() => this.resume(true), Math.max(250, msg.retryAfter || 1000));
      }
      return;
    }
    this.notice.value = { text: msg.message || msg.code || 'Something went wrong.', at: Date.now() };
  }

  startPings() {
    clearTimeout(this.pingTimer);
    let n = 0;
    const next = () => {
      if (!this.ws || !this.welcomed) return;
      if (Date.now() - this.lastMessageAt > silentLimit) {
        // Nothing heard for too long: the socket is dead even if the
        // browser has not noticed. Drop it and reconnect.
        const ws = this.ws;
        this.ws = null;
        this.welcomed = false;
        try {
          ws.close(1000, 'no answer');
        } catch (_) {
          // ignore
        }
        this.scheduleReconnect(1006);
        return;
      }
      this.write({ type: 'ping', id: 'p' + n, t: Date.now() });
      n++;
      // Three quick pings measure the clock; then one every pingEvery.
      this.pingTimer = setTimeout(next, n < 3 ? 700 : pingEvery);
    };
    next();
  }

  onPong(msg) {
    const now = Date.now();
    if (typeof msg.t === 'number' && typeof msg.now === 'number') {
      const rtt = Math.max(0, now - msg.t);
      this.samples.push({ rtt, offset: msg.now - (msg.t + rtt / 2) });
      if (this.samples.length > 8) this.samples.shift();
      let best = this.samples[0];
      for (const s of this.samples) if (s.rtt < best.rtt) best = s;
      this.offset = best.offset;
    }
    if (typeof msg.seq === 'number' && this.state && msg.seq > this.seq) {
      // The room is ahead of us. The events may simply still be queued
      // behind this pong; if they have not come in a moment, ask.
      const want = msg.seq;
      setTimeout(() => {
        if (this.seq < want) this.resume(false);
      }, pongGapWait);
    }
  }

  write(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    if (msg.type !== 'hello' && msg.type !== 'ping' && msg.type !== 'resume' && !this.welcomed) return false;
    try {
      this.ws.send(JSON.stringify(msg));
      return true;
    } catch (_) {
      return false;
    }
  }

  // send sends a command and answers a promise of its ack's result; it
  // rejects with a CommandError. While the connection is down the command
  // waits and goes out after the next welcome.
  send(type, fields) {
    const msg = Object.assign({ id: 'c-' + randomId(), type }, fields || {});
    return new Promise((resolve, reject) => {
      this.pending.set(msg.id, { msg, resolve, reject, tries: 0 });
      this.write(msg);
    });
  }

  // act sends a command and shows its error (if any) as a notice. It
  // answers the ack's result, or null after an error.
  async act(type, fields) {
    try {
      return await this.send(type, fields);
    } catch (err) {
      this.notice.value = { text: err.message || String(err), at: Date.now() };
      return null;
    }
  }

  // now is the server's clock in ms.
  now() {
    return Date.now() + this.offset;
  }

  tick() {
    const now = this.now();
    this.clock.value = now;
    const turn = this.state && this.state.turn;
    if (!turn || !turn.endsAt) {
      this.prevRemaining = null;
      return;
    }
    const key = turn.startedAt + '|' + turn.endsAt;
    const remaining = Date.parse(turn.endsAt) - now;
    if (this.prevRemaining && this.prevRemaining.key === key && this.prevRemaining.ms > 0 && remaining <= 0) {
      if (this.opts.onTurnEnd) this.opts.onTurnEnd(turn);
    }
    this.prevRemaining = { key, ms: remaining };
  }
}
