package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// response is one HTTP answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (r response) String() string {
	if r.err != nil {
		return r.err.Error()
	}
	ct := r.header.Get("Content-Type")
	return fmt.Sprintf("%d %s %s", r.status, ct, string(r.body))
}

// apiError is PROTOCOL.md's REST error body.
type apiError struct {
	Error *struct {
		Code       string   `json:"code"`
		Message    string   `json:"message"`
		RetryAfter *float64 `json:"retryAfter"`
	} `json:"error"`
}

// errorIs answers whether r is status with the error body of code, and the
// message.
func (r response) errorIs(status int, code string) (bool, string) {
	if r.err != nil || r.status != status {
		return false, ""
	}
	var e apiError
	if json.Unmarshal(r.body, &e) != nil || e.Error == nil {
		return false, ""
	}
	return e.Error.Code == code && humane(e.Error.Message), e.Error.Message
}

// request makes one HTTP call from src. body may be nil; a reader that is
// not a *bytes.Reader is sent chunked.
func (w *walker) request(ctx context.Context, src, method, path string, header map[string]string, body io.Reader) response {
	u := *w.cfg.base
	if i := strings.IndexByte(path, '?'); i >= 0 {
		u.Path, u.RawQuery = path[:i], path[i+1:]
	} else {
		u.Path = path
	}
	if strings.Contains(u.Path, "%") { // a path the caller escaped itself
		p, _ := url.PathUnescape(u.Path)
		u.RawPath, u.Path = u.Path, p
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return response{err: err}
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := w.httpClient(src).Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return response{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func (w *walker) get(ctx context.Context, path string) response {
	return w.request(ctx, w.shared(), http.MethodGet, path, nil, nil)
}

// postRoom posts a create request from src with a content type.
func (w *walker) postRoom(ctx context.Context, src, contentType string, body io.Reader) response {
	h := map[string]string{}
	if contentType != "" {
		h["Content-Type"] = contentType
	}
	return w.request(ctx, src, http.MethodPost, "/api/rooms", h, body)
}

// createdRoom is the answer of POST /api/rooms.
type createdRoom struct {
	ID             string `json:"id"`
	Code           string `json:"code"`
	Title          string `json:"title"`
	FacilitatorKey string `json:"facilitatorKey"`
	PresenterKey   string `json:"presenterKey"`
	Teams          []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Key  string `json:"key"`
		Link string `json:"link"`
	} `json:"teams"`
	Links struct {
		Facilitator string `json:"facilitator"`
		Presenter   string `json:"presenter"`
		Join        string `json:"join"`
		Room        string `json:"room"`
		Results     string `json:"results"`
	} `json:"links"`
	QR string `json:"qr"`
}

var (
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	codeRE = regexp.MustCompile(`^[23456789ABCDEFGHJKLMNPQRSTUVWXYZ]{8}$`)
	keyRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{22,}$`) // 128 bits of URL-safe base64 or more
)

// createRoom creates a room and checks the answer's shape; nil when it
// could not.
func (w *walker) createRoom(ctx context.Context, name string, body string) *createdRoom {
	r := w.postRoom(ctx, w.shared(), "application/json", strings.NewReader(body))
	var c createdRoom
	if r.err != nil || r.status != http.StatusCreated || json.Unmarshal(r.body, &c) != nil {
		w.check(name, false, "POST /api/rooms "+body, r.String(), "answers 201 Created with the room")
		return nil
	}
	return &c
}

// restCreate walks "POST /api/rooms" and answers the main room.
func (w *walker) restCreate(ctx context.Context) *createdRoom {
	const says = "answers 201 Created: id, code (8 of 23456789ABCDEFGHJKLMNPQRSTUVWXYZ), keys (>= 128 bits, URL-safe base64), team keys and links, links with keys in the fragment only, qr"
	body := `{"title":"Hostile walk","teams":["Payments","Search"],"model":"pemm"}`
	c := w.createRoom(ctx, "rest/create", body)
	if c == nil {
		return nil
	}
	var problems []string
	want := func(ok bool, what string) {
		if !ok {
			problems = append(problems, what)
		}
	}
	want(uuidRE.MatchString(c.ID), "id is not a uuid")
	want(codeRE.MatchString(c.Code), "code "+c.Code+" is not 8 characters of the alphabet")
	want(c.Title == "Hostile walk", "title not echoed")
	want(keyRE.MatchString(c.FacilitatorKey), "facilitatorKey too short or not URL-safe base64")
	want(keyRE.MatchString(c.PresenterKey), "presenterKey too short or not URL-safe base64")
	want(len(c.Teams) == 2, "want 2 teams")
	linkOK := func(link, path, key string) bool {
		u, err := url.Parse(link)
		if err != nil || !strings.HasSuffix(u.Path, path) || u.RawQuery != "" {
			return false
		}
		if key == "" {
			return u.Fragment == ""
		}
		return u.Fragment == "key="+key && !strings.Contains(u.Path, key)
	}
	for i, t := range c.Teams {
		want(t.ID != "" && t.Name == []string{"Payments", "Search"}[min(i, 1)], fmt.Sprintf("teams[%d] id/name", i))
		want(keyRE.MatchString(t.Key), fmt.Sprintf("teams[%d].key too short", i))
		want(linkOK(t.Link, "/team/"+c.ID, t.Key), fmt.Sprintf("teams[%d].link %s", i, t.Link))
	}
	want(linkOK(c.Links.Facilitator, "/facilitator/"+c.ID, c.FacilitatorKey), "links.facilitator "+c.Links.Facilitator)
	want(linkOK(c.Links.Presenter, "/presenter/"+c.ID, c.PresenterKey), "links.presenter "+c.Links.Presenter)
	want(linkOK(c.Links.Join, "/j/"+c.Code, ""), "links.join "+c.Links.Join)
	want(linkOK(c.Links.Room, "/room/"+c.ID, ""), "links.room "+c.Links.Room)
	want(linkOK(c.Links.Results, "/results/"+c.ID, ""), "links.results "+c.Links.Results)
	want(c.QR == "/api/rooms/"+c.ID+"/qr.svg", "qr "+c.QR)
	w.check("rest/create", len(problems) == 0, "POST /api/rooms "+body, fmt.Sprintf("201 id=%s code=%s problems=%v", c.ID, c.Code, problems), says)

	// absent model: PEMM too
	if c2 := w.createRoom(ctx, "rest/create-default-model", `{"title":"Default model","teams":["A"]}`); c2 != nil {
		v := w.get(ctx, "/api/rooms/"+c2.ID)
		var room struct {
			Model struct {
				ID      string            `json:"id"`
				Aspects []json.RawMessage `json:"aspects"`
				Levels  []json.RawMessage `json:"levels"`
			} `json:"model"`
		}
		_ = json.Unmarshal(v.body, &room)
		w.check("rest/create-default-model", room.Model.ID == "pemm" && len(room.Model.Aspects) == 5 && len(room.Model.Levels) == 4,
			`POST /api/rooms without "model", then GET /api/rooms/{id}`, fmt.Sprintf("model id %q, %d aspects, %d levels", room.Model.ID, len(room.Model.Aspects), len(room.Model.Levels)),
			`model absent or "pemm" uses the built-in PEMM (5 aspects, 4 levels)`)
	}
	w.restCustomModel(ctx)
	w.restBadCreate(ctx)
	return c
}

// customModel answers a custom model's JSON with aspects of cells cells
// each and levels levels, for edit to change.
func customModel(aspects, levels, cells int) map[string]any {
	var ls []any
	for i := range levels {
		ls = append(ls, map[string]any{"name": fmt.Sprintf("L%d", i+1), "description": "level"})
	}
	var as []any
	for a := range aspects {
		var cs []any
		for i := range cells {
			cs = append(cs, map[string]any{"label": fmt.Sprintf("cell %d", i+1)})
		}
		as = append(as, map[string]any{"id": fmt.Sprintf("a%d", a), "name": fmt.Sprintf("Aspect %d", a), "question": "?", "cells": cs})
	}
	return map[string]any{"name": "Our model", "levels": ls, "aspects": as}
}

func (w *walker) restCustomModel(ctx context.Context) {
	valid := `{"title":"Custom","teams":["A","B"],"model":{"name":"Our model","levels":[{"name":"Low","description":"slow"},{"name":"High"}],` +
		`"aspects":[{"id":"ci","name":"CI","question":"How do you build?","cells":[{"label":"Manual"},{"label":"Automated"}]}]}}`
	if c := w.createRoom(ctx, "rest/custom-model", valid); c != nil {
		v := w.get(ctx, "/api/rooms/"+c.ID)
		var room struct {
			Model struct {
				Name   string `json:"name"`
				Levels []struct {
					Name        string `json:"name"`
					Description string `json:"description"`
				} `json:"levels"`
				Aspects []struct {
					ID    string `json:"id"`
					Cells []struct {
						Label string `json:"label"`
					} `json:"cells"`
				} `json:"aspects"`
			} `json:"model"`
		}
		_ = json.Unmarshal(v.body, &room)
		m := room.Model
		ok := m.Name == "Our model" && len(m.Levels) == 2 && m.Levels[0].Name == "Low" && m.Levels[0].Description == "slow" &&
			len(m.Aspects) == 1 && m.Aspects[0].ID == "ci" && len(m.Aspects[0].Cells) == 2 && m.Aspects[0].Cells[1].Label == "Automated"
		w.check("rest/custom-model", ok, "POST /api/rooms with a 1-aspect, 2-level model, then GET /api/rooms/{id}", shorten(string(v.body)), "an object is a custom model; the room's model is it")
	}

	long := func(n int) string { return strings.Repeat("x", n) }
	type tc struct {
		name, field string
		exact       string
		edit        func(m map[string]any)
	}
	aspect0 := func(m map[string]any) map[string]any { return m["aspects"].([]any)[0].(map[string]any) }
	cases := []tc{
		{"cells-per-level", "aspects[0].cells", "aspects[0].cells: want one cell per level (2), got 3", func(m map[string]any) {
			a := aspect0(m)
			a["cells"] = append(a["cells"].([]any), map[string]any{"label": "extra"})
		}},
		{"no-aspects", "aspects", "", func(m map[string]any) { m["aspects"] = []any{} }},
		{"13-aspects", "aspects", "", func(m map[string]any) {
			m["aspects"] = customModel(13, 2, 2)["aspects"]
		}},
		{"1-level", "levels", "", func(m map[string]any) {
			n := customModel(1, 1, 1)
			m["levels"], m["aspects"] = n["levels"], n["aspects"]
		}},
		{"11-levels", "levels", "", func(m map[string]any) {
			n := customModel(1, 11, 11)
			m["levels"], m["aspects"] = n["levels"], n["aspects"]
		}},
		{"label-61", "aspects[0].cells[0].label", "", func(m map[string]any) {
			aspect0(m)["cells"].([]any)[0].(map[string]any)["label"] = long(61)
		}},
		{"level-name-61", "levels[0].name", "", func(m map[string]any) {
			m["levels"].([]any)[0].(map[string]any)["name"] = long(61)
		}},
		{"level-description-301", "levels[0].description", "", func(m map[string]any) {
			m["levels"].([]any)[0].(map[string]any)["description"] = long(301)
		}},
		{"cell-description-301", "aspects[0].cells[0].description", "", func(m map[string]any) {
			aspect0(m)["cells"].([]any)[0].(map[string]any)["description"] = long(301)
		}},
	}
	src := w.dedicated(addrBadCreate)
	for _, c := range cases {
		m := customModel(1, 2, 2)
		c.edit(m)
		body, _ := json.Marshal(map[string]any{"title": "Bad model", "teams": []string{"A"}, "model": m})
		r := w.postRoom(ctx, src, "application/json", bytes.NewReader(body))
		ok, message := r.errorIs(http.StatusBadRequest, "invalid")
		if c.exact != "" {
			ok = ok && message == c.exact
		} else {
			ok = ok && namesField(message, c.field)
		}
		says := "400 invalid; errors name the field (" + c.field + ")"
		if c.exact != "" {
			says = "400 invalid, for example `" + c.exact + "`"
		}
		w.check("rest/custom-model-"+c.name, ok, "POST /api/rooms "+shorten(string(body)), r.String(), says)
	}
}

// restBadCreate sends what a careless or hostile client would, from a
// source address of its own: PROTOCOL.md says a refused request costs
// nothing of the address's room-creation budget, and restCreateBudget
// then spends that budget from the same address.
func (w *walker) restBadCreate(ctx context.Context) {
	src := w.dedicated(addrBadCreate)
	valid := `{"title":"T","teams":["A"]}`
	const says415 = "anything but Content-Type: application/json (charset, if any, utf-8), or no Content-Type, answers 415 unsupported_media_type and creates nothing"
	cases := []struct {
		name, contentType string
		body              io.Reader
		shown             string
		status            int
		code, field       string
		says              string
	}{
		{"missing-title", "application/json", strings.NewReader(`{"teams":["A"]}`), `{"teams":["A"]}`, 400, "invalid", "title",
			"400 invalid, `title: required`"},
		{"malformed-json", "application/json", strings.NewReader(`{"title":`), `{"title":`, 400, "invalid", "", "400 invalid: malformed input"},
		{"unknown-field", "application/json", strings.NewReader(`{"title":"T","teams":["A"],"colour":"red"}`), `{"title":"T","teams":["A"],"colour":"red"}`, 400, "invalid", "colour",
			"an unknown field answers 400 invalid; errors name the field"},
		{"trailing-data", "application/json", strings.NewReader(valid + `{"title":"again"}`), valid + `{"title":"again"}`, 400, "invalid", "",
			"the body is one JSON object: anything but white space after it answers 400 invalid"},
		{"wrong-content-type", "text/plain", strings.NewReader(valid), "Content-Type: text/plain " + valid, 415, "unsupported_media_type", "", says415},
		{"form-content-type", "application/x-www-form-urlencoded", strings.NewReader(valid), "Content-Type: application/x-www-form-urlencoded " + valid, 415, "unsupported_media_type", "",
			says415 + ", so an HTML form on another site cannot create rooms"},
		{"no-content-type", "", strings.NewReader(valid), "no Content-Type " + valid, 415, "unsupported_media_type", "", says415},
		{"latin1-charset", "application/json; charset=iso-8859-1", strings.NewReader(valid), "Content-Type: application/json; charset=iso-8859-1 " + valid, 415, "unsupported_media_type", "", says415},
		{"oversized-content-length", "application/json", bytes.NewReader(createBodyOf(bigBody)), fmt.Sprintf("%d bytes with Content-Length", bigBody), 413, "too_large", "",
			"the body is at most 128 KiB: a larger one answers 413 too_large"},
		{"oversized-chunked", "application/json", io.MultiReader(bytes.NewReader(createBodyOf(bigBody))), fmt.Sprintf("%d bytes chunked", bigBody), 413, "too_large", "",
			"413 too_large whether it says its Content-Length or is sent chunked"},
		{"128KiB-plus-1", "application/json", bytes.NewReader(createBodyOf(maxCreateBody + 1)), fmt.Sprintf("%d bytes (128 KiB + 1) with Content-Length", maxCreateBody+1), 413, "too_large", "",
			"the body is at most 128 KiB: a larger one answers 413 too_large"},
		{"128KiB-exactly", "application/json", bytes.NewReader(createBodyOf(maxCreateBody)), fmt.Sprintf("%d bytes (128 KiB, a title far too long)", maxCreateBody), 400, "invalid", "title",
			"at most 128 KiB is read: this one is judged on its content (400 invalid, naming title)"},
	}
	for _, c := range cases {
		r := w.postRoom(ctx, src, c.contentType, c.body)
		ok, message := r.errorIs(c.status, c.code)
		if c.field != "" {
			ok = ok && namesField(message, c.field)
		}
		if c.name == "missing-title" {
			ok = ok && message == "title: required"
		}
		w.check("rest/create-"+c.name, ok, "POST /api/rooms "+c.shown, r.String(), c.says)
	}
	for _, c := range []struct{ name, contentType, body, says string }{
		{"utf8-charset", "application/json; charset=utf-8", valid, "Content-Type: application/json (a charset parameter, if any, must be utf-8)"},
		{"trailing-space", "application/json", valid + "\n \t\n", "anything but white space after the object answers 400 (white space is fine)"},
	} {
		r := w.postRoom(ctx, w.shared(), c.contentType, strings.NewReader(c.body))
		w.check("rest/create-"+c.name, r.err == nil && r.status == http.StatusCreated, "POST /api/rooms Content-Type: "+c.contentType+" "+c.body, shorten(r.String()), c.says)
	}
}

// restCreateBudget spends the bad-create address's whole room budget
// (-room-burst): all of it must be there after the refused requests
// above, and one more is refused with 429 rate_limited.
func (w *walker) restCreateBudget(ctx context.Context) {
	const name = "rest/create-rate-limited"
	src := w.dedicated(addrBadCreate)
	if w.cfg.roomBurst <= 0 || src == "" {
		w.skip(name, "needs -room-burst (the server's configured burst) and -source-addrs >= 10")
		return
	}
	body := `{"title":"Budget","teams":["A"]}`
	for i := 1; i <= w.cfg.roomBurst+1; i++ {
		r := w.postRoom(ctx, src, "application/json", strings.NewReader(body))
		if i <= w.cfg.roomBurst {
			if r.err != nil || r.status != http.StatusCreated {
				w.check("rest/create-refused-costs-nothing", false, fmt.Sprintf("POST /api/rooms number %d of %d from %s, after the refused requests above from it", i, w.cfg.roomBurst, src),
					r.String(), "only a room actually created counts: a refused request (415, 413, 400) costs nothing")
				return
			}
			continue
		}
		w.check("rest/create-refused-costs-nothing", true, fmt.Sprintf("%d POST /api/rooms from %s after the refused requests above from it", w.cfg.roomBurst, src),
			fmt.Sprintf("%d × 201", w.cfg.roomBurst), "only a room actually created counts: a refused request (415, 413, 400) costs nothing")
		ok, _ := r.errorIs(http.StatusTooManyRequests, "rate_limited")
		w.check(name, ok && retryAfterOK(r), fmt.Sprintf("POST /api/rooms number %d from %s (burst %d)", i, src, w.cfg.roomBurst),
			r.String()+" Retry-After "+fmt.Sprintf("%q", r.header.Get("Retry-After")),
			"each client address may create 20 rooms at once (times WORKSHOP_LIMIT_SCALE); past that, 429 rate_limited with Retry-After, and retryAfter (ms, at least 1) in the body")
	}
}

// retryAfterOK answers whether a REST 429 carries a Retry-After header in
// whole seconds and a body retryAfter of whole ms, at least 1.
func retryAfterOK(r response) bool {
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	var e apiError
	_ = json.Unmarshal(r.body, &e)
	return err == nil && secs >= 1 && e.Error != nil && e.Error.RetryAfter != nil && wholeAtLeast1(*e.Error.RetryAfter)
}

// wholeAtLeast1 is PROTOCOL.md's retryAfter: a whole number of ms, at least 1.
func wholeAtLeast1(ms float64) bool { return ms >= 1 && ms == float64(int64(ms)) }

// createBodyOf is a create request of exactly n bytes: valid JSON whose
// title makes up the size.
func createBodyOf(n int) []byte {
	const head, tail = `{"title":"`, `","teams":["A"]}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

// restRead walks GET /api/rooms/{id}, /results, /qr.svg and /export.
func (w *walker) restRead(ctx context.Context, c *createdRoom) {
	r := w.get(ctx, "/api/rooms/"+c.ID)
	var room map[string]json.RawMessage
	ok := r.err == nil && r.status == 200 && json.Unmarshal(r.body, &room) == nil
	var got []string
	for _, f := range []string{"id", "title", "code", "createdAt", "model", "teams", "phase", "agenda", "aspect", "queues", "spoken", "turn", "hands", "scores", "questions", "highlighted", "approveFirst", "reportLimit", "notes", "actions", "secrets"} {
		if _, has := room[f]; !has {
			got = append(got, "missing "+f)
		}
	}
	var phase string
	_ = json.Unmarshal(room["phase"], &phase)
	w.check("rest/get-room", ok && len(got) == 0 && phase == "lobby", "GET /api/rooms/"+c.ID, fmt.Sprintf("%d, phase %q %v", r.status, phase, got),
		"the public view of the room: the fields of \"Room state\"")
	var secrets map[string]json.RawMessage
	_ = json.Unmarshal(room["secrets"], &secrets)
	var extra []string
	for k := range secrets {
		if k != "generation" {
			extra = append(extra, k)
		}
	}
	w.check("rest/get-room-secrets", ok && len(extra) == 0 && secrets != nil, "GET /api/rooms/"+c.ID, "secrets = "+string(room["secrets"]),
		"`secrets`: `{generation}` only: key hashes never leave the server")
	leaked := []string{}
	for _, k := range c.allKeys() {
		if bytes.Contains(r.body, []byte(k)) {
			leaked = append(leaked, k[:6]+"…")
		}
	}
	w.check("rest/get-room-no-keys", ok && len(leaked) == 0, "GET /api/rooms/"+c.ID, fmt.Sprintf("keys in the body: %v", leaked), "keys never leave the server toward the public")

	for _, p := range []string{"/api/rooms/not-a-uuid", "/api/rooms/00000000-0000-4000-8000-000000000000", "/api/rooms/00000000-0000-4000-8000-000000000000/results",
		"/api/rooms/00000000-0000-4000-8000-000000000000/qr.svg"} {
		r := w.get(ctx, p)
		ok, _ := r.errorIs(404, "not_found")
		w.check("rest/get-unknown-room", ok, "GET "+p, r.String(), "404 not_found if there is no such room")
	}

	r = w.get(ctx, "/api/rooms/"+c.ID+"/results")
	var js any
	w.check("rest/results", r.err == nil && r.status == 200 && strings.HasPrefix(r.header.Get("Content-Type"), "application/json") && json.Unmarshal(r.body, &js) == nil,
		"GET /api/rooms/{id}/results (no key)", r.String(), "the results as JSON, open to anyone with the room link")

	r = w.get(ctx, "/api/rooms/"+c.ID+"/qr.svg")
	w.check("rest/qr", r.err == nil && r.status == 200 && strings.HasPrefix(r.header.Get("Content-Type"), "image/svg+xml") && bytes.Contains(r.body, []byte("<svg")),
		"GET /api/rooms/{id}/qr.svg", fmt.Sprintf("%d %s, %d bytes", r.status, r.header.Get("Content-Type"), len(r.body)), "a QR code (SVG) of the room's join link")

	exp := func(key, format string) response {
		h := map[string]string{}
		if key != "" {
			h["Authorization"] = "Bearer " + key
		}
		return w.request(ctx, w.shared(), http.MethodGet, "/api/rooms/"+c.ID+"/export?format="+format, h, nil)
	}
	r = exp("", "csv")
	ok, _ = r.errorIs(401, "unauthorized")
	w.check("rest/export-no-key", ok, "GET /api/rooms/{id}/export?format=csv without Authorization", r.String(), "401 unauthorized without a valid key")
	r = exp("not-a-key-"+randHex(16), "csv")
	ok, _ = r.errorIs(401, "unauthorized")
	w.check("rest/export-wrong-key", ok, "GET …/export?format=csv with Authorization: Bearer <random>", r.String(), "401 unauthorized without a valid key")
	for _, k := range []struct{ name, key string }{{"presenter", c.PresenterKey}, {"team", c.Teams[0].Key}} {
		r = exp(k.key, "csv")
		ok401, _ := r.errorIs(401, "unauthorized")
		ok403, _ := r.errorIs(403, "forbidden")
		w.check("rest/export-"+k.name+"-key", ok401 || ok403, "GET …/export?format=csv with the "+k.name+" key", r.String(),
			"facilitator only: 401 unauthorized without a valid (facilitator) key (403 forbidden, the role may not, is read as fair too)")
	}
	r = exp(c.FacilitatorKey, "xml")
	ok, _ = r.errorIs(400, "invalid")
	w.check("rest/export-bad-format", ok, "GET …/export?format=xml with the facilitator key", r.String(), "400 invalid for another format")
	for _, f := range []struct{ format, ctype, ext string }{{"csv", "text/csv", ".csv"}, {"json", "application/json", ".json"}, {"md", "text/markdown", ".md"}} {
		r = exp(c.FacilitatorKey, f.format)
		cd := r.header.Get("Content-Disposition")
		ok := r.err == nil && r.status == 200 && strings.HasPrefix(r.header.Get("Content-Type"), f.ctype) &&
			strings.HasPrefix(cd, "attachment") && strings.Contains(cd, "filename=") && strings.Contains(cd, f.ext)
		if f.format == "json" {
			ok = ok && json.Unmarshal(r.body, &js) == nil
		}
		w.check("rest/export-"+f.format, ok, "GET …/export?format="+f.format+" with the facilitator key",
			fmt.Sprintf("%d Content-Type %q Content-Disposition %q", r.status, r.header.Get("Content-Type"), cd),
			"answers "+f.ctype+" with a Content-Disposition: attachment file name")
	}
}

// allKeys answers every key the room was created with.
func (c *createdRoom) allKeys() []string {
	ks := []string{c.FacilitatorKey, c.PresenterKey}
	for _, t := range c.Teams {
		ks = append(ks, t.Key)
	}
	return ks
}

// restJoin walks GET /api/join/{code} and GET /j/{code}.
func (w *walker) restJoin(ctx context.Context, c *createdRoom) {
	forms := []string{c.Code, strings.ToLower(c.Code), c.Code[:4] + "-" + c.Code[4:], strings.ToLower(c.Code[:4]) + "-" + c.Code[4:],
		url.PathEscape(" " + c.Code[:4] + " " + c.Code[4:] + " ")}
	for _, f := range forms {
		r := w.get(ctx, "/api/join/"+f)
		var j struct{ ID, Title, Room string }
		ok := r.err == nil && r.status == 200 && json.Unmarshal(r.body, &j) == nil && j.ID == c.ID && j.Title == c.Title &&
			strings.HasSuffix(j.Room, "/room/"+c.ID)
		w.check("rest/join", ok, "GET /api/join/"+f, r.String(), `{"id","title","room"}; lookups ignore case, spaces and dashes`)
	}
	r := w.get(ctx, "/api/join/"+unknownCode(c.Code))
	ok, _ := r.errorIs(404, "not_found")
	w.check("rest/join-unknown", ok, "GET /api/join/"+unknownCode(c.Code), r.String(), "a code that does not exist answers 404 not_found")

	r = w.get(ctx, "/j/"+c.Code)
	w.check("rest/j-redirect", r.err == nil && r.status == 303 && r.header.Get("Location") == "/room/"+c.ID, "GET /j/"+c.Code,
		fmt.Sprintf("%d Location %q", r.status, r.header.Get("Location")), "redirects (303) to /room/{id}")
	r = w.get(ctx, "/j/"+strings.ToLower(c.Code[:4])+"-"+c.Code[4:])
	w.check("rest/j-redirect-dashes", r.err == nil && r.status == 303 && r.header.Get("Location") == "/room/"+c.ID, "GET /j/"+strings.ToLower(c.Code[:4])+"-"+c.Code[4:],
		fmt.Sprintf("%d Location %q", r.status, r.header.Get("Location")), "redirects (303) to /room/{id}; lookups ignore case and dashes")
	r = w.get(ctx, "/j/"+unknownCode(c.Code))
	w.check("rest/j-unknown", r.err == nil && r.status == 303 && r.header.Get("Location") == "/?error=code", "GET /j/"+unknownCode(c.Code),
		fmt.Sprintf("%d Location %q", r.status, r.header.Get("Location")), "redirects (303) to /?error=code (no such code)")
}

// unknownCode answers a well-formed code that is not code (one in 2^40 it
// is another room's).
func unknownCode(code string) string {
	if code == "ZZZZZZZZ" {
		return "YYYYYYYY"
	}
	return "ZZZZZZZZ"
}

// restProbes walks /healthz, /readyz and /metrics.
func (w *walker) restProbes(ctx context.Context) {
	r := w.get(ctx, "/healthz")
	w.check("rest/healthz", r.err == nil && r.status == 200, "GET /healthz", r.String(), "200 while the process runs")
	r = w.get(ctx, "/readyz")
	w.check("rest/readyz", r.err == nil && r.status == 200 && readyBodyOK(r), "GET /readyz", r.String(),
		"200 {\"status\":\"ready\"} when the store answers and the server is not draining")
	r = w.get(ctx, "/metrics")
	w.check("rest/metrics", r.err == nil && r.status == 200 && strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") &&
		bytes.Contains(r.body, []byte("# TYPE ")), "GET /metrics", fmt.Sprintf("%d %s, %d bytes", r.status, r.header.Get("Content-Type"), len(r.body)), "Prometheus text")
}

// readyBodyOK answers whether a /readyz body is exactly PROTOCOL.md's:
// {"status":"ready"} with 200, {"status":"not ready"} with 503.
func readyBodyOK(r response) bool {
	var v map[string]any
	if json.Unmarshal(r.body, &v) != nil || len(v) != 1 {
		return false
	}
	want := map[int]string{200: "ready", 503: "not ready"}[r.status]
	return v["status"] == want && want != ""
}
