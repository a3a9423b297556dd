package replicator_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"shortener/replicator"
)

// startGlobal starts a real three-server JetStream cluster named "global"
// on free loopback ports and returns a Conn to each server.
func startGlobal(t *testing.T) []*replicator.Conn {
	t.Helper()
	free := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	ports := []int{free(), free(), free()}
	var urls []string
	for _, p := range ports {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var conns []*replicator.Conn
	for i := range 3 {
		s, err := server.NewServer(&server.Options{ServerName: fmt.Sprintf("g%d", i), Host: "127.0.0.1", Port: -1, JetStream: true,
			StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "global", Host: "127.0.0.1", Port: ports[i]}, Routes: server.RoutesFromStr(strings.Join(urls, ","))})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		t.Cleanup(s.Shutdown)
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats not ready")
		}
		nc, err := nats.Connect(s.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		c, err := replicator.Connect(nc)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	return conns
}

// Changes made at once through two stores (two instances of the switch)
// all land: each is a compare-and-set, repeated on a conflict, on a single
// server and on a three-server cluster with the bucket R3 (where nats.go
// reports most conflicts of an update as ErrKeyRevisionMismatch, not
// ErrKeyExists). A watch sees the state as it is and every later one.
func TestSwitchStoreChangesAllLand(t *testing.T) {
	t.Run("one server", func(t *testing.T) {
		c, _ := startJS(t, "global")
		changesAllLand(t, c, c, 1)
	})
	t.Run("R3", func(t *testing.T) {
		cs := startGlobal(t)
		changesAllLand(t, cs[0], cs[2], 3)
	})
}

func changesAllLand(t *testing.T, c1, c2 *replicator.Conn, members int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stores := []*replicator.SwitchStore{replicator.NewSwitchStore(c1, members), replicator.NewSwitchStore(c2, members)}
	// The cluster elects its meta leader in the background: the first
	// change retries until it can create the bucket.
	for {
		_, _, err := stores[0].Change(ctx, func(*replicator.SwitchShared) error { return nil })
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	seen := make(chan replicator.SwitchShared, 1000)
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() {
		_ = stores[1].Watch(wctx, func(st replicator.SwitchShared, _ uint64) { seen <- st }, func(err error) { t.Log(err) })
	}()
	const each = 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for i, s := range stores {
		for j := range each {
			wg.Go(func() {
				name := fmt.Sprintf("r%d-%02d", i, j)
				if _, _, err := s.Change(ctx, func(st *replicator.SwitchShared) error {
					st.Drained = append(st.Drained, name)
					return nil
				}); err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	final, _, err := stores[0].Change(ctx, func(*replicator.SwitchShared) error { return nil })
	if err != nil || len(final.Drained) != 2*each {
		t.Fatalf("after %d changes through two stores: %d drained (%v) %v", 2*each, len(final.Drained), final.Drained, err)
	}
	for deadline := time.After(10 * time.Second); ; {
		select {
		case st := <-seen:
			if len(st.Drained) == 2*each {
				return
			}
		case <-deadline:
			t.Fatal("the watch never saw the last state")
		}
	}
}

// A change whose function refuses is not stored, and its error comes back
// as it is.
func TestSwitchStoreRefusedChange(t *testing.T) {
	c, _ := startJS(t, "global")
	ctx := context.Background()
	s := replicator.NewSwitchStore(c, 1)
	if _, _, err := s.Change(ctx, func(st *replicator.SwitchShared) error { st.Drained = []string{"a"}; return nil }); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Change(ctx, func(st *replicator.SwitchShared) error { st.Drained = nil; return fmt.Errorf("no") })
	if err == nil || err.Error() != "no" {
		t.Fatalf("refused change: %v", err)
	}
	st, _, err := s.Change(ctx, func(*replicator.SwitchShared) error { return nil })
	if err != nil || !slices.Equal(st.Drained, []string{"a"}) {
		t.Fatalf("after a refused change: %+v %v", st, err)
	}
}

func TestDecodeSwitchShared(t *testing.T) {
	st, err := replicator.DecodeSwitchShared([]byte(`{"drained":["eu-west"],"overrides":{"us-east":"ap-south"}}`))
	if err != nil || len(st.Drained) != 1 || st.Overrides["us-east"] != "ap-south" {
		t.Fatalf("%+v %v", st, err)
	}
	for _, bad := range []string{``, `[]`, `{"drained":"x"}`, `{"other":1}`, `{"drained":[]}{}`, `{"drained":["` + strings.Repeat("x", 70<<10) + `"]}`} {
		if st, err := replicator.DecodeSwitchShared([]byte(bad)); err == nil {
			t.Errorf("%.40q decoded: %+v", bad, st)
		}
	}
}

func FuzzDecodeSwitchShared(f *testing.F) {
	f.Add([]byte(`{"drained":["eu-west"],"overrides":{"us-east":"ap-south"}}`))
	f.Add([]byte(`{"drained":null,"overrides":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := replicator.DecodeSwitchShared(data); err == nil && len(data) > 64<<10 {
			t.Fatalf("accepted %d bytes", len(data))
		}
	})
}
