package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// The attacks of the abuse scenario. Each runs against the server for a
// bounded time (see attackEnv.hold) and returns when its attackers have
// stopped sending; the driver (abuse.go) then closes them and tallies how
// the server ended them.

// attackEnv is what an attack runs with.
type attackEnv struct {
	o     *options
	log   io.Writer
	sw    *swarm
	room  string  // room name prefix, unique to this run and attack
	token string  // a valid join token when the server needs one
	n     int     // attackers (noack, held: pairs)
	size  int     // message, fragment or token bytes
	rate  float64 // the attackers' total rate per second; 0: as fast as they can
	end   time.Time
	sent  atomic.Int64 // what the attackers wrote: messages, pings, joins, body bytes
	rooms atomic.Int64 // rooms named by newRoom
}

// newRoom names a room no attacker has used yet: a connection that comes
// back does not find its old seat still held.
func (e *attackEnv) newRoom() string {
	return e.room + strconv.FormatInt(e.rooms.Add(1), 10)
}

// keepaliveEvery is how often the noack and fragment attackers send a
// control frame to stay alive.
const keepaliveEvery = 2 * time.Second

// slowBodyEvery is the pace of slowbody: one byte per interval.
const slowBodyEvery = time.Second

// slowBodyLength is slowbody's Content-Length: under net/http's 256 KiB,
// so that a server discards a body its handler did not read rather than
// closing the connection at once; at a byte a second it never ends.
const slowBodyLength = 100000

// hold keeps the attack going until -duration has passed and, for an
// attack with a timeout, until the server has ended every target or
// timeout + -grace has passed since the last target began.
func (e *attackEnv) hold(ctx context.Context, timeout time.Duration) {
	for ctx.Err() == nil {
		now := time.Now()
		if !now.Before(e.end) {
			if timeout <= 0 {
				return
			}
			all, last := e.sw.targetsState()
			if all || now.After(last.Add(timeout+e.o.grace)) {
				return
			}
		}
		sleep(ctx, 20*time.Millisecond)
	}
}

// dialJoined opens a WebSocket attacker to node k (anyNode: the next in
// turn) and joins room (as id, when not empty); it fails unless the
// server created or joined.
func (e *attackEnv) dialJoined(ctx context.Context, answerPings bool, k int, room, id string) (*attacker, error) {
	a, err := e.sw.dialWS(ctx, answerPings, k)
	if err != nil {
		return nil, err
	}
	got, err := a.join(ctx, room, id, e.token)
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", room, err)
	}
	if got != "created" && got != "joined" {
		return nil, &setupError{fmt.Sprintf("join %s: the server answered %s%s", room, got, tokenHint(got))}
	}
	return a, nil
}

// setupError is an attack that cannot be set up: the server refused what
// the attack needs from it (a join).
type setupError struct{ msg string }

func (e *setupError) Error() string { return e.msg }

func tokenHint(answer string) string {
	if answer == "error unauthorized" {
		return " (give the server's -auth-secret)"
	}
	return ""
}

// pairs opens n pairs in rooms of two: receivers ("a", answering pings
// with ack, else none) and senders ("b", answering pings). Pair i's
// members are on nodes nodeOf(i, 0) and nodeOf(i, 1) of -url, as the
// fleet's are.
func (e *attackEnv) pairs(ctx context.Context, ack bool) (recv, send []*attacker, err error) {
	recv, send = make([]*attacker, e.n), make([]*attacker, e.n)
	err = parallel(ctx, e.n, e.o.concurrency, func(i int) error {
		room := e.newRoom()
		var err error
		nodes := len(e.sw.d.nodes)
		if recv[i], err = e.dialJoined(ctx, ack, nodeOf(i, 0, nodes), room, "a"); err != nil {
			return err
		}
		send[i], err = e.dialJoined(ctx, true, nodeOf(i, 1, nodes), room, "b")
		return err
	})
	return recv, send, err
}

// keepalive writes frame to every attacker of as that is not over, every
// keepaliveEvery, until stop is closed.
func keepalive(ctx context.Context, as []*attacker, frame []byte, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(keepaliveEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, a := range as {
				if a != nil && !a.over() {
					_ = a.write(frame)
				}
			}
		}
	}()
}

