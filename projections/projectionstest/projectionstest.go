// Package projectionstest damages projection stores on purpose, so that
// tests can check that an audit finds and names the damage. It opens the
// store's Pebble directory itself (the store must be closed) and knows the
// row layout of package projections: l/<code> holds the link as JSON.
package projectionstest

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble"

	"shortener/events"
)

// CorruptLink rewrites the row of code in the closed store in dir with
// whatever mutate does to it, bypassing the fold: the projection then
// serves something its log never said.
func CorruptLink(dir, code string, mutate func(*events.Link)) error {
	db, err := pebble.Open(dir, &pebble.Options{ErrorIfNotExists: true, Logger: quiet{}})
	if err != nil {
		return fmt.Errorf("open store %s: %w", dir, err)
	}
	defer db.Close()
	key := []byte("l/" + code)
	v, closer, err := db.Get(key)
	if err != nil {
		return fmt.Errorf("read row of %s: %w", code, err)
	}
	var l events.Link
	err = json.Unmarshal(v, &l)
	closer.Close()
	if err != nil {
		return fmt.Errorf("decode row of %s: %w", code, err)
	}
	mutate(&l)
	v, err = json.Marshal(l)
	if err != nil {
		return err
	}
	return db.Set(key, v, pebble.Sync)
}

// DeleteLink removes the row of code from the closed store in dir.
func DeleteLink(dir, code string) error {
	db, err := pebble.Open(dir, &pebble.Options{ErrorIfNotExists: true, Logger: quiet{}})
	if err != nil {
		return fmt.Errorf("open store %s: %w", dir, err)
	}
	defer db.Close()
	return db.Delete([]byte("l/"+code), pebble.Sync)
}

// quiet drops Pebble's informational logging (WAL replays) from test output.
type quiet struct{}

func (quiet) Infof(string, ...any) {}

func (quiet) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
