package hub

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Join codes are read aloud and typed on phones: 8 characters of an
// alphabet without 0/O and 1/I. 32^8 = 2^40 codes.
const (
	codeAlphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
	codeLen      = 8
	keyBytes     = 24 // 192 random bits per key
)

// randomBytes returns n bytes from crypto/rand, the one source of every
// key, code, id and epoch here.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("hub: crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return b
}

// randomHex returns n random bytes as hex (epochs, instance names).
func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

// newKey returns a fresh random key, URL-safe base64.
func newKey() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(keyBytes))
}

// deriveKey derives the presenter key and the team keys from the
// facilitator key (HMAC-SHA256, 192 bits kept). Only hashes are stored, yet
// a facilitator who lost the team links gets them back: their connection
// presents the facilitator key, from which the server derives the others.
// Knowing a derived key tells nothing about the facilitator key.
func deriveKey(facilitatorKey, label string) string {
	m := hmac.New(sha256.New, []byte(facilitatorKey))
	m.Write([]byte("workshop key/" + label))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:keyBytes])
}

func presenterLabel() string         { return "presenter" }
func teamLabel(teamID string) string { return "team/" + teamID }

// hashKey is the form in which keys are stored: hex SHA-256. Keys are long
// random values, so a plain hash suffices (no password stretching).
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// keyMatches compares a presented key with a stored hash in constant time.
func keyMatches(key, hash string) bool {
	if key == "" || hash == "" {
		return false
	}
	got := hashKey(key)
	return subtle.ConstantTimeCompare([]byte(got), []byte(hash)) == 1
}

// newJoinCode returns a random short join code.
func newJoinCode() string {
	out := make([]byte, codeLen)
	for i, x := range randomBytes(codeLen) {
		out[i] = codeAlphabet[int(x)%len(codeAlphabet)] // 256 % 32 == 0: no bias
	}
	return string(out)
}

// normalizeCode uppercases a typed code and drops spaces and dashes. It
// answers "" when the result cannot be a code.
func normalizeCode(s string) string {
	if len(s) > 32 {
		return ""
	}
	s = strings.ToUpper(strings.NewReplacer(" ", "", "-", "").Replace(s))
	if len(s) != codeLen {
		return ""
	}
	for _, c := range s {
		if !strings.ContainsRune(codeAlphabet, c) {
			return ""
		}
	}
	return s
}

// newParticipantID mints an attendee's public id.
func newParticipantID() string {
	return "p_" + base64.RawURLEncoding.EncodeToString(randomBytes(9))
}

// An attendee's token signs its participant id and its display name with
// the room's participant secret (HMAC-SHA256), so any instance, before or
// after a restart, checks a returning attendee and learns its name without
// a lookup: the server keeps no record of attendee names. The form is
// MAC "." base64url(name). Tokens minted before names were carried are
// the bare MAC of the id; they are still accepted, without a name.
// Tokens are compared in constant time and never logged.

// tokenMessage is what a token signs. The prefix keeps it apart from the
// message of an old token (a bare participant id, which never holds a
// NUL).
func tokenMessage(participant, name string) string {
	return "participant token\x00" + participant + "\x00" + name
}

func tokenMAC(secret, msg string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// participantToken is the token of a participant under a display name.
func participantToken(secret, participant, name string) string {
	return base64.RawURLEncoding.EncodeToString(tokenMAC(secret, tokenMessage(participant, name))) +
		"." + base64.RawURLEncoding.EncodeToString([]byte(name))
}

// checkToken checks an attendee's token in constant time and answers the
// display name it carries ("" for an old token, which carries none).
func checkToken(secret, participant, token string) (name string, ok bool) {
	if secret == "" || participant == "" || token == "" {
		return "", false
	}
	macPart, namePart, withName := strings.Cut(token, ".")
	got, err := base64.RawURLEncoding.Strict().DecodeString(macPart)
	if err != nil {
		return "", false
	}
	msg := participant // an old token signs the bare id
	if withName {
		b, err := base64.RawURLEncoding.Strict().DecodeString(namePart)
		if err != nil {
			return "", false
		}
		name = string(b)
		msg = tokenMessage(participant, name)
	}
	if !hmac.Equal(got, tokenMAC(secret, msg)) {
		return "", false
	}
	return name, true
}
