// Package secrets is the cluster's credentials: a certificate authority,
// the NATS servers' certificate, and one nkey per user (each region, and
// each operator tool) with the table of who is who. A development set is
// made by Generate with crypto/x509 and nkeys alone (no openssl); a real
// deployment gives the same files by path. Load reads and checks them, and
// every failure names the file and the problem.
//
// Invariants: private keys and seeds are written 0600 in a 0700 folder and
// never logged; a seed is only ever read by the one process that connects
// as that user; the users table holds public keys only.
//
// It imports nats.go and nkeys to turn credentials into connection options
// (NATSOptions); the embedded servers' permissions are built from the table
// in region, which adapts nats-server.
package secrets
