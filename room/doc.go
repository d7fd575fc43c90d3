// Package room is the workshop domain: a leveling workshop room modelled as
// an event-sourced state machine. It is pure: no I/O, no goroutines, no
// clocks or random numbers of its own. Decide validates a Command from an
// Actor against a State and answers Events (or a typed *Error); Evolve
// applies one Event. Views and Redact cut a State or an Event down to what an
// Audience may see, so the hub can encode each event once per audience and
// no secret (an unrevealed score, a draft, a pending or hidden question,
// another's estimate or an estimate's distribution before the reveal, a key
// hash) ever reaches a client that may not see it.
package room
