package load

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// The command line's forms of targets and regions (shortener load).

// ParseTargets reads fixed targets, NAME=http://host:port (or a bare URL),
// and returns them with the named ones as regions to poll.
func ParseTargets(specs []string) ([]Target, []Region, error) {
	var ts []Target
	var rs []Region
	for _, t := range specs {
		name, url, ok := strings.Cut(t, "=")
		if !ok {
			name, url = "", t
		}
		if !strings.Contains(url, "://") {
			return nil, nil, fmt.Errorf("--target %q: want NAME=http://host:port", t)
		}
		ts = append(ts, Target{Name: name, BaseURL: url})
		if name != "" {
			rs = append(rs, Region{Name: name, BaseURL: url})
		}
	}
	return ts, rs, nil
}

// ClientTargets reads the clients of regions, REGION=SOURCE-IP: each
// resolves name at dnsServer from its source address and sends to the
// answer's port.
func ClientTargets(specs []string, dnsServer, name string, port int) ([]Target, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("--port %d: want 1 to 65535", port)
	}
	base := "http://" + net.JoinHostPort(name, strconv.Itoa(port))
	var ts []Target
	for _, c := range specs {
		region, ip, ok := strings.Cut(c, "=")
		if !ok || region == "" || net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("--client %q: want REGION=SOURCE-IP, e.g. us-east=127.0.1.10", c)
		}
		ts = append(ts, Target{Name: region, BaseURL: base, DNS: dnsServer, LocalAddr: ip})
	}
	return ts, nil
}

// ParseRegions reads regions to poll, NAME=http://host:port.
func ParseRegions(specs []string) ([]Region, error) {
	var rs []Region
	for _, r := range specs {
		name, url, ok := strings.Cut(r, "=")
		if !ok || name == "" || !strings.Contains(url, "://") {
			return nil, fmt.Errorf("--region %q: want NAME=http://host:port", r)
		}
		rs = append(rs, Region{Name: name, BaseURL: url})
	}
	return rs, nil
}
