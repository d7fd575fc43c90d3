package hub

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/leveling/workshop/room"
)

// FuzzDecodeClientMessage: decoding any frame never panics, respects the
// size limit, and what decodes is stable through encode and decode again.
func FuzzDecodeClientMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":"hello","key":"k","epoch":"e","seq":3}`,
		`{"type":"hello","name":"Ana"}`,
		`{"type":"hello","participant":"p_1","token":"t","name":"Ana"}`,
		`{"type":"resume","epoch":"e","seq":9}`,
		`{"type":"ping","id":"p","t":1732488000000}`,
		`{"id":"c1","type":"submit","aspect":"investment","level":3,"rationale":"because"}`,
		`{"id":"c2","type":"set_queue","order":["t2","t1"]}`,
		`{"id":"c3","type":"ask","text":"why?","anonymous":true}`,
		`{"id":"c4","type":"answer","question":"q1","on":true}`,
		`{"type":"ask","id":"x1","text":`,
		`[1,2,3]`,
		`{"type":"make_me_admin","id":"x3"}`,
		`{"type":"ask","id":"x2","text":"hi","admin":true}`,
		`{"id":"","type":"ask"}`,
		"{\"type\":\"ask\",\"id\":\"x\",\"text\":\"\xff\"}",
		`{"type":"hello"} {"type":"hello"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeClientMessage(data, defaultClientMessageBytes)
		if err != nil {
			if room.ErrorCode(err) != room.EINVALID {
				t.Fatalf("decode error with code %q: %v", room.ErrorCode(err), err)
			}
			return
		}
		if len(data) > defaultClientMessageBytes {
			t.Fatalf("accepted %d bytes", len(data))
		}
		if m.Type == "" || len(m.ID) > maxCommandIDLen {
			t.Fatalf("accepted %+v", m)
		}
		// Encode the decoded message the way a client would and decode it
		// again: the same message.
		flat := map[string]any{}
		b, _ := json.Marshal(m.Command)
		_ = json.Unmarshal(b, &flat)
		for k, v := range map[string]any{"id": m.ID, "key": m.Key, "token": m.Token, "epoch": m.Epoch, "seq": m.Seq, "t": m.T} {
			flat[k] = v
		}
		b2, err := json.Marshal(flat)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeClientMessage(b2, defaultClientMessageBytes)
		if err != nil {
			if len(b2) > defaultClientMessageBytes {
				return // escaping grew it past the limit
			}
			t.Fatalf("re-decode of %s: %v", b2, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("unstable:\n%+v\n%+v", m, m2)
		}
	})
}

// FuzzCreateRequest: any body of POST /api/rooms is decoded, validated and
// either refused with a clear error or turned into a valid room; a model
// that is accepted survives encode and parse again unchanged.
func FuzzCreateRequest(f *testing.F) {
	pemm, _ := json.Marshal(room.PEMM())
	for _, seed := range []string{
		`{"title":"Q3","teams":["A","B"]}`,
		`{"title":"Q3","teams":["A","B"],"model":"pemm"}`,
		`{"title":"Q3","teams":["A"],"model":` + string(pemm) + `}`,
		`{"title":"x","teams":["a"],"model":{"name":"m","levels":[{"name":"a"},{"name":"b"}],"aspects":[{"name":"CI","cells":[{"label":"x"},{"label":"y"}]}]}}`,
		`{"title":"","teams":[]}`,
		`{"title":"x","teams":["a","a"]}`,
		`{"title":"x","teams":["a"],"model":"other"}`,
		`{"title":"x","teams":["a"],"model":{"levels":[]}}`,
		`{"title":"x","teams":["a"],"extra":1}`,
		`{"title":`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req CreateRequest
		if err := jsonDecoder(bytes.NewReader(data)).Decode(&req); err != nil {
			return
		}
		model, err := parseModel(req.Model)
		if err != nil {
			if room.ErrorCode(err) != room.EINVALID || room.ErrorMessage(err) == "" {
				t.Fatalf("model error %v", err)
			}
			return
		}
		if err := model.Validate(); err != nil {
			t.Fatalf("parsed model does not validate: %v", err)
		}
		b, _ := json.Marshal(model)
		again, err := room.ParseModel(b)
		if err != nil || !reflect.DeepEqual(model, again) {
			t.Fatalf("model unstable: %v", err)
		}
		evs, err := room.Create(room.CreateParams{ID: "r", Code: "ABCDEFGH", Title: req.Title, Model: model, TeamNames: req.Teams})
		if err != nil {
			if room.ErrorCode(err) != room.EINVALID {
				t.Fatalf("create error %v", err)
			}
			return
		}
		st := evs[0].Room
		if len(st.Teams) != len(req.Teams) || strings.TrimSpace(st.Title) == "" {
			t.Fatalf("created %+v from %+v", st, req)
		}
	})
}
