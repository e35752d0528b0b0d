package signaltest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestCutProxy goes through what a CutProxy does: plain HTTP, rules that
// cut after and before a message, CutAll, the modes, the record of what
// it forwarded, and Close.
func TestCutProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv := signaltest.New(t, signal.Config{})
	px := signaltest.NewCutProxy(t, srv.HTTP.URL)
	wsURL := "ws" + strings.TrimPrefix(px.URL, "http") + "/ws"
	dial := func() *signal.Client {
		t.Helper()
		c, err := signal.Dial(ctx, wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	waitEnd := func(c *signal.Client, what string) {
		t.Helper()
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("%s: the connection was not cut", what)
		}
	}

	resp, err := http.Get(px.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz through the proxy: %s", resp.Status)
	}

	// Cut after created: it is delivered, then the connection ends.
	px.Arm(signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeCreated, Nth: 1})
	a := dial()
	if _, err := a.Join(ctx, "room", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	waitEnd(a, "after created")
	if err := px.WaitCuts(ctx, 1); err != nil {
		t.Fatal(err)
	}

	// Cut before joined: it is lost with the connection.
	px.Arm(signaltest.CutRule{Dir: signaltest.Down, Type: signal.TypeJoined, Nth: 1, Before: true})
	b := dial()
	if m, err := b.Join(ctx, "room", nil); !errors.Is(err, signal.ErrClosed) {
		t.Fatalf("join with joined lost: %+v, %v; want ErrClosed", m, err)
	}

	// CutAll cuts an open connection.
	c := dial()
	if _, err := c.Join(ctx, "other", nil); err != nil {
		t.Fatalf("join: %v", err)
	}
	px.CutAll()
	waitEnd(c, "CutAll")
	if err := px.WaitCuts(ctx, 3); err != nil {
		t.Fatal(err)
	}

	if got := len(px.Forwarded(signaltest.Up, signal.TypeJoin)); got != 3 {
		t.Errorf("%d joins forwarded, want 3", got)
	}
	if f := px.Forwarded(signaltest.Down, signal.TypeCreated); len(f) != 2 || f[0].Conn != 1 || f[1].Conn != 3 {
		t.Errorf("created forwarded %+v, want on connections 1 and 3", f)
	}
	if f := px.Forwarded(signaltest.Down, signal.TypeJoined); len(f) != 0 {
		t.Errorf("joined forwarded %+v, want none (lost)", f)
	}
	if n := px.Conns(); n != 3 {
		t.Errorf("%d WebSocket connections, want 3", n)
	}
	if tr := px.Transcript(); !strings.Contains(tr, "ws#3 down created") {
		t.Errorf("transcript lacks the third created:\n%s", tr)
	}

	px.SetMode(signaltest.Refuse)
	if _, err := signal.Dial(ctx, wsURL, nil); err == nil {
		t.Error("dial through a refusing proxy succeeded")
	}
	px.SetMode(signaltest.Hang)
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if _, err := signal.Dial(short, wsURL, nil); err == nil {
		t.Error("dial through a hanging proxy succeeded")
	}
	if err := px.WaitHung(ctx); err != nil {
		t.Fatal(err)
	}
	px.SetMode(signaltest.Forward)
	if _, err := dial().Join(ctx, "again", nil); err != nil {
		t.Fatalf("join after the proxy forwards again: %v", err)
	}

	px.Close()
	if err := px.WaitCuts(ctx, 100); err == nil || ctx.Err() != nil {
		t.Errorf("waiting on a closed proxy: %v, want an error at once", err)
	}
	px.Close() // again
}
