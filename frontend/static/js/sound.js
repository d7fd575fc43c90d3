// sound.js: a soft two-note chime (WebAudio, no audio file) for the end of
// a speaking turn. Browsers only let a page make sound after the user has
// interacted with it, so the audio context is created on the first click or
// key press.

import { prefs } from './lib.js';

let ctx = null;

function unlock() {
  const AC = window.AudioContext || window.webkitAudioContext;
  if (!AC) return;
  try {
    if (!ctx) ctx = new AC();
    if (ctx.state === 'suspended') ctx.resume();
  } catch (_) {
    ctx = null;
  }
}

// armSound prepares the audio context on the first user gesture.
export function armSound() {
  const once = () => {
    unlock();
    window.removeEventListener('pointerdown', once, true);
    window.removeEventListener('keydown', once, true);
  };
  window.addEventListener('pointerdown', once, true);
  window.addEventListener('keydown', once, true);
}

// chime plays the end-of-turn sound unless muted.
export function chime() {
  if (prefs.muted.value) return;
  unlock();
  if (!ctx || ctx.state !== 'running') return;
  const t0 = ctx.currentTime;
  for (const [i, freq] of [[0, 660], [1, 880]]) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = freq;
    const start = t0 + i * 0.18;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.18, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.45);
    osc.connect(gain).connect(ctx.destination);
    osc.start(start);
    osc.stop(start + 0.5);
  }
}
