package procs

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// APIKey returns $SHORTENER_API_KEY, else the key in file (a dev
// cluster's is <dir>/api-key); with generate set, a missing file is
// created with a fresh key.
func APIKey(file string, generate bool) (string, error) {
	if k := strings.TrimSpace(os.Getenv("SHORTENER_API_KEY")); k != "" {
		return k, nil
	}
	data, err := os.ReadFile(file)
	if err == nil {
		if k := strings.TrimSpace(string(data)); k != "" {
			return k, nil
		}
		return "", fmt.Errorf("API key file %s is empty", file)
	}
	if !errors.Is(err, os.ErrNotExist) || !generate {
		return "", fmt.Errorf("API key: %w", err)
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	key := "sk_dev_" + base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(file, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write API key: %w", err)
	}
	return key, nil
}