// sendBig makes each sender send -size-byte messages to its receiver
// ("a") at rate/n per second each (rate 0: as fast as the socket takes
// them), until stop is closed, the receiver is over (held: its seat was
// released) or the sender is.
func (e *attackEnv) sendBig(ctx context.Context, send, recv []*attacker, stop <-chan struct{}, wg *sync.WaitGroup) {
	var interval time.Duration
	if e.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(send)) / e.rate)
	}
	frame, _, _ := frameTemplate("a", e.size)
	frame = appendFrame(nil, true, opText, frame)
	for i := range send {
		wg.Add(1)
		go func(b, a *attacker) {
			defer wg.Done()
			start := time.Now()
			for k := 0; ; k++ {
				if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
					select {
					case <-stop:
						return
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
				select {
				case <-stop:
					return
				default:
				}
				// held: a dropped receiver is sent to until its seat
				// is released.
				if b.over() || a.endedYet() {
					return
				}
				if b.write(frame) != nil {
					return
				}
				e.sent.Add(1)
			}
		}(send[i], recv[i])
	}
}

// noackFrames is what a noack receiver sends to stay alive: an unsolicited
// pong and a ping of its own (the server answers the ping; the pong
// acknowledges nothing).
var noackFrames = append(appendFrame(nil, true, opPong, []byte("rvb")), appendFrame(nil, true, opPing, []byte("rvb"))...)

// attackNoack: receivers read everything the server sends them but never
// answer its pings, so that nothing they read is ever acknowledged, while
// their partners send them large messages.
func attackNoack(ctx context.Context, e *attackEnv) error {
	recv, send, err := e.pairs(ctx, false)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, a := range recv {
		a.begin(now)
		e.sw.start(a)
	}
	for _, b := range send {
		e.sw.start(b)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	keepalive(ctx, recv, noackFrames, stop, &wg)
	e.sendBig(ctx, send, recv, stop, &wg)
	e.hold(ctx, 0)
	close(stop)
	wg.Wait()
	return nil
}

// attackHeld: receivers read and acknowledge (answer pings) like any
// client for the first third of -duration, while their partners send them
// large messages; then they drop their connections without a close frame,
// so that the server holds their seats for a resume with the frames in
// flight (written but not yet acknowledged), and their partners keep
// sending to the held seats. A seat's end is the partner's peer-left.
func attackHeld(ctx context.Context, e *attackEnv) error {
	recv, send, err := e.pairs(ctx, true)
	if err != nil {
		return err
	}
	for i, b := range send {
		a := recv[i]
		b.onFrame = func(_ *attacker, f []byte) {
			if !bytes.Contains(f, []byte(`"type":"peer-left"`)) {
				return
			}
			var m struct{ Reason string }
			_ = json.Unmarshal(f, &m)
			a.ended(time.Now(), "seat released: peer-left "+m.Reason)
		}
		e.sw.start(a)
		e.sw.start(b)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	e.sendBig(ctx, send, recv, stop, &wg)
	sleep(ctx, e.o.duration/3)
	fmt.Fprintf(e.log, "  dropping %d receivers without a close frame; their partners keep sending…\n", len(recv))
	now := time.Now()
	for _, a := range recv {
		if !a.over() {
			a.begin(now)
			a.drop()
		}
	}
	e.hold(ctx, e.o.resumeWindow)
	close(stop)
	wg.Wait()
	return nil
}

// attackNojoin: connections that never join (they answer pings, so they
// look alive).
func attackNojoin(ctx context.Context, e *attackEnv) error {
	_ = parallel(ctx, e.n, e.o.concurrency, func(int) error {
		a, err := e.sw.dialWS(ctx, true, anyNode)
		if err != nil {
			return nil // counted by the swarm
		}
		a.begin(time.Now())
		e.sw.start(a)
		return nil
	})
	e.hold(ctx, e.o.joinTimeout)
	return nil
}

// attackFragment: each attacker joins a room of its own, sends the first
// fragment (-size bytes) of a text message and never the rest; then only
// pongs (it answers the server's pings, and sends an unsolicited pong
// every keepaliveEvery).
func attackFragment(ctx context.Context, e *attackEnv) error {
	payload := append([]byte(`{"type":"message","data":"`), bytes.Repeat([]byte{'x'}, max(0, e.size-26))...)
	first := appendFrame(nil, false, opText, payload)
	as := make([]*attacker, e.n)
	err := parallel(ctx, e.n, e.o.concurrency, func(i int) error {
		a, err := e.dialJoined(ctx, true, anyNode, e.newRoom(), "")
		var se *setupError
		if errors.As(err, &se) {
			return err
		}
		if err != nil {
			return nil // refused or failed: counted by the swarm
		}
		e.sw.start(a)
		if err := a.write(first); err != nil {
			return fmt.Errorf("first fragment: %w", err)
		}
		a.begin(time.Now())
		e.sent.Add(1)
		as[i] = a
		return nil
	})
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	keepalive(ctx, as, appendFrame(nil, true, opPong, []byte("rvb")), stop, &wg)
	e.hold(ctx, e.o.messageTimeout)
	close(stop)
	wg.Wait()
	return nil
}

// flood runs e.n workers until the attack's end. Each opens a connection
// with setup, then writes batch (worth per units: pings, joins, messages)
// as often as a limiter shared by the workers allows (e.rate units per
// second in all; 0: as fast as the socket takes them), and opens a new
// connection when the server ends its connection: a patient attacker
// comes back. A setupError stops the attack; other setup failures (a
// refused upgrade, a connection the server closed) are tried again.
func (e *attackEnv) flood(ctx context.Context, setup func(ctx context.Context, w int) (*attacker, error), batch func(w int) []byte, per int) error {
	lim := rate.NewLimiter(rate.Inf, per)
	if e.rate > 0 {
		lim = rate.NewLimiter(rate.Limit(e.rate), per)
	}
	fctx, cancel := context.WithDeadline(ctx, e.end)
	defer cancel()
	var fatal atomic.Pointer[setupError]
	var wg sync.WaitGroup
	for w := 0; w < e.n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			b := batch(w)
			for fctx.Err() == nil {
				a, err := setup(fctx, w)
				var se *setupError
				if errors.As(err, &se) {
					fatal.CompareAndSwap(nil, se)
					cancel()
					return
				}
				if err != nil {
					sleep(fctx, 50*time.Millisecond)
					continue
				}
				a.begin(time.Now())
				if tc, ok := a.nc.(*net.TCPConn); ok {
					// What the kernel takes beyond this, the server never
					// reads when it closes the connection: no use copying it.
					_ = tc.SetWriteBuffer(floodSendBuffer)
				}
				for fctx.Err() == nil && !a.over() {
					if lim.WaitN(fctx, per) != nil || a.write(b) != nil {
						break
					}
					e.sent.Add(int64(per))
				}
				// Let the reader see the end, so that it is recorded.
				select {
				case <-a.done:
				case <-fctx.Done():
				case <-time.After(time.Second):
				}
			}
		}(w)
	}
	wg.Wait()
	if se := fatal.Load(); se != nil {
		return se
	}
	return nil
}

