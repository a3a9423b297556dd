package events

import (
	"crypto/rand"
	"fmt"
	"strings"
)

// Codes and aliases share one namespace, and two rules keep them apart by
// construction:
//
//   - a generated code is GeneratedLen characters: the region's digit
//     ('0' to '9', fixed per region), then random base62 characters from
//     crypto/rand. Two regions never generate the same code because their
//     digits differ; within a region, the append refuses a code whose
//     subject already holds an event and the region draws again. The code
//     carries no counter, so it is not enumerable (62^7, about 3.5e12 codes
//     per region).
//   - an alias starts with a letter, so it can never equal a generated code.
const (
	GeneratedLen   = 8
	AliasMinLen    = 3
	AliasMaxLen    = 64
	base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// ReservedAliases are the words an alias may not be, compared without case:
// the service's own paths and words that would confuse people.
var ReservedAliases = []string{
	"api", "healthz", "readyz", "livez", "metrics", "status", "debug",
	"admin", "login", "logout", "static", "assets", "docs", "help",
	"well-known", "favicon", "robots", "sitemap", "short", "shortener",
}

// NewCode returns a fresh generated code for the region whose digit is
// regionDigit.
func NewCode(regionDigit byte) string {
	var b [GeneratedLen]byte
	b[0] = regionDigit
	var r [GeneratedLen - 1]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic("events: crypto/rand failed: " + err.Error())
	}
	for i, x := range r {
		// 248 = 4*62: rejecting bytes >= 248 would remove the bias; the bias
		// of x%62 is under 2% and does not make codes guessable, so keep it
		// simple and branch-free.
		b[i+1] = base62Alphabet[int(x)%62]
	}
	return string(b[:])
}

// IsGenerated reports whether code has the form of a generated code.
func IsGenerated(code string) bool {
	if len(code) != GeneratedLen || code[0] < '0' || code[0] > '9' {
		return false
	}
	for i := 1; i < len(code); i++ {
		if !isAlnum(code[i]) {
			return false
		}
	}
	return true
}

// ValidateCode checks that code is either a generated code or an alias. It
// returns an Invalid error naming the field "code".
func ValidateCode(code string) error {
	if IsGenerated(code) {
		return nil
	}
	if err := checkAlias(code, false); err != nil {
		return FieldError("code", err.Error())
	}
	return nil
}

// ValidateAlias checks a custom alias asked for by a client: AliasMinLen to
// AliasMaxLen characters from [A-Za-z0-9_-], starting with a letter, not one
// of ReservedAliases. It returns an Invalid error naming the field "alias".
func ValidateAlias(alias string) error {
	if err := checkAlias(alias, true); err != nil {
		return FieldError("alias", err.Error())
	}
	return nil
}

func checkAlias(s string, reserved bool) error {
	if len(s) < AliasMinLen || len(s) > AliasMaxLen {
		return fmt.Errorf("must be %d to %d characters long", AliasMinLen, AliasMaxLen)
	}
	if !isLetter(s[0]) {
		return fmt.Errorf("must start with a letter")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' {
			return fmt.Errorf("may contain only letters, digits, '-' and '_'")
		}
	}
	if reserved {
		for _, w := range ReservedAliases {
			if strings.EqualFold(s, w) {
				return fmt.Errorf("%q is reserved", s)
			}
		}
	}
	return nil
}

// ValidateRegion checks a region name: 1 to 32 characters from [a-z0-9-],
// starting with a letter (it becomes part of subjects and stream names).
func ValidateRegion(name string) error {
	if len(name) == 0 || len(name) > 32 || !('a' <= name[0] && name[0] <= 'z') {
		return FieldError("region", "must be 1 to 32 characters from [a-z0-9-], starting with a letter")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return FieldError("region", "must be 1 to 32 characters from [a-z0-9-], starting with a letter")
		}
	}
	return nil
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool  { return isLetter(c) || '0' <= c && c <= '9' }
