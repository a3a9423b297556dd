package projections

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"
)

// prefixClaim holds the alias claims this instance made whose link it has
// not seen applied yet: a/<alias> -> PendingClaim as JSON. They are not
// links: digests, counts and replays ignore them.
const prefixClaim = "a/"

// PendingClaim is an alias claimed in the register by this instance for an
// event that may not have been written: the instance crashed, or the write
// failed, between the claim and the append.
type PendingClaim struct {
	Alias   string    `json:"alias"`
	EventID string    `json:"event_id"`
	Time    time.Time `json:"time"`
}

// PutClaim records a claim before its event is written, durably (synced):
// a crash right after it must not forget the claim.
func (s *Store) PutClaim(c PendingClaim) error {
	if err := s.injected("claim"); err != nil {
		return fmt.Errorf("record claim of %s: %w", c.Alias, err)
	}
	v, _ := json.Marshal(c)
	if err := s.db.Set([]byte(prefixClaim+c.Alias), v, pebble.Sync); err != nil {
		return fmt.Errorf("record claim of %s: %w", c.Alias, err)
	}
	return nil
}

// DropClaim forgets a claim: its event was applied, or its alias released.
// Not synced: a claim forgotten by a crash is found again and dropped then.
func (s *Store) DropClaim(alias string) error {
	return s.db.Delete([]byte(prefixClaim+alias), pebble.NoSync)
}

// Claims returns every pending claim.
func (s *Store) Claims() ([]PendingClaim, error) {
	var out []PendingClaim
	err := s.scan(prefixClaim, func(_, v []byte) error {
		var c PendingClaim
		if err := json.Unmarshal(v, &c); err != nil {
			return fmt.Errorf("pending claim: %w", err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}
