package main

// Clients of the command under test (WebSocket, HTTP, TCP), floods of a
// member that reads nothing, and a TLS certificate.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// dial connects the Go client to s; it is closed when the test ends.
func dial(t *testing.T, ctx context.Context, s *testServer) *signal.Client {
	t.Helper()
	c, err := signal.Dial(ctx, "ws://"+s.addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// join joins room and returns created or joined.
func join(t *testing.T, ctx context.Context, c *signal.Client, room string, opts *signal.JoinOptions) *signal.Message {
	t.Helper()
	m, err := c.Join(ctx, room, opts)
	if err != nil {
		t.Fatalf("join %s: %v", room, err)
	}
	return m
}

// pair returns two members of room "r", a and b.
func pair(t *testing.T, ctx context.Context, s *testServer) (a, b *signal.Client) {
	t.Helper()
	a, b = dial(t, ctx, s), dial(t, ctx, s)
	join(t, ctx, a, "r", &signal.JoinOptions{ID: "a"})
	join(t, ctx, b, "r", &signal.JoinOptions{ID: "b"})
	return a, b
}

// next returns c's next message of type typ, skipping others.
func next(t *testing.T, ctx context.Context, c *signal.Client, typ string) *signal.Message {
	t.Helper()
	m, err := c.RecvType(ctx, typ)
	if err != nil {
		t.Fatalf("waiting for %s: %v", typ, err)
	}
	return m
}

// syncWith sends a frame of no known type with ref, which the server
// answers with an error carrying ref after it has handled everything c
// sent before, and returns what c received until then, that answer
// included. (Not for a connection over its rate: the server may then
// leave the frame unanswered.)
func syncWith(t *testing.T, ctx context.Context, c *signal.Client, ref string) []*signal.Message {
	t.Helper()
	if err := c.Send(&signal.Message{Type: "sync", Ref: ref}); err != nil {
		t.Fatal(err)
	}
	var got []*signal.Message
	for {
		m, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("waiting for the answer to %s: %v", ref, err)
		}
		got = append(got, m)
		if m.Type == signal.TypeError && m.Ref == ref {
			return got
		}
	}
}

// waitEnd reads from c until the connection ends.
func waitEnd(t *testing.T, ctx context.Context, c *signal.Client) {
	t.Helper()
	for {
		_, err := c.Recv(ctx)
		if errors.Is(err, signal.ErrClosed) {
			return
		}
		if err != nil {
			t.Fatalf("the connection did not end: %v", err)
		}
	}
}

// messageFrame returns a message frame to id (to all when empty) carrying
// a string of n bytes.
func messageFrame(to string, n int) []byte {
	b, _ := json.Marshal(signal.Message{Type: signal.TypeMessage, To: to, Data: json.RawMessage(`"` + strings.Repeat("x", n) + `"`)})
	return b
}

// turnServer returns created's ICE server with the URL url.
func turnServer(t *testing.T, created *signal.Message, url string) signal.ICEServer {
	t.Helper()
	for _, ice := range created.ICEServers {
		if slices.Contains(ice.URLs, url) {
			return ice
		}
	}
	t.Fatalf("iceServers %+v lack %s", created.ICEServers, url)
	return signal.ICEServer{}
}

// tryUpgrade opens a WebSocket connection to s with header and returns
// the status of the upgrade (101 when it succeeded) and, then, the
// connection.
func tryUpgrade(ctx context.Context, s *testServer, header http.Header, dialer *websocket.Dialer) (int, *websocket.Conn, error) {
	if dialer == nil {
		dialer = websocket.DefaultDialer
	}
	ws, resp, err := dialer.DialContext(ctx, "ws://"+s.addr+"/ws", header)
	if resp != nil {
		resp.Body.Close()
	}
	switch {
	case err == nil:
		return resp.StatusCode, ws, nil
	case resp != nil:
		return resp.StatusCode, nil, nil
	}
	return 0, nil, err
}

// upgrade returns the status of a WebSocket upgrade with header; a
// connection that opened stays open until the test ends.
func upgrade(t *testing.T, ctx context.Context, s *testServer, header http.Header) int {
	t.Helper()
	code, ws, err := tryUpgrade(ctx, s, header, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ws != nil {
		t.Cleanup(func() { _ = ws.Close() })
	}
	return code
}

// upgradeMany makes n upgrades, several at once, and returns their
// statuses; the connections stay open until the test ends.
func upgradeMany(t *testing.T, ctx context.Context, s *testServer, n int) []int {
	t.Helper()
	codes := make([]int, n)
	conns := make([]*websocket.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				codes[i], conns[i], errs[i] = tryUpgrade(ctx, s, nil, nil)
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	t.Cleanup(func() {
		for _, ws := range conns {
			if ws != nil {
				_ = ws.Close()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return codes
}

// rawDial opens a gorilla connection to s (for what the Go client does
// not do: not reading, not answering pings, writing raw frames); it is
// closed when the test ends.
func rawDial(t *testing.T, ctx context.Context, s *testServer, dialer *websocket.Dialer) *websocket.Conn {
	t.Helper()
	code, ws, err := tryUpgrade(ctx, s, nil, dialer)
	if err != nil || ws == nil {
		t.Fatalf("upgrade: HTTP %d, %v", code, err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}

// tcpDial opens a TCP connection to s, closed when the test ends.
func tcpDial(t *testing.T, ctx context.Context, s *testServer) net.Conn {
	t.Helper()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// get sends a GET with header and returns the status and the body.
func get(t *testing.T, ctx context.Context, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A flood is floodCount messages of 60 KB, 12 MB in all: far more than the
// sockets' buffers hold (the server's send buffer grows to 4 MB at most
// by default on Linux; the receiver's is set to 16 KiB), and fewer than
// the default -send-queue.
const (
	floodCount = 200
	floodBytes = 60000
)

// flood makes a room of a sender and a receiver that reads nothing, sends
// the receiver a flood, and waits until the server has handled every
// message of it. It returns the receiver, which has read nothing since it
// joined, and the error that ended the flood early, if the server closed
// the sender too (as it may when it sheds buffered bytes).
func flood(t *testing.T, ctx context.Context, s *testServer) (receiver *websocket.Conn, senderErr error) {
	t.Helper()
	dialer := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(16 << 10)
		}
		return conn, err
	}}
	receiver = rawDial(t, ctx, s, dialer)
	_ = receiver.SetReadDeadline(time.Now().Add(soon))
	if err := receiver.WriteJSON(signal.Message{Type: signal.TypeJoin, Room: "flood", ID: "receiver"}); err != nil {
		t.Fatal(err)
	}
	for {
		var m signal.Message
		if err := receiver.ReadJSON(&m); err != nil {
			t.Fatalf("receiver's join: %v", err)
		}
		if m.Type == signal.TypeCreated {
			break
		}
	}
	sender := dial(t, ctx, s)
	join(t, ctx, sender, "flood", &signal.JoinOptions{ID: "sender"})
	frame := messageFrame("", floodBytes) // to all: once the receiver is gone, to nobody, without an error
	for range floodCount {
		if err := sender.SendRaw(frame); err != nil {
			return receiver, err
		}
	}
	if err := sender.Send(&signal.Message{Type: "sync", Ref: "flooded"}); err != nil {
		return receiver, err
	}
	for {
		m, err := sender.Recv(ctx)
		if err != nil {
			return receiver, err
		}
		if m.Type == signal.TypeError && m.Ref == "flooded" {
			return receiver, nil
		}
	}
}

// floodAll floods like flood, and fails the test if the sender could not
// send the whole flood.
func floodAll(t *testing.T, ctx context.Context, s *testServer) *websocket.Conn {
	t.Helper()
	receiver, err := flood(t, ctx, s)
	if err != nil {
		t.Fatalf("the sender could not send the whole flood: %v", err)
	}
	return receiver
}

// receive reads a flood's messages from ws until it has them all or the
// connection ends, and returns how many it read. Each message must come
// within soon.
func receive(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	n := 0
	for n < floodCount {
		var m signal.Message
		_ = ws.SetReadDeadline(time.Now().Add(soon))
		err := ws.ReadJSON(&m)
		if isTimeout(err) {
			t.Fatalf("after %d messages the connection neither ended nor brought more for %s", n, soon)
		}
		if err != nil {
			return n
		}
		if m.Type == signal.TypeMessage {
			n++
		}
	}
	return n
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key to
// files, and returns their paths and a pool that trusts it.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "rendezvous test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
