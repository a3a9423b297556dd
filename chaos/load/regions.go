package load

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// regionsPollTimeout bounds one GET /api/v1/regions: a region answers it
// within a second even when its alias register is out of reach.
const regionsPollTimeout = 2 * time.Second

// pollRegion records rg's GET /api/v1/regions every RegionsInterval until
// ctx ends. A poll still running when the next one is due delays it.
func (r *runner) pollRegion(ctx context.Context, rg Region) {
	u, _ := parseBase(rg.BaseURL) // validated by normalize
	url := u.String() + "/api/v1/regions"
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: regionsPollTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tick := time.NewTicker(r.cfg.RegionsInterval)
	defer tick.Stop()
	for {
		rec := RegionsRecord{Region: rg.Name, URL: url, Start: time.Now()}
		err := pollOnce(ctx, client, url, &rec)
		rec.End = time.Now()
		if ctx.Err() != nil {
			return // the run is over: not the region's failure
		}
		if err != nil {
			rec.Err = errString(err)
		}
		rec.OK = err == nil
		line, _ := json.Marshal(regionsLine{Kind: KindRegions, RegionsRecord: rec})
		r.history.sendRaw(append(line, '\n'))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pollOnce fetches url into rec (Status, Time, Origins).
func pollOnce(ctx context.Context, client *http.Client, url string, rec *RegionsRecord) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rec.Status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New("status " + strconv.Itoa(resp.StatusCode))
	}
	var v struct {
		Time    time.Time   `json:"time"`
		Origins []OriginRPO `json:"origins"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return errors.New("bad regions response: " + err.Error())
	}
	rec.Time, rec.Origins = v.Time, v.Origins
	return nil
}

// recordDNS writes one resolve of target ti to the history.
func (r *runner) recordDNS(ti int32, ev dnsEvent) {
	if r.history == nil {
		return
	}
	rec := DNSRecord{Target: r.targets[ti].name, Time: ev.at, TTL: int64(ev.ttl / time.Second), Changed: ev.changed}
	if ev.ep != nil {
		rec.Addr, rec.Region = ev.ep.addr, ev.ep.region
	}
	if ev.err != nil {
		rec.Err = errString(ev.err)
	}
	line, _ := json.Marshal(dnsLine{Kind: KindDNS, DNSRecord: rec})
	r.history.sendRaw(append(line, '\n'))
}
