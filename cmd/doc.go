// Package cmd holds the wiring of shortener's binaries and nothing else:
// flags, configuration files, API keys, logging, and the subcommands of
// cmd/shortener. The domain lives in events, the streams in replicator, the
// read model in projections and the process in region.
package cmd