// floodSetup opens a WebSocket attacker that joins a room of its own, and
// counts the server's answers.
func (e *attackEnv) floodSetup(ctx context.Context, _ int) (*attacker, error) {
	a, err := e.dialJoined(ctx, true, anyNode, e.newRoom(), "")
	if err != nil {
		return nil, err
	}
	a.onFrame = e.sw.countReply
	e.sw.start(a)
	return a, nil
}

// floodSendBuffer is the socket send buffer of a flood attacker.
const floodSendBuffer = 256 << 10

// pingBatch is the pingflood write: many empty pings.
const pingBatch = 4096

// attackPingflood: connections in rooms of their own send empty pings as
// fast as they can (or at -attack-rate in all), and read the pongs.
func attackPingflood(ctx context.Context, e *attackEnv) error {
	ping := appendFrame(nil, true, opPing, nil)
	b := bytes.Repeat(ping, pingBatch)
	return e.flood(ctx, e.floodSetup, func(int) []byte { return b }, pingBatch)
}

// attackRateflood: connections in rooms of their own send small messages
// at -attack-rate in all (default 10,000/s), far over the server's
// per-connection rate.
func attackRateflood(ctx context.Context, e *attackEnv) error {
	per := max(1, int(e.rate/100)) // a write every ~10 ms
	if e.rate <= 0 {
		per = 100
	}
	m := append([]byte(`{"type":"message","data":"`), bytes.Repeat([]byte{'r'}, max(1, e.size))...)
	m = append(m, `"}`...)
	b := bytes.Repeat(appendFrame(nil, true, opText, m), per)
	return e.flood(ctx, e.floodSetup, func(int) []byte { return b }, per)
}

