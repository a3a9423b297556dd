package events

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// DefaultMaxURLLen is the default cap on a target URL's length, in bytes,
// before and after normalisation.
const DefaultMaxURLLen = 2048

// NormalizeURL validates a target URL and returns its stored form: scheme
// and host in lower case, an internationalised host in punycode. It refuses,
// with an Invalid error naming the field "url" and the reason: anything
// longer than maxLen bytes (DefaultMaxURLLen when maxLen <= 0), control
// characters, spaces or CR/LF anywhere, a scheme other than http or https,
// a missing host, userinfo (http://bank.com@evil.example), a bad port, and a
// host that is not a valid domain name or IP address.
func NormalizeURL(raw string, maxLen int) (string, error) {
	if maxLen <= 0 {
		maxLen = DefaultMaxURLLen
	}
	bad := func(reason string) (string, error) { return "", FieldError("url", reason) }
	switch {
	case raw == "":
		return bad("required")
	case len(raw) > maxLen:
		return bad(fmt.Sprintf("longer than %d bytes", maxLen))
	case !utf8.ValidString(raw):
		return bad("not valid UTF-8")
	}
	for _, r := range raw {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == ' ' || r == '\u2028' || r == '\u2029' {
			return bad("contains a control character, space or line break")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return bad("scheme must be http or https")
	}
	if u.Opaque != "" {
		return bad("must be an absolute URL with // and a host")
	}
	if u.User != nil || strings.Contains(u.Host, "@") {
		return bad("must not contain userinfo (user@host)")
	}
	if u.Host == "" {
		return bad("host is required")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return bad("host is required")
	}
	if strings.HasSuffix(u.Host, ":") {
		return bad("empty port")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return bad("port must be a number from 1 to 65535")
		}
	}
	asciiHost, err := normalizeHost(host)
	if err != nil {
		return bad(err.Error())
	}
	if strings.Contains(asciiHost, ":") {
		asciiHost = "[" + asciiHost + "]"
	}
	if port != "" {
		asciiHost += ":" + port
	}
	u.Scheme = scheme
	u.Host = asciiHost
	out := u.String()
	if len(out) > maxLen {
		return bad(fmt.Sprintf("longer than %d bytes once normalised", maxLen))
	}
	return out, nil
}

var hostProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.StrictDomainName(true),
	idna.ValidateLabels(true),
	idna.VerifyDNSLength(true),
	idna.BidiRule(),
)

// normalizeHost returns an IP literal in canonical form or a domain name in
// lower-case ASCII (punycode for internationalised labels).
func normalizeHost(host string) (string, error) {
	if addr, err := netip.ParseAddr(host); err == nil {
		if addr.Zone() != "" {
			return "", fmt.Errorf("host must not carry an IPv6 zone")
		}
		return addr.String(), nil
	}
	ascii, err := hostProfile.ToASCII(host)
	if err != nil {
		return "", fmt.Errorf("host is not a valid domain name")
	}
	if ascii == "" || strings.HasPrefix(ascii, ".") {
		return "", fmt.Errorf("host is not a valid domain name")
	}
	// The stored form must be a fixed point: a percent-encoded byte that is
	// not UTF-8 ("%80") maps to U+FFFD, whose punycode ("xn--zn7c") the
	// same profile then refuses.
	if again, err := hostProfile.ToASCII(ascii); err != nil || again != ascii {
		return "", fmt.Errorf("host is not a valid domain name")
	}
	return ascii, nil
}
