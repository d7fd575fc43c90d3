package redis

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// Redis key layout. Every key of a room carries the room id as its hash tag,
// so a room's keys and its channel live in one Cluster slot and one Lua
// script can touch them all. <p> is the KeyPrefix.
//
//	<p>room:{<id>}:seq    string  the room's head: the newest committed sequence.
//	                              The room exists while this key does.
//	<p>room:{<id>}:log    stream  the room's events, entry id "<seq>-0",
//	                              one field "e" holding the event's JSON.
//	<p>room:{<id>}:snap   string  JSON room.State at sequence meta.snapseq
//	                              (absent until the hub first passes one).
//	<p>room:{<id>}:epoch  string  the room's epoch: random hex set by Create.
//	<p>room:{<id>}:meta   hash    code (the join code), created (unix ms),
//	                              snapseq (sequence of :snap), closed (unix ms,
//	                              set when a closed event is appended).
//	<p>room:{<id>}:ch     channel (pub/sub, not a key) every commit as a JSON
//	                              Message with Events, plus heartbeats and
//	                              presence, led by the publishing bus's
//	                              "origin" when there is one (see Bus).
//	                              PUBLISH, or SPUBLISH on Cluster.
//	<p>code:<code>        string  the room id of a join code (SET NX by Create).
//	<p>probe:<instance>   channel (pub/sub) a Bus's probe of its own
//	                              subscription; on Cluster one per room
//	                              connection: <p>probe:<instance>:{<id>}.
//
// Nothing expires while a room is open. Appending a closed event sets a TTL
// (StoreConfig.ClosedRoomTTL) on every key of the room and on its code
// key; later appends to a closed room renew it.

// layout names a deployment's keys and channels; see the layout above.
// The store and the bus of one deployment must use the same prefix.
type layout struct{ prefix string }

// room returns the keys of a room in the order the scripts expect them:
// log, snap, seq, epoch, meta.
func (k layout) room(id string) []string {
	base := k.prefix + "room:{" + id + "}:"
	return []string{base + "log", base + "snap", base + "seq", base + "epoch", base + "meta"}
}

func (k layout) seq(id string) string         { return k.prefix + "room:{" + id + "}:seq" }
func (k layout) channel(id string) string     { return k.prefix + "room:{" + id + "}:ch" }
func (k layout) code(code string) string      { return k.prefix + "code:" + code }
func (k layout) codePrefix() string           { return k.prefix + "code:" }
func (k layout) probe(instance string) string { return k.prefix + "probe:" + instance }

// roomOfChannel is the room id of a room channel, or "" for another name.
func (k layout) roomOfChannel(ch string) string {
	rest, ok := strings.CutPrefix(ch, k.prefix+"room:{")
	if !ok {
		return ""
	}
	id, ok := strings.CutSuffix(rest, "}:ch")
	if !ok {
		return ""
	}
	return id
}

// randomHex returns n random bytes as hex: epochs and instance names.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program instead
	return hex.EncodeToString(b)
}
