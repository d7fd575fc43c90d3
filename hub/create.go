package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/leveling/workshop/room"
)

// CreateRequest is the body of POST /api/rooms.
type CreateRequest struct {
	Title string          `json:"title"`
	Teams []string        `json:"teams"`
	Model json.RawMessage `json:"model,omitempty"`
}

// CreatedRoom is what creating a room answers: the only time keys are
// shown in plain text.
type CreatedRoom struct {
	ID             string        `json:"id"`
	Code           string        `json:"code"`
	Title          string        `json:"title"`
	FacilitatorKey string        `json:"facilitatorKey"`
	PresenterKey   string        `json:"presenterKey"`
	Teams          []CreatedTeam `json:"teams"`
	Links          Links         `json:"links"`
	QR             string        `json:"qr"`
}

// CreatedTeam is one team's key and link.
type CreatedTeam struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Key  string `json:"key"`
	Link string `json:"link"`
}

// Links are a room's links; keys ride in the fragment.
type Links struct {
	Facilitator string `json:"facilitator"`
	Presenter   string `json:"presenter"`
	Join        string `json:"join"`
	Room        string `json:"room"`
	Results     string `json:"results"`
}

// parseModel resolves the model field of a create request.
func parseModel(raw json.RawMessage) (room.Model, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" || s == `"pemm"` {
		return room.PEMM(), nil
	}
	if strings.HasPrefix(s, `"`) {
		return room.Model{}, room.Errorf(room.EINVALID, `model: use "pemm" or a model object`)
	}
	return room.ParseModel(raw)
}

// CreateRoom validates req and stores a new room with fresh keys. base is
// the public URL the links start with.
func (h *Hub) CreateRoom(ctx context.Context, req CreateRequest, base string) (*CreatedRoom, error) {
	model, err := parseModel(req.Model)
	if err != nil {
		return nil, err
	}
	facKey := newKey()
	presKey := deriveKey(facKey, presenterLabel())
	teamKeys := make([]string, len(req.Teams))
	sec := room.Secrets{
		FacilitatorKeyHash: hashKey(facKey),
		PresenterKeyHash:   hashKey(presKey),
		TeamKeyHashes:      map[string]string{},
		ParticipantSecret:  newKey(),
	}
	for i := range req.Teams {
		id := room.TeamID(i + 1) // the id room.Create gives the team
		teamKeys[i] = deriveKey(facKey, teamLabel(id))
		sec.TeamKeyHashes[id] = hashKey(teamKeys[i])
	}
	for attempt := 0; ; attempt++ {
		id, code := uuid.NewString(), newJoinCode()
		events, err := room.Create(room.CreateParams{
			ID: id, Code: code, Title: req.Title, Model: model, TeamNames: req.Teams,
			Secrets: sec, Now: h.cfg.Now(),
		})
		if err != nil {
			return nil, err
		}
		_, err = h.store.Create(ctx, id, code, events)
		if errors.Is(err, ErrRoomExists) && attempt < 5 {
			continue // a code collision: 1 in 2^40 per room; draw again
		}
		if err != nil {
			return nil, fmt.Errorf("hub: create room: %w", err)
		}
		st := events[0].Room
		out := &CreatedRoom{
			ID: id, Code: code, Title: st.Title, FacilitatorKey: facKey, PresenterKey: presKey,
			Links: Links{
				Facilitator: base + "/facilitator/" + id + "#key=" + facKey,
				Presenter:   base + "/presenter/" + id + "#key=" + presKey,
				Join:        base + "/j/" + code,
				Room:        base + "/room/" + id,
				Results:     base + "/results/" + id,
			},
			QR: "/api/rooms/" + id + "/qr.svg",
		}
		for i, t := range st.Teams {
			out.Teams = append(out.Teams, CreatedTeam{ID: t.ID, Name: t.Name, Key: teamKeys[i], Link: base + "/team/" + id + "#key=" + teamKeys[i]})
		}
		h.log.Info("room created", "room", id, "teams", len(st.Teams), "model", model.ID)
		return out, nil
	}
}

// LoadRoom returns a room's current state from the store.
func (h *Hub) LoadRoom(ctx context.Context, id string) (*room.State, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, room.Errorf(room.ENOTFOUND, "room not found")
	}
	st, _, err := h.store.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	return st, nil
}
