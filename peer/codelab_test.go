package peer

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// codelabConfig is config in the codelab dialect, traced by tr.
func codelabConfig(t testing.TB, url, room, id string, timeout time.Duration, tr *trace) Config {
	t.Helper()
	cfg := config(t, url, room, id)
	cfg.Codelab = &Codelab{GotMediaTimeout: timeout}
	return traced(cfg, tr)
}

// codelabData decodes the data of a codelab signal: its type ("" for a
// string) and the string or object.
func codelabData(t testing.TB, m *signal.Message) (typ string, str string, obj map[string]any) {
	t.Helper()
	if json.Unmarshal(m.Data, &str) == nil {
		return "", str, nil
	}
	if err := json.Unmarshal(m.Data, &obj); err != nil {
		t.Fatalf("message data %s is neither a string nor an object", m.Data)
	}
	typ, _ = obj["type"].(string)
	return typ, "", obj
}

// TestCodelabPair: two peers in the codelab dialect. The newcomer says
// "got user media" and offers nothing; the creator offers when it has
// that; every signal is a message in the codelab's shapes; the chat
// channel opens. Close sends "bye": the other hangs up before it sees the
// member leave.
func TestCodelabPair(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{})
	trA, trB := newTrace(), newTrace()
	a := join(t, ctx, codelabConfig(t, srv.URL, "codelab", "a", time.Minute, trA))
	b := join(t, ctx, codelabConfig(t, srv.URL, "codelab", "b", time.Minute, trB))
	waitChannel(t, ctx, a, b)

	check := func(name string, tr *trace, to string, want map[string]bool) {
		t.Helper()
		tr.mu.Lock()
		defer tr.mu.Unlock()
		got := map[string]bool{}
		for _, m := range tr.pushed {
			if isSignal(&m) {
				t.Errorf("%s sent a protocol v1 %s", name, m.Type)
			}
			if m.Type != signal.TypeMessage {
				continue
			}
			typ, str, obj := codelabData(t, &m)
			switch {
			case str == codelabGotMedia:
				if m.To != "" {
					t.Errorf("%s sent %q to %q, want the whole room", name, str, m.To)
				}
				got[str] = true
			case typ == signal.TypeOffer || typ == signal.TypeAnswer:
				if sdp, _ := obj["sdp"].(string); !strings.HasPrefix(sdp, "v=0") || len(obj) != 2 {
					t.Errorf("%s sent %s %s, want {type, sdp}", name, typ, m.Data)
				}
				got[typ] = true
			case typ == signal.TypeCandidate:
				cand, _ := obj["candidate"].(string)
				_, hasLabel := obj["label"].(float64)
				_, hasID := obj["id"].(string)
				if !strings.HasPrefix(cand, "candidate:") || !hasLabel || !hasID || len(obj) != 4 {
					t.Errorf("%s sent candidate %s, want {type, label, id, candidate}", name, m.Data)
				}
				got[typ] = true
			default:
				t.Errorf("%s sent message %s", name, m.Data)
			}
			if typ != "" && m.To != to {
				t.Errorf("%s sent %s to %q, want %q", name, typ, m.To, to)
			}
		}
		for k := range want {
			if !got[k] {
				t.Errorf("%s sent no %s", name, k)
			}
		}
		for k := range got {
			if !want[k] {
				t.Errorf("%s sent %s", name, k)
			}
		}
	}
	check("creator", trA, "b", map[string]bool{"offer": true, "candidate": true})
	check("newcomer", trB, "a", map[string]bool{codelabGotMedia: true, "answer": true, "candidate": true})

	// The creator offered once it had "got user media".
	trA.mu.Lock()
	gotMedia := slices.IndexFunc(trA.received, func(m signal.Message) bool { return string(m.Data) == `"got user media"` })
	trA.mu.Unlock()
	if gotMedia < 0 {
		t.Error("the creator never handled \"got user media\"")
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	e := nextEvent(t, ctx, a, "hang-up or peer-left", func(e Event) bool {
		return e.Type == EventHangUp || e.Type == EventPeerLeft
	})
	if e.Type != EventHangUp || e.Remote != "b" {
		t.Errorf("first %v, want hang-up b (the bye before the leave)", e)
	}
	if a.PeerConnection("b") != nil {
		t.Error("the call with b is still open after its bye")
	}
	if e := nextEvent(t, ctx, a, "peer-left", func(e Event) bool { return e.Type == EventPeerLeft }); e.Reason != signal.ReasonLeft {
		t.Errorf("peer-left reason %q", e.Reason)
	}
}

// rawMember is a protocol v1 client in a room, as the gateway makes of a
// codelab page: the test sends its messages itself, and reads the
// messages relayed to it from msgs.
type rawMember struct {
	t    testing.TB
	c    *signal.Client
	msgs chan *signal.Message // relayed messages
}

