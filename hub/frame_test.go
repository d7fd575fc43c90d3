package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leveling/workshop/room"
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

// TestMixedBatchVotesStayInTally: a batch that holds votes around a
// highlight (as a storm batches them) reaches an attendee as the tally of
// the votes before, the highlight as events, and the vote after in the
// next tally: no vote rides in an events frame to every attendee. The
// facilitator gets all of it as events.
func TestMixedBatchVotesStayInTally(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := startMemHub(t, ctx, func(c *Config) { c.TallyInterval = time.Hour })
	fac, fr := s.connect(t, ctx, map[string]any{"key": s.rm.FacilitatorKey})
	fac.send(map[string]any{"type": "start", "id": "start"})
	fac.send(map[string]any{"type": "ask", "id": "ask", "text": "Which first?"})
	if err := fr.until(ctx, "the acks", func() bool { _, ok := fr.acks["ask"]; return ok }); err != nil {
		t.Fatal(err)
	}
	var voters []*memConn
	for i := range 3 {
		m, _ := s.connect(t, ctx, map[string]any{"name": "Voter " + strconv.Itoa(i)})
		voters = append(voters, m)
	}
	watcher, _ := s.connect(t, ctx, map[string]any{"name": "Watcher"})
	ra := s.actor(t)

	var seqs []uint64 // of the three votes and the highlight, in order
	err := ra.call(ctx, func() {
		var batch []room.Event
		decide := func(actor room.Actor, cmd room.Command) {
			evs, err := room.Decide(ra.state, actor, cmd, time.Now())
			if err == nil {
				err = room.Apply(ra.state, evs)
			}
			if err != nil {
				t.Errorf("%s: %v", cmd.Type, err)
				return
			}
			batch = append(batch, evs...)
			seqs = append(seqs, evs[len(evs)-1].Seq)
		}
		qid := ra.state.Questions[0].ID
		actorOf := func(m *memConn) room.Actor {
			for c := range ra.clients {
				if c.conn == m {
					return c.actor
				}
			}
			t.Fatal("no such client")
			return room.Actor{}
		}
		base := ra.state.Seq
		decide(actorOf(voters[0]), room.Command{Type: "upvote", Question: qid})
		decide(actorOf(voters[1]), room.Command{Type: "upvote", Question: qid})
		decide(room.FacilitatorActor(), room.Command{Type: "highlight", Question: qid})
		decide(actorOf(voters[2]), room.Command{Type: "upvote", Question: qid})
		if err := ra.h.store.Append(ctx, ra.id, base, batch, nil); err != nil {
			t.Errorf("append: %v", err)
			return
		}
		ra.committed(batch, nil)
	})
	if err != nil || len(seqs) != 4 {
		t.Fatalf("the batch: %v (%d commands decided)", err, len(seqs))
	}
	if err := watcher.waitFor(ctx, "the highlight", func() bool {
		return bytes.Contains(bytes.Join(watcher.lines, nil), []byte(`"type":"highlighted"`))
	}); err != nil {
		t.Fatal(err)
	}
	watcher.mu.Lock()
	var got []string
	for _, msg := range watcher.lines {
		for l := range bytes.SplitSeq(msg, []byte("\n")) { // queued frames are written together
			if bytes.HasPrefix(l, []byte(`{"type":"tally"`)) || bytes.HasPrefix(l, []byte(`{"type":"events"`)) {
				got = append(got, string(l))
			}
		}
	}
	got = got[max(len(got)-2, 0):]
	watcher.mu.Unlock()
	if len(got) != 2 || !strings.HasPrefix(got[0], `{"type":"tally","from":`+strconv.FormatUint(seqs[0], 10)+`,"seq":`+strconv.FormatUint(seqs[1], 10)+`,`) ||
		!strings.HasPrefix(got[1], `{"type":"events","events":[{"seq":`+strconv.FormatUint(seqs[2], 10)+`,"type":"highlighted"`) ||
		strings.Contains(got[1], "upvoted") {
		t.Errorf("the watcher's last frames:\n%s\nwant the tally of votes %d-%d, then the highlight %d alone", strings.Join(got, "\n"), seqs[0], seqs[1], seqs[2])
	}
	// The facilitator gets every event, in order (fr checks contiguity).
	if err := fr.waitSeq(ctx, seqs[3]); err != nil {
		t.Fatal(err)
	}
}
