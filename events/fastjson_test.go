package events

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// fastSeeds are events as Encode writes them, of every type and with every
// payload field, plus near misses the fast path must give up on.
func fastSeeds(tb testing.TB) [][]byte {
	at := time.Date(2026, 11, 22, 12, 0, 0, 123456789, time.UTC)
	exp := at.Add(time.Hour)
	url, status := "https://a.example/p?q=1&r=<2>\u2028é", 308
	var out [][]byte
	for _, c := range []struct {
		typ     Type
		code    string
		payload any
	}{
		{TypeLinkCreated, "1abcdefg", LinkCreated{URL: "https://a.example/", RedirectStatus: 302}},
		{TypeLinkCreated, "launch", LinkCreated{URL: url, Alias: true, ExpiresAt: &exp, RedirectStatus: 301}},
		{TypeLinkUpdated, "1abcdefg", LinkUpdated{URL: &url, ExpiresAt: &exp, RedirectStatus: &status}},
		{TypeLinkUpdated, "1abcdefg", LinkUpdated{ClearExpiry: true}},
		{TypeLinkDeleted, "1abcdefg", LinkDeleted{}},
		{TypeRegionHeartbeat, "", RegionHeartbeat{}},
	} {
		e, err := New(c.typ, c.code, "us-east", "key:0123456789ab", at, c.payload)
		if err != nil {
			tb.Fatalf("New: %v", err)
		}
		out = append(out, e.Encode())
	}
	id := `"id":"0190f1e2-0000-7000-8000-000000000000"`
	for _, s := range []string{
		`{` + id + `,"type":"LinkUpdated","schema":1,"code":"abc","origin":"eu-west","time":"2026-01-01T00:00:00Z","payload":{"url":"x"}}`,
		`{` + id + `,"type":"LinkCreated","schema":1,"code":"1abcdefg","origin":"eu-west","time":"2026-01-01T00:00:00+01:00","payload":{"url":"x","redirect_status":302}} ` + "\n",
		`{` + id + `,"type":"LinkCreated","schema":1,"code":"1abcdefg","origin":"eu-west","time":"2026-01-01T00:00:00Z","payload":{"url":"x","redirect_status":302}}}`,
		`{` + id + `,"ID":"x","type":"LinkCreated","schema":1,"code":"1abcdefg","origin":"eu-west","time":"2026-01-01T00:00:00Z","payload":{"url":"x","redirect_status":302}}`,
		`{` + id + `,"type":"LinkCreated","schema":1,"code":"1abcdefg","code":"1bbbbbbb","origin":"eu-west","time":"2026-01-01T00:00:00Z","payload":{"url":"x","redirect_status":302}}`,
		`{` + id + `,"payload":{"url":"x","redirect_status":302},"type":"LinkCreated","schema":1,"code":"1abcdefg","origin":"eu-west","time":"2026-01-01T00:00:00Z"}`,
		`{` + id + `,"type":"LinkCreated","schema":1,"code":"1abcdefg","origin":"eu-west","time":"2026-01-01T00:00:00Z"}`,
		`{` + id + `,"type":"LinkCreated","schema":1.0,"code":"1abcdefg","origin":"eu-west","time":"2026-01-01T00:00:00Z","payload":{"url":"\ud83d\ude00","redirect_status":302}}`,
		`{` + id + `,"type":"LinkCreated","schema":1,"code":"1abcdefg","origin":"eu-west","time":"2026-01-01T00:00:00Z","payload":{"url":"a\u0026b\/\"","redirect_status":3e2}}`,
		`{` + id + `,"type":"LinkDeleted","schema":1,"code":"1abcdefg","origin":"eu-west","time":"2026-01-01T00:00:00Z","payload":null}`,
		`{` + id + `,"type":"RegionHeartbeat","schema":1,"origin":"eu-west","time":"2026-01-01T00:00:00Z","payload":{"x":1}}`,
		`{}`, `null`, `[]`, `{"id":"\u00e9"}`, `{"id":"a\`, `{"schema":0123}`, `{"schema":-1}`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

// FuzzDecodeFast checks that whenever the fast path takes an input it gives
// exactly what encoding/json gives, and that Decode as a whole (fast path or
// not) equals decoding through encoding/json alone, errors included.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range fastSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := Decode(data)
		want, wantErr := decodeJSON(data, SchemaVersion)
		if errString(gotErr) != errString(wantErr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q):\n got %#v, %v\nwant %#v, %v", data, got, gotErr, want, wantErr)
		}

		e, pl, ok := decodeEnvelopeFast(data)
		if !ok {
			return
		}
		var ref Envelope
		dec := json.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&ref); err != nil || dec.More() {
			t.Fatalf("fast path took %q, which encoding/json refuses: %v", data, err)
		}
		if !reflect.DeepEqual(e, ref) {
			t.Fatalf("fast path on %q:\n got %#v\nwant %#v", data, e, ref)
		}
		if len(e.Payload) > 0 { // absent: a delete's or a heartbeat's, not parsed
			checkPayload(t, e.Payload, e.Type, pl)
		}
	})
}

// FuzzPayloadFast checks the fast payload parser against json.Unmarshal on
// arbitrary input, for every payload type.
func FuzzPayloadFast(f *testing.F) {
	for _, s := range fastSeeds(f) {
		if e, err := decodeJSON(s, SchemaVersion); err == nil {
			f.Add([]byte(e.Payload), uint8(0))
		}
	}
	f.Add([]byte(` {"url":"a","alias":false,"redirect_status":0} `), uint8(0))
	f.Add([]byte(`{"url":"a","clear_expiry":true}`), uint8(1))
	f.Add([]byte(`{ }`), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		typ := []Type{TypeLinkCreated, TypeLinkUpdated, TypeLinkDeleted, TypeRegionHeartbeat}[which%4]
		pl, ok := parsePayloadFast(data, typ)
		if ok {
			checkPayload(t, data, typ, pl)
		}
		// decodePayload, fast or not, equals its encoding/json form.
		e := Envelope{Type: typ, Payload: data}
		got, gotErr := e.decodePayload()
		want, wantErr := decodePayloadJSON(e)
		if errString(gotErr) != errString(wantErr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("decodePayload(%s %q):\n got %#v, %v\nwant %#v, %v", typ, data, got, gotErr, want, wantErr)
		}
	})
}

// checkPayload fails unless pl is what json.Unmarshal makes of data.
func checkPayload(t *testing.T, data []byte, typ Type, pl payload) {
	t.Helper()
	var want payload
	var err error
	switch typ {
	case TypeLinkCreated:
		err = json.Unmarshal(data, &want.created)
	case TypeLinkUpdated:
		err = json.Unmarshal(data, &want.updated)
	case TypeLinkDeleted, TypeRegionHeartbeat:
		err = json.Unmarshal(data, &struct{}{})
	}
	if err != nil {
		t.Fatalf("fast path took %s payload %q, which json.Unmarshal refuses: %v", typ, data, err)
	}
	if !reflect.DeepEqual(pl, want) {
		t.Fatalf("fast path on %s payload %q:\n got %#v\nwant %#v", typ, data, pl, want)
	}
}

// decodePayloadJSON is decodePayload as it was, through encoding/json alone.
func decodePayloadJSON(e Envelope) (payload, error) {
	var p payload
	var err error
	switch e.Type {
	case TypeLinkCreated:
		err = json.Unmarshal(e.Payload, &p.created)
	case TypeLinkUpdated:
		err = json.Unmarshal(e.Payload, &p.updated)
	case TypeLinkDeleted:
		if len(e.Payload) > 0 {
			err = json.Unmarshal(e.Payload, &LinkDeleted{})
		}
	default:
		return payload{}, nil
	}
	if err != nil {
		return payload{}, &Error{Kind: Invalid, Field: "payload", Message: "malformed " + string(e.Type), Err: err}
	}
	return p, e.checkPayload(p)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestDecodeFastTakesEncoded(t *testing.T) {
	for _, s := range fastSeeds(t)[:6] {
		if _, _, ok := decodeEnvelopeFast(s); !ok {
			t.Errorf("the fast path gives up on %s, as Encode wrote it", s)
		}
		if _, err := Decode(s); err != nil {
			t.Errorf("Decode(%s): %v", s, err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data := fastSeeds(b)[0]
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeJSON(data, SchemaVersion); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeApply(b *testing.B) {
	data := fastSeeds(b)[0]
	b.ReportAllocs()
	for b.Loop() {
		e, err := Decode(data)
		if err != nil {
			b.Fatal(err)
		}
		_ = Apply(Link{}, e)
	}
}

// FuzzLinkAppendJSON checks that Link.AppendJSON writes what json.Marshal
// writes, for links with arbitrary strings and times.
func FuzzLinkAppendJSON(f *testing.F) {
	f.Add("1abcdefg", "https://a.example/?a=1&b=<2>", "us-east", "key:1", int64(1e18), int64(0), 302, true, true, 3)
	f.Add("x\u2028\"\\\x01\x7f", "\xff\xfeé\u2029\t\n\r\b\f", "", "", int64(-6213559680e9), int64(1), 0, false, false, 0)
	f.Add("a", "b", "c", "d", int64(-1<<63), int64(1<<62), -1, false, true, -5)
	f.Fuzz(func(t *testing.T, code, url, origin, actor string, ns, ns2 int64, status int, alias, deleted bool, n int) {
		t1 := time.Unix(0, ns).UTC()
		t2 := time.Unix(0, ns2).In(time.FixedZone("x", int(ns2%100000)))
		t3 := time.Date(int(ns2%20000)-5000, 1, 1, 0, 0, 0, 0, time.UTC)
		links := []Link{
			{Code: code, URL: url, RedirectStatus: status, Alias: alias, Origin: origin, Actor: actor,
				CreatedAt: t1, UpdatedAt: t2, Deleted: deleted, LastTime: t1, LastID: actor + url, Events: n},
			{Code: url, URL: code, Origin: actor, Actor: origin, CreatedAt: t2, UpdatedAt: t1, ExpiresAt: &t2, DeletedAt: &t1, LastTime: t2, LastID: code},
			{Code: code, ExpiresAt: &t3, CreatedAt: t3},
			{},
		}
		for _, l := range links {
			want, wantErr := json.Marshal(l)
			got, gotErr := l.AppendJSON([]byte("prefix"))
			if (gotErr == nil) != (wantErr == nil) || string(got) != "prefix"+string(want) {
				t.Fatalf("AppendJSON(%#v):\n got %q, %v\nwant %q, %v", l, got, gotErr, want, wantErr)
			}
		}
	})
}

func BenchmarkLinkAppendJSON(b *testing.B) {
	e, err := Decode(fastSeeds(b)[0])
	if err != nil {
		b.Fatal(err)
	}
	l := Apply(Link{}, e)
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = l.AppendJSON(buf[:0])
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(l)
		}
	})
}
