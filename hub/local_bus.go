package hub

import (
	"context"
	"sync"
)

// LocalBus is the in-process Bus of a single instance: delivery is a
// function call, so nothing is ever lost and Resync is never needed.
type LocalBus struct {
	mu     sync.RWMutex
	subs   map[string]map[*localSub]struct{}
	closed bool
}

type localSub struct{ s Subscriber }

var _ Bus = (*LocalBus)(nil)

// NewLocalBus returns an empty in-process bus.
func NewLocalBus() *LocalBus {
	return &LocalBus{subs: map[string]map[*localSub]struct{}{}}
}

// Subscribe registers sub for roomID.
func (b *LocalBus) Subscribe(_ context.Context, roomID string, sub Subscriber) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrUnavailable
	}
	ls := &localSub{s: sub}
	if b.subs[roomID] == nil {
		b.subs[roomID] = map[*localSub]struct{}{}
	}
	b.subs[roomID][ls] = struct{}{}
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			delete(b.subs[roomID], ls)
			if len(b.subs[roomID]) == 0 {
				delete(b.subs, roomID)
			}
		})
	}, nil
}

// Publish delivers m to the room's subscribers.
func (b *LocalBus) Publish(_ context.Context, m Message) error {
	b.deliver(m)
	return nil
}

// deliver calls Handle on every subscriber of m.Room. Handle never blocks.
func (b *LocalBus) deliver(m Message) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for ls := range b.subs[m.Room] {
		ls.s.Handle(m)
	}
}

// Close drops every subscription.
func (b *LocalBus) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.subs = map[string]map[*localSub]struct{}{}
	return nil
}
