package main

import (
	"context"

	"shortener/chaos"
	"shortener/chaos/load"
)

// configureAliases adds alias claims to the chaos load (TODO: chaos/check).
func configureAliases(cfg *load.Config) {}

// judge runs the checkers (TODO: chaos/check).
func (c *chaosRun) judge(ctx context.Context, h *load.History) []chaos.Check { return nil }
