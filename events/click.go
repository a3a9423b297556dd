package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Click is one redirect served, as click analytics counts it. Clicks are
// not link events: they travel on their own streams (CLICKS_<REGION>), in
// batches, and losing some never changes what a link points to.
type Click struct {
	Code     string `json:"c"`
	UnixMs   int64  `json:"t"`             // when it was served
	Referrer string `json:"ref,omitempty"` // the referrer's host only
	Agent    string `json:"ua"`            // AgentBrowser, AgentMobile, AgentCLI, AgentBot, AgentOther
	Bot      bool   `json:"bot,omitempty"`
}

// The user agent classes of a click.
const (
	AgentBrowser = "browser"
	AgentMobile  = "mobile"
	AgentCLI     = "cli"
	AgentBot     = "bot"
	AgentOther   = "other"
)

// ClickBatch is one message of a click stream: the clicks one region
// served in a short while. ID (UUIDv7) is its Nats-Msg-Id.
type ClickBatch struct {
	ID     string    `json:"id"`
	Region string    `json:"region"`
	Time   time.Time `json:"time"`
	Clicks []Click   `json:"clicks"`
}

// MaxClickBatch bounds the clicks of one batch (and so one message).
const MaxClickBatch = 2000

// DecodeClickBatch parses and checks a click stream message, in its binary
// form (AppendClickBatch) or as JSON (what regions published before).
func DecodeClickBatch(data []byte) (ClickBatch, error) {
	var b ClickBatch
	if len(data) > 0 && data[0] == clickBatchBinary {
		var err error
		if b, err = decodeClickBatchBinary(data); err != nil {
			return ClickBatch{}, err
		}
	} else if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("click batch: %w", err)
	}
	if b.ID == "" || b.Region == "" {
		return b, errors.New("click batch: no id or region")
	}
	if len(b.Clicks) > MaxClickBatch {
		return b, fmt.Errorf("click batch: %d clicks, at most %d", len(b.Clicks), MaxClickBatch)
	}
	for i, c := range b.Clicks {
		if ValidateCode(c.Code) != nil {
			return b, fmt.Errorf("click batch: click %d: bad code", i)
		}
	}
	return b, nil
}

// botMarks are substrings (lower case) of the user agents of crawlers,
// link previewers, monitors and headless browsers: such clicks are counted
// apart from people's.
var botMarks = []string{
	"bot", "crawl", "spider", "slurp", "preview", "facebookexternalhit", "embedly",
	"headless", "phantomjs", "lighthouse", "pingdom", "uptime", "monitor",
	"python-requests", "go-http-client", "java/", "okhttp", "libwww", "scrapy",
}

// ClassifyAgent returns the class of a User-Agent header and whether it is
// a bot. An empty user agent is a bot: browsers always send one.
func ClassifyAgent(ua string) (class string, bot bool) {
	if ua == "" {
		return AgentBot, true
	}
	l := strings.ToLower(ua)
	for _, m := range botMarks {
		if strings.Contains(l, m) {
			return AgentBot, true
		}
	}
	switch {
	case strings.HasPrefix(l, "curl/"), strings.HasPrefix(l, "wget/"), strings.HasPrefix(l, "httpie/"):
		return AgentCLI, false
	case strings.Contains(l, "mobile"), strings.Contains(l, "android"), strings.Contains(l, "iphone"):
		return AgentMobile, false
	case strings.HasPrefix(l, "mozilla/"), strings.HasPrefix(l, "opera/"):
		return AgentBrowser, false
	}
	return AgentOther, false
}

// ReferrerHost returns the host of a Referer header in lower case, or ""
// when there is none or it is not an absolute http(s) URL. Paths and
// queries are never kept: they can carry personal data.
func ReferrerHost(ref string) string {
	if ref == "" || len(ref) > 2048 {
		return ""
	}
	u, err := url.Parse(ref)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	h := strings.ToLower(u.Hostname())
	if len(h) > 253 {
		return ""
	}
	return h
}
