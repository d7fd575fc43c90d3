package hub

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNoteFrameCarriesNoMore: a 100-byte note reaches an attendee as an
// events frame holding the event's own fields and nothing else: no epoch
// (the connection's snapshot gave it) and a time to the millisecond.
func TestNoteFrameCarriesNoMore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := startMemHub(t, ctx, nil)
	fac, fr := s.connect(t, ctx, map[string]any{"key": s.rm.FacilitatorKey})
	att, ar := s.connect(t, ctx, map[string]any{"name": "Ana"})
	text := strings.Repeat("n", 100)
	fac.send(map[string]any{"type": "set_note", "id": "n1", "aspect": "investment", "text": text})
	if err := fr.until(ctx, "the note's ack", func() bool { _, ok := fr.acks["n1"]; return ok }); err != nil {
		t.Fatal(err)
	}
	seq := fr.acks["n1"]
	if err := ar.waitSeq(ctx, seq); err != nil {
		t.Fatal(err)
	}
	att.mu.Lock()
	frame := att.lines[len(att.lines)-1]
	att.mu.Unlock()

	var msg map[string]json.RawMessage
	if err := json.Unmarshal(frame, &msg); err != nil {
		t.Fatal(err)
	}
	if keys := slices.Sorted(maps.Keys(msg)); !slices.Equal(keys, []string{"events", "type"}) {
		t.Errorf("frame fields %v, want events and type: %s", keys, frame)
	}
	var events []struct {
		Seq    uint64    `json:"seq"`
		Type   string    `json:"type"`
		At     time.Time `json:"at"`
		Aspect string    `json:"aspect"`
		Text   string    `json:"text"`
	}
	if err := json.Unmarshal(msg["events"], &events); err != nil || len(events) != 1 {
		t.Fatalf("events %s: %v", msg["events"], err)
	}
	e := events[0]
	if e.Seq != seq || e.Type != "note_set" || e.Aspect != "investment" || e.Text != text {
		t.Errorf("event %+v", e)
	}
	if e.At.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("at %s: finer than a millisecond", e.At.Format(time.RFC3339Nano))
	}
	// The frame is the compact encoding of exactly these fields.
	want := `{"type":"events","events":[{"seq":` + jsonString(e.Seq) + `,"type":"note_set","at":` + jsonString(e.At) +
		`,"aspect":"investment","text":"` + text + `"}]}`
	if string(frame) != want {
		t.Errorf("frame (%d bytes)\n%s\nwant (%d bytes)\n%s", len(frame), frame, len(want), want)
	}
}

func jsonString(v any) string { return string(mustJSON(v)) }
