package region

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// HashAPIKey returns the hex SHA-256 of an API key: the only form in which a
// region keeps keys.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// keyring checks API keys against stored hashes in constant time.
type keyring struct {
	hashes [][]byte // raw SHA-256 sums
	ids    []string // the key id recorded as an event's actor: the hash's first 12 hex digits
}

func newKeyring(hexHashes []string) (*keyring, error) {
	k := &keyring{}
	for _, h := range hexHashes {
		raw, err := hex.DecodeString(strings.TrimSpace(h))
		if err != nil || len(raw) != sha256.Size {
			return nil, errInvalidKeyHash
		}
		k.hashes = append(k.hashes, raw)
		k.ids = append(k.ids, "key:"+strings.TrimSpace(h)[:12])
	}
	return k, nil
}

// check returns the id of the key, or "" if no stored hash matches. Every
// stored hash is compared, so the time taken does not say which one matched.
func (k *keyring) check(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	id := ""
	for i, h := range k.hashes {
		if subtle.ConstantTimeCompare(sum[:], h) == 1 {
			id = k.ids[i]
		}
	}
	return id
}

type configError string

func (e configError) Error() string { return string(e) }

const errInvalidKeyHash = configError("API key hashes must be hex SHA-256 sums")
