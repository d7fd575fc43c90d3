// Package hub runs workshop rooms for live clients. It owns the WebSocket
// connections, one actor goroutine per active room that decides commands
// with package room and commits them to a Store, and the fan-out that
// encodes each event once per audience and queues the bytes to every client.
// Stores and buses come in two kinds behind the Store and Bus interfaces:
// embedded (bbolt on local disk and an in-process bus, for one instance,
// here) and Redis (a shared log and pub/sub, for several instances behind a
// load balancer, in package hub/redis). The Echo handlers for the REST
// and WebSocket contract in PROTOCOL.md live here too.
package hub
