package dnsswitch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
)

// Client talks to a switch's admin API: reads its state, drains and
// overrides regions.
type Client struct {
	Addr   string       // host:port of the admin API
	APIKey string       // authorises changes; reading needs none
	HTTP   *http.Client // nil: a client with a 5 s timeout
}

// APIError is the admin API's refusal of a change (a bad key, an unknown
// region), with the problem's detail.
type APIError struct {
	Status int
	Detail string
}

func (e *APIError) Error() string { return "switch: " + e.Detail }

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 5 * time.Second}
}

// State returns the switch's view now (GET /v1/state).
func (c *Client) State(ctx context.Context) (State, error) {
	var st State
	url := "http://" + c.Addr + "/v1/state"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// Answer returns the region the switch answers the clients of home with.
func (c *Client) Answer(ctx context.Context, home string) (string, error) {
	st, err := c.State(ctx)
	if err != nil {
		return "", err
	}
	for _, a := range st.Answers {
		if a.Clients == home {
			return a.Region, nil
		}
	}
	return "", fmt.Errorf("the switch has no region %s", home)
}

// WaitAnswer polls the switch every 50 ms until its answer to home's
// clients satisfies ok, for at most timeout, and returns that answer and
// when it was seen. It fails with the last answer, or the last error.
func (c *Client) WaitAnswer(ctx context.Context, home string, ok func(string) bool, timeout time.Duration) (string, time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last string
	var lastErr error
	for time.Now().Before(deadline) {
		a, err := c.Answer(ctx, home)
		if err == nil && ok(a) {
			return a, time.Now(), nil
		}
		last, lastErr = a, err
		select {
		case <-ctx.Done():
			return "", time.Time{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if lastErr != nil {
		return "", time.Time{}, lastErr
	}
	return "", time.Time{}, fmt.Errorf("still %s after %s", last, timeout)
}

// Drain sends nobody to region, whatever its health (drain false: answer it
// again once healthy). A refusal is an *APIError.
func (c *Client) Drain(ctx context.Context, region string, drain bool) error {
	if drain {
		return c.change(ctx, http.MethodPut, "/v1/drain/"+region)
	}
	return c.change(ctx, http.MethodDelete, "/v1/drain/"+region)
}

// Override answers the clients of home with region to, whatever the health
// of either; to == "" clears the override. A refusal is an *APIError.
func (c *Client) Override(ctx context.Context, home, to string) error {
	if to == "" {
		return c.change(ctx, http.MethodDelete, "/v1/override/"+home)
	}
	return c.change(ctx, http.MethodPut, "/v1/override/"+home+"?to="+to)
}

func (c *Client) change(ctx context.Context, method, path string) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Api-Key", c.APIKey)
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var p struct{ Detail string }
		_ = json.NewDecoder(resp.Body).Decode(&p)
		return &APIError{Status: resp.StatusCode, Detail: p.Detail}
	}
	return nil
}

// Print writes st for a person: what each region's clients are answered
// and why, each region's health (its age relative to now), the zone, the
// overrides and the last changes (at most changes of them).
func (st State) Print(out io.Writer, now time.Time, changes int) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "CLIENTS OF\tANSWERED\tADDRESS\tWHY\t\tREGION\tHEALTH\tSINCE\tLAST ERROR\n")
	for i, a := range st.Answers {
		r := st.Regions[i]
		health := "healthy"
		switch {
		case r.Drained:
			health = "DRAINED"
		case !r.Healthy:
			health = "DOWN"
		case r.Fails > 0:
			health = fmt.Sprintf("failing %d", r.Fails)
		}
		answered := a.Region
		if a.Region != a.Clients {
			answered = strings.ToUpper(a.Region)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\t%s\t%s\t%s ago\t%s\n", a.Clients, answered, a.Addr, a.Why,
			r.Name, health, now.Sub(r.Since).Round(100*time.Millisecond), r.LastError)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "zone %s, TTL %.0fs", strings.TrimSuffix(st.Zone, "."), st.TTLSeconds)
	if len(st.Overrides) > 0 {
		fmt.Fprintf(out, ", overrides %v", st.Overrides)
	}
	fmt.Fprintln(out)
	if n := len(st.Transitions); n > 0 && changes > 0 {
		fmt.Fprintln(out, "last changes:")
		for _, tr := range st.Transitions[max(0, n-changes):] {
			fmt.Fprintf(out, "  %s  %-9s %-16s %s\n", tr.Time.Local().Format("15:04:05.000"), tr.Region, tr.What, tr.Detail)
		}
	}
	return nil
}
