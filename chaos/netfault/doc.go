// Package netfault breaks the network between regions for chaos tests: a
// partition between two regions, and a slow or lossy link between two
// regions, acting on the real TCP traffic of the NATS gateways and routes
// that join the regions' embedded servers into a supercluster.
//
// A Net is a set of TCP proxies, each placed in front of one gateway or
// route listener of one region's server, with the servers told to advertise
// the proxies' addresses so that gossip never hands a peer the direct one.
// On loopback every connection comes from 127.0.0.1, so a proxy tells who
// dials it from the NATS handshake instead of the source address: the
// listener's INFO names the listener (whose region the proxy knows), the
// dialer's CONNECT names the dialer, and a registry shared by all proxies of
// a Net maps server IDs to regions (see Net for the details and limits).
//
// Invariants: a connection between two regions that are cut is never
// forwarded, not even its first byte towards the listener; a connection is
// only ever between the two regions it was identified with, and faults on
// one pair never touch the connections of another; latency delays chunks
// but never reorders them. It speaks only TCP and the first line of the
// NATS protocol, and imports nothing but the standard library.
package netfault