func joinRaw(t testing.TB, ctx context.Context, url, room, id string) *rawMember {
	t.Helper()
	c, err := signal.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join(ctx, room, &signal.JoinOptions{ID: id}); err != nil {
		_ = c.Close()
		t.Fatal(err)
	}
	r := &rawMember{t: t, c: c, msgs: make(chan *signal.Message, 1024)}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			m, err := c.Recv(context.Background())
			if err != nil {
				return
			}
			if m.Type != signal.TypeMessage {
				continue
			}
			select {
			case r.msgs <- m:
			case <-done:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		_ = c.Close()
		<-stopped
	})
	return r
}

// send sends a message whose data is the JSON text data, to the room.
func (r *rawMember) send(data string) {
	r.t.Helper()
	if err := r.c.Send(&signal.Message{Type: signal.TypeMessage, Data: json.RawMessage(data)}); err != nil {
		r.t.Fatal(err)
	}
}

// sendJSON sends v, marshalled, as a message's data.
func (r *rawMember) sendJSON(v any) {
	r.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		r.t.Fatal(err)
	}
	r.send(string(b))
}

// next returns the next relayed message.
func (r *rawMember) next(ctx context.Context) *signal.Message {
	r.t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-ctx.Done():
		r.t.Fatalf("raw member: waiting for a message: %v", ctx.Err())
		return nil
	}
}

// TestCodelabOfferWithoutGotMedia: a newcomer that never says "got user
// media" (the codelab's step 6) gets the offer after GotMediaTimeout. When
// "got user media" comes after it (a step-5 page that got the offer before
// its camera, and dropped it), the offer and the candidates sent after it
// come again, the same.
func TestCodelabOfferWithoutGotMedia(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{})
	join(t, ctx, codelabConfig(t, srv.URL, "late", "bot", 50*time.Millisecond, newTrace()))
	page := joinRaw(t, ctx, srv.URL, "late", "page")

	offer := page.next(ctx)
	if typ, _, _ := codelabData(t, offer); typ != signal.TypeOffer || offer.From != "bot" {
		t.Fatalf("first message %s from %s, want the offer", offer.Data, offer.From)
	}
	var candidates []string
	for len(candidates) == 0 {
		m := page.next(ctx)
		if typ, _, _ := codelabData(t, m); typ != signal.TypeCandidate {
			t.Fatalf("after the offer: %s", m.Data)
		}
		candidates = append(candidates, string(m.Data))
	}
	page.send(`"got user media"`)
	for {
		m := page.next(ctx)
		if string(m.Data) == string(offer.Data) {
			break
		}
		candidates = append(candidates, string(m.Data)) // sent before the repeat
	}
	for i, want := range candidates {
		if m := page.next(ctx); string(m.Data) != want {
			t.Fatalf("repeated candidate %d: %s, want %s", i, m.Data, want)
		}
	}
}

// TestCodelabWaitsForGotMedia: the initiator offers to a newcomer when its
// "got user media" comes, not when it joins.
func TestCodelabWaitsForGotMedia(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{})
	tr := newTrace()
	join(t, ctx, codelabConfig(t, srv.URL, "wait", "bot", -1, tr))
	page := joinRaw(t, ctx, srv.URL, "wait", "page")
	// The bot handles this after the page's peer-joined: if it were to
	// offer on peer-joined, it would have by then.
	page.send(`{"type":"not yet"}`)
	tr.wait(t, ctx, "the bot handling the page's first message", func() bool {
		return slices.IndexFunc(tr.received, func(m signal.Message) bool { return string(m.Data) == `{"type":"not yet"}` }) >= 0
	})
	tr.mu.Lock()
	for _, m := range tr.pushed {
		if m.Type == signal.TypeMessage {
			t.Errorf("before \"got user media\" the bot sent %s", m.Data)
		}
	}
	tr.mu.Unlock()
	page.send(`"got user media"`)
	if m := page.next(ctx); !strings.Contains(string(m.Data), `"type":"offer"`) {
		t.Fatalf("got %s, want the offer", m.Data)
	}
}

// scriptedOffer is a pion PeerConnection that offers a chat channel, as
// a codelab page that is the initiator would, with its candidates
// gathered.
type scriptedOffer struct {
	pc         *webrtc.PeerConnection
	offer      string
	candidates []signal.CodelabCandidate
	dc         chan struct{} // closed when the chat channel is open
}

