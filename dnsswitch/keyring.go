package dnsswitch

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
)

// keyring checks the admin API's keys against their hex SHA-256 hashes in
// constant time, as a region checks its API keys (the switch does not
// import region: it runs apart from the regions).
type keyring struct {
	hashes [][]byte // raw SHA-256 sums
}

func newKeyring(hexHashes []string) (*keyring, error) {
	k := &keyring{}
	for _, h := range hexHashes {
		raw, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(raw) != sha256.Size {
			return nil, errors.New("API key hashes must be hex SHA-256 sums")
		}
		k.hashes = append(k.hashes, raw)
	}
	return k, nil
}

// check reports whether key matches a stored hash. Every stored hash is
// compared, so the time taken does not say which one matched.
func (k *keyring) check(key string) bool {
	if key == "" {
		return false
	}
	sum := sha256.Sum256([]byte(key))
	ok := false
	for _, h := range k.hashes {
		if subtle.ConstantTimeCompare(sum[:], h) == 1 {
			ok = true
		}
	}
	return ok
}
