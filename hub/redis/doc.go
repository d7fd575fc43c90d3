// Package redis is the Store and the Bus of the hub on Redis, for several
// instances behind one load balancer: a room's log is a Stream appended by
// one Lua script that checks the sequence, keeps the snapshot and publishes
// the commit on the room's channel, and the bus holds one pub/sub
// subscription per room with local clients, probes it and resyncs its rooms
// when messages may have been lost. It also owns the key layout (keys.go),
// client construction from a URL (NewClient) and the Prometheus collector of
// the bus's and the pool's counters. Package hub knows none of this: it
// sees a hub.Store and a hub.Bus.
package redis
