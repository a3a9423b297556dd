package netfault

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// clientHello records the first bytes a TLS client sends asking for name.
func clientHello(t *testing.T, name string) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		c := tls.Client(b, &tls.Config{ServerName: name, InsecureSkipVerify: name == ""})
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_ = c.Handshake()
		b.Close()
	}()
	buf := make([]byte, 16<<10)
	_ = a.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := a.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// TestReadHello: a dialer that opens with TLS is named by the server name
// it asks for, the hello stays unread for the listener, a name of no
// region names none, and a protocol line still reads as a line.
func TestReadHello(t *testing.T) {
	n := New(nil)
	n.addrs["127.9.9.1:7222"] = "us-east"
	for _, c := range []struct {
		name, want string
	}{{"us-east.nats.shortener.internal", "us-east"}, {"evil.nats.shortener.internal", ""}, {"", ""}} {
		hello := clientHello(t, c.name)
		r := bufio.NewReaderSize(bytes.NewReader(hello), maxHello)
		out := make(chan line, 1)
		n.wg.Add(1)
		n.readHello(r, out)
		l := <-out
		if l.err != nil || !l.tls || l.sni != c.name {
			t.Fatalf("hello for %q: %+v", c.name, l)
		}
		if got := n.regionOfName(l.sni); got != c.want {
			t.Errorf("hello for %q names %q, want %q", c.name, got, c.want)
		}
		if r.Buffered() != len(hello) {
			t.Errorf("hello for %q: %d of %d bytes left for the listener", c.name, r.Buffered(), len(hello))
		}
	}
	r := bufio.NewReader(bytes.NewReader([]byte("CONNECT {\"name\":\"ID1\"}\r\n")))
	out := make(chan line, 1)
	n.wg.Add(1)
	n.readHello(r, out)
	if l := <-out; l.tls || parseConnect(l.b) != "ID1" {
		t.Errorf("a plaintext CONNECT: %+v", l)
	}
	// A record longer than the buffer fails instead of hanging.
	long := append([]byte{tlsHandshake, 3, 1, 0xff, 0xff}, make([]byte, 100)...)
	r = bufio.NewReaderSize(bytes.NewReader(long), 1024)
	n.wg.Add(1)
	n.readHello(r, out)
	if l := <-out; l.err == nil {
		t.Errorf("an oversized record: %+v, want an error", l)
	}
}
