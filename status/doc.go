// Package status is what `make status` prints of a running cluster: every
// region's view of every origin, from the regions' GET /api/v1/regions
// (events held and lacking, the mirror's state, the RPO bound of a
// failover now, the alias register, durability), and the RPO bounds the
// regions report for one of them (what region-down prints before a kill).
// It reads the regions' HTTP API only, as an operator would; it imports
// region for the API's types and nothing of cmd.
package status