func newScriptedOffer(t *testing.T, ctx context.Context) *scriptedOffer {
	t.Helper()
	pc, err := loopbackAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	s := &scriptedOffer{pc: pc, dc: make(chan struct{})}
	dc, err := pc.CreateDataChannel(chat, nil)
	if err != nil {
		t.Fatal(err)
	}
	dc.OnOpen(func() { close(s.dc) })
	var mu sync.Mutex
	gathered := make(chan struct{})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		mu.Lock()
		defer mu.Unlock()
		if c == nil {
			close(gathered)
			return
		}
		init := c.ToJSON()
		s.candidates = append(s.candidates, signal.CodelabCandidate{Type: "candidate", Label: init.SDPMLineIndex, ID: init.SDPMid, Candidate: init.Candidate})
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	s.offer = offer.SDP
	select {
	case <-gathered:
	case <-ctx.Done():
		t.Fatal("gathering did not complete")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(s.candidates) == 0 {
		t.Fatal("no local candidate gathered")
	}
	return s
}

// answered applies the answer and the candidates that page receives until
// the chat channel is open.
func (s *scriptedOffer) answered(t *testing.T, ctx context.Context, page *rawMember) {
	t.Helper()
	for {
		var m *signal.Message
		select {
		case <-s.dc:
			return
		case m = <-page.msgs:
		case <-ctx.Done():
			t.Fatalf("waiting for the chat channel: %v", ctx.Err())
		}
		typ, _, obj := codelabData(t, m)
		switch typ {
		case signal.TypeAnswer:
			if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: obj["sdp"].(string)}); err != nil {
				t.Fatal(err)
			}
		case signal.TypeCandidate:
			c, err := decodeCodelabCandidate(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.pc.AddICECandidate(c); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestCodelabMalformed: as the answerer, the peer ignores what is not a
// codelab signal, reports (and drops) signals with bad fields, buffers
// candidates that come before the offer, ignores a repeated offer, hangs
// up on "bye", and answers the next call.
func TestCodelabMalformed(t *testing.T) {
	ctx := testContext(t)
	srv := signaltest.New(t, signal.Config{})
	page := joinRaw(t, ctx, srv.URL, "junk", "page")
	tr := newTrace()
	bot := join(t, ctx, codelabConfig(t, srv.URL, "junk", "bot", 0, tr))
	if m := page.next(ctx); string(m.Data) != `"got user media"` || m.From != "bot" {
		t.Fatalf("got %s from %s, want \"got user media\" from the newcomer", m.Data, m.From)
	}

	// errorsUntilHangUp sends "bye" and returns the errors bot reports
	// before its hang-up.
	errorsUntilHangUp := func() []error {
		t.Helper()
		page.send(`"bye"`)
		var errs []error
		for {
			e := nextEvent(t, ctx, bot, "hang-up", func(e Event) bool { return e.Type == EventHangUp || e.Type == EventError })
			if e.Type == EventHangUp {
				return errs
			}
			errs = append(errs, e.Err)
		}
	}

	ignored := []string{`42`, `null`, `[]`, `{}`, `"hello"`, `{"type":5}`, `{"type":"what"}`, `{"sdp":"v=0"}`}
	const host = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"
	reported := []string{
		`{"type":"offer"}`,
		`{"type":"offer","sdp":7}`,
		`{"type":"answer","sdp":""}`,
		`{"type":"answer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}`, // answers no offer
		`{"type":"offer","sdp":"not an SDP"}`,
		`{"type":"candidate"}`,
		`{"type":"candidate","candidate":5}`,
		`{"type":"candidate","candidate":"candidate:garbage"}`,
		`{"type":"candidate","label":"x","candidate":"` + host + `"}`,
		`{"type":"candidate","label":-1,"candidate":"` + host + `"}`,
	}
	for _, d := range append(ignored, reported...) {
		page.send(d)
	}
	errs := errorsUntilHangUp()
	if len(errs) != len(reported) {
		t.Errorf("%d errors, want %d (one per malformed signal): %v", len(errs), len(reported), errs)
	}
	for _, err := range errs {
		if !errors.Is(err, ErrNegotiation) && !errors.Is(err, ErrUnexpectedSDP) {
			t.Errorf("error %v wraps neither ErrNegotiation nor ErrUnexpectedSDP", err)
		}
	}

	// A call: candidates first, then the offer, twice.
	call := newScriptedOffer(t, ctx)
	for _, c := range call.candidates {
		page.sendJSON(c)
	}
	page.sendJSON(signal.CodelabSDP{Type: "offer", SDP: call.offer})
	page.sendJSON(signal.CodelabSDP{Type: "offer", SDP: call.offer})
	call.answered(t, ctx, page)
	if err := bot.WaitConnected(ctx, "page"); err != nil {
		t.Fatal(err)
	}
	if errs := errorsUntilHangUp(); len(errs) > 0 {
		t.Errorf("errors during the call: %v", errs)
	}
	tr.mu.Lock()
	answers := 0
	for _, m := range tr.pushed {
		if m.Type == signal.TypeMessage && strings.Contains(string(m.Data), `"type":"answer"`) {
			answers++
		}
	}
	tr.mu.Unlock()
	if answers != 1 {
		t.Errorf("%d answers to the offer sent twice, want 1", answers)
	}
	if bot.PeerConnection("page") != nil {
		t.Error("the call is still open after bye")
	}

	// The next call.
	call = newScriptedOffer(t, ctx)
	page.sendJSON(signal.CodelabSDP{Type: "offer", SDP: call.offer})
	for _, c := range call.candidates {
		page.sendJSON(c)
	}
	call.answered(t, ctx, page)
	if _, err := bot.WaitDataChannel(ctx, "page", chat); err != nil {
		t.Fatal(err)
	}
}