// badToken is a join token of about size bytes that looks like an HS256
// JWT for any room, signed with the wrong key.
func badToken(size int) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	sig := enc.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	claims := fmt.Sprintf(`{"room":"*","exp":%d,"pad":"`, time.Now().Add(time.Hour).Unix())
	pad := max(0, (size-len(head)-len(sig)-2)*3/4-len(claims)-2)
	body := enc.EncodeToString([]byte(claims + strings.Repeat("x", pad) + `"}`))
	return head + "." + body + "." + sig
}

// attackTokenflood: connections send joins with large badly signed tokens
// at -attack-rate in all (default 2,500/s), without waiting for the
// answers; when the server closes one (five unauthorized joins), it comes
// back.
func attackTokenflood(ctx context.Context, e *attackEnv) error {
	tok := badToken(e.size)
	setup := func(ctx context.Context, w int) (*attacker, error) {
		a, err := e.sw.dialWS(ctx, true, anyNode)
		if err != nil {
			return nil, err
		}
		a.onFrame = e.sw.countReply
		e.sw.start(a)
		return a, nil
	}
	batch := func(w int) []byte {
		b, _ := json.Marshal(map[string]string{"type": "join", "room": e.room + strconv.Itoa(w), "token": tok})
		return appendFrame(nil, true, opText, b)
	}
	return e.flood(ctx, setup, batch, 1)
}

// attackIdlehttp: plain HTTP connections that make one keep-alive request
// (GET /healthz), read the answer and then stay silent.
func attackIdlehttp(ctx context.Context, e *attackEnv) error {
	var mu sync.Mutex
	var firstErr error
	_ = parallel(ctx, e.n, e.o.concurrency, func(int) error {
		a, err := e.sw.dialTCP(ctx)
		if err != nil {
			return nil
		}
		req := []byte("GET /healthz HTTP/1.1\r\nHost: " + a.host + "\r\nUser-Agent: rendezvous-bench\r\n\r\n")
		if err := idleRequest(a, req); err != nil {
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
			a.drop()
			return nil
		}
		a.begin(time.Now())
		e.sw.start(a)
		return nil
	})
	if firstErr != nil {
		return fmt.Errorf("GET /healthz: %w", firstErr)
	}
	e.hold(ctx, e.o.idleTimeout)
	return nil
}

// idleRequest makes one request on a's socket and reads the answer.
func idleRequest(a *attacker, req []byte) error {
	if err := a.write(req); err != nil {
		return err
	}
	_ = a.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer a.nc.SetReadDeadline(time.Time{})
	br := bufio.NewReader(a.nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	if br.Buffered() > 0 {
		return fmt.Errorf("%d bytes after the answer", br.Buffered())
	}
	return nil
}

// attackSlowbody: plain HTTP connections that send a POST's headers at
// once and its body (slowBodyLength bytes) one byte per slowBodyEvery.
func attackSlowbody(ctx context.Context, e *attackEnv) error {
	head := func(host string) []byte {
		return []byte("POST /healthz HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: rendezvous-bench\r\n" +
			"Content-Type: application/octet-stream\r\nContent-Length: " + strconv.Itoa(slowBodyLength) + "\r\n\r\nx")
	}
	as := make([]*attacker, e.n)
	_ = parallel(ctx, e.n, e.o.concurrency, func(i int) error {
		a, err := e.sw.dialTCP(ctx)
		if err != nil {
			return nil
		}
		a.begin(time.Now())
		e.sw.start(a)
		if a.write(head(a.host)) == nil {
			e.sent.Add(1)
		}
		as[i] = a
		return nil
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(slowBodyEvery)
		defer t.Stop()
		for sent := 1; sent < slowBodyLength; sent++ {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for _, a := range as {
				if a != nil && !a.over() && a.write([]byte{'x'}) == nil {
					e.sent.Add(1)
				}
			}
		}
	}()
	e.hold(ctx, e.o.readTimeout)
	close(stop)
	wg.Wait()
	return nil
}
