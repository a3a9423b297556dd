package region

import (
	"net/netip"
	"strings"
	"testing"
)

// TestHostAddress: hosts read as a browser reads them, so that a private
// address cannot pass in another spelling.
func TestHostAddress(t *testing.T) {
	for _, c := range []struct {
		host    string
		want    string // "" for a name
		invalid bool
	}{
		{host: "example.com"},
		{host: "xn--bcher-kva.example"},
		{host: "127.0.0.1", want: "127.0.0.1"},
		{host: "2130706433", want: "127.0.0.1"},
		{host: "0x7f.1", want: "127.0.0.1"},
		{host: "0177.0.0.1", want: "127.0.0.1"},
		{host: "127.1", want: "127.0.0.1"},
		{host: "10.0.0.1.", want: "10.0.0.1"},
		{host: "0xa9.254.169.254", want: "169.254.169.254"},
		{host: "::1", want: "::1"},
		{host: "::ffff:10.0.0.1", want: "10.0.0.1"},
		{host: "a.b.1"}, // its last label is a number: a browser refuses it
		{host: "1.2.3.4.5", invalid: true},
		{host: "256.1.1.1", invalid: true},
		{host: "99999999999", invalid: true},
		{host: "1.2.3.256", invalid: true},
		{host: "08.1.1.1", invalid: true}, // octal 08
		{host: "example.0x1g"},
	} {
		addr, literal, ok := hostAddress(c.host)
		switch {
		case c.invalid:
			if ok {
				t.Errorf("%s: read as %v, want invalid", c.host, addr)
			}
		case c.host == "a.b.1":
			if ok {
				t.Errorf("%s: read as %v, want invalid (ends in a number)", c.host, addr)
			}
		case c.want == "":
			if !ok || literal {
				t.Errorf("%s: %v %t %t, want a name", c.host, addr, literal, ok)
			}
		default:
			if !ok || !literal || addr != netip.MustParseAddr(c.want) {
				t.Errorf("%s: %v %t %t, want %s", c.host, addr, literal, ok, c.want)
			}
		}
	}
}

// TestTargetRules: every rule refuses what it names, with the rule in the
// message, and lets the rest through; AllowPrivate lifts the address rules
// but not the service's own hosts or the blocklist.
func TestTargetRules(t *testing.T) {
	g := newTargetGuard(Targets{}, "short.example", "10.0.0.5")
	l, err := parseBlocklist("test", []byte("# bad hosts\nevil.example\nphish.test  # and under it\n"))
	if err != nil {
		t.Fatal(err)
	}
	g.list.Store(&l)
	lenient := newTargetGuard(Targets{AllowPrivate: true}, "short.example")
	lenient.list.Store(&l)
	for _, c := range []struct {
		url, rule, lenientRule string
	}{
		{url: "https://example.com/a"},
		{url: "http://8.8.8.8/"},
		{url: "https://short.example/x", rule: ruleOwnHost, lenientRule: ruleOwnHost},
		{url: "https://SHORT.example./x", rule: ruleOwnHost, lenientRule: ruleOwnHost},
		{url: "http://10.0.0.5:8080/x", rule: ruleOwnHost},
		{url: "https://evil.example/", rule: ruleBlocklist, lenientRule: ruleBlocklist},
		{url: "https://a.b.phish.test/", rule: ruleBlocklist, lenientRule: ruleBlocklist},
		{url: "https://notevil.example/"},
		{url: "http://localhost:8080/", rule: rulePrivate},
		{url: "http://app.localhost/", rule: rulePrivate},
		{url: "http://127.0.0.1/", rule: rulePrivate},
		{url: "http://2130706433/", rule: rulePrivate},
		{url: "http://[::1]/", rule: rulePrivate},
		{url: "http://[fe80::1]/", rule: rulePrivate},
		{url: "http://169.254.169.254/latest/meta-data", rule: rulePrivate},
		{url: "http://192.168.1.1/", rule: rulePrivate},
		{url: "http://100.64.0.1/", rule: rulePrivate},
		{url: "http://0.0.0.0/", rule: rulePrivate},
		{url: "http://224.0.0.1/", rule: rulePrivate},
		{url: "http://1.2.3.4.5/", rule: rulePrivate, lenientRule: rulePrivate},
	} {
		for _, v := range []struct {
			g    *targetGuard
			rule string
			name string
		}{{g, c.rule, "strict"}, {lenient, c.lenientRule, "allow private"}} {
			err := v.g.check(c.url)
			switch {
			case v.rule == "" && err != nil:
				t.Errorf("%s, %s: %v, want allowed", c.url, v.name, err)
			case v.rule != "" && (err == nil || !strings.Contains(err.Error(), "rule "+v.rule)):
				t.Errorf("%s, %s: %v, want refused by %s", c.url, v.name, err, v.rule)
			}
		}
	}
}

// TestParseBlocklist: a file that is not a list of host names is refused
// naming its first bad line.
func TestParseBlocklist(t *testing.T) {
	l, err := parseBlocklist("f", []byte("\n  # only a comment\nÉvil.Example\n"))
	if err != nil || !l["xn--vil-9la.example"] {
		t.Fatalf("%v %v: want the name in its ASCII form", l, err)
	}
	for _, bad := range []string{"ok.example\nhttp://x.example/\n", "ok.example\n\nbad host\n", "a.example\n[::1]\n", "x.example:80\n"} {
		if _, err := parseBlocklist("f", []byte(bad)); err == nil || !strings.Contains(err.Error(), "f:") {
			t.Errorf("%q: %v, want an error naming the line", bad, err)
		}
	}
	if _, err := parseBlocklist("f", []byte("a.example\nhttp://x.example/\n")); err == nil || !strings.Contains(err.Error(), "f:2") {
		t.Errorf("the line number: %v", err)
	}
}

// FuzzTargets: no target and no blocklist panics the guard.
func FuzzTargets(f *testing.F) {
	f.Add("http://0x7f.1/", "evil.example\n")
	f.Add("http://[::ffff:127.0.0.1]/", "# c\n\n")
	f.Add("http://1.2.3.4.5.6/", "a..b\n")
	f.Fuzz(func(t *testing.T, target, list string) {
		g := newTargetGuard(Targets{}, "own.example")
		if l, err := parseBlocklist("fuzz", []byte(list)); err == nil {
			g.list.Store(&l)
		}
		_ = g.check(target)
		host, _, _ := strings.Cut(strings.TrimPrefix(target, "http://"), "/")
		hostAddress(host)
	})
}
