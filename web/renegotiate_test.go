package web_test

// Perfect negotiation in signal.js: tracks added and removed mid-call
// (addLocalTrack, removeLocalTrack) renegotiate the connection, either
// side, glare included; an ICE restart renegotiates too.

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// startCall opens two pages in a call with camera and microphone in room
// and returns them with their ids, once each decodes the other's video.
func startCall(t *testing.T, room string) (a, b *page, idA, idB string) {
	t.Helper()
	srv := newServer(t)
	a = openPage(t, "a", srv.HTTP.URL+"/")
	b = openPage(t, "b", srv.HTTP.URL+"/")
	a.join(room, "Alice", withMedia)
	idA = a.joined()
	b.join(room, "Bob", withMedia)
	idB = b.joined()
	a.waitConnected(idB)
	b.waitConnected(idA)
	a.waitVideo(idB)
	b.waitVideo(idA)
	// Remember the connections: renegotiating must keep them.
	a.exec(fmt.Sprintf(`window.__pc = window.rendezvous.client.peers.get(%s).pc`, jsString(idB)))
	b.exec(fmt.Sprintf(`window.__pc = window.rendezvous.client.peers.get(%s).pc`, jsString(idA)))
	return a, b, idA, idB
}

// addCanvasTrack makes an animated canvas in the page, adds its video
// track with addLocalTrack, and keeps the track as window.__canvasTrack.
func (p *page) addCanvasTrack() {
	p.t.Helper()
	p.exec(`(() => {
		const canvas = document.createElement("canvas");
		canvas.width = 160; canvas.height = 120;
		const g = canvas.getContext("2d");
		let n = 0;
		window.__canvasTimer = setInterval(() => {
			n++;
			g.fillStyle = "hsl(" + (n * 7 % 360) + ", 80%, 50%)";
			g.fillRect(0, 0, 160, 120);
			g.fillStyle = "#000";
			g.fillRect(n % 160, 40, 20, 40);
		}, 40);
		const stream = canvas.captureStream(25);
		window.__canvasTrack = stream.getVideoTracks()[0];
		window.rendezvous.client.addLocalTrack(window.__canvasTrack, stream);
	})()`)
}

// videoStreamsJS evaluates to the number of inbound video streams from
// member id that decoded more than min frames.
func videoStreamsJS(id string, min int) string {
	return fmt.Sprintf(`(async () => {
		const peer = window.rendezvous.client.peers.get(%s);
		if (!peer) return 0;
		let n = 0;
		(await peer.pc.getStats()).forEach(r => { if (r.type === "inbound-rtp" && r.kind === "video" && (r.framesDecoded || 0) > %d) n++; });
		return n;
	})()`, jsString(id), min)
}

// waitTwoVideos waits until two video streams from member id decode
// (the camera and the added track), on the same RTCPeerConnection.
func (p *page) waitTwoVideos(id string) {
	p.t.Helper()
	p.waitFor("two video streams decoding from "+id, videoStreamsJS(id, 10)+`.then(n => n >= 2)`)
	if !evaluate[bool](p, fmt.Sprintf(`window.rendezvous.client.peers.get(%s).pc === window.__pc`, jsString(id))) {
		p.t.Errorf("%s: the connection to %s was replaced", p.name, id)
	}
	if n := evaluate[int](p, fmt.Sprintf(`window.rendezvous.client.peers.get(%s).stream.getVideoTracks().length`, jsString(id))); n < 2 {
		p.t.Errorf("%s: the stream of %s has %d video tracks, want 2", p.name, id, n)
	}
}

// TestAddTrackMidCall: a page adds a second video track (a canvas) in the
// middle of a call; the other page gets it on the same connection and
// decodes it. Removing it renegotiates again: its transceiver goes
// inactive on both sides.
func TestAddTrackMidCall(t *testing.T) {
	start := time.Now()
	a, b, idA, idB := startCall(t, "add-track")
	t.Logf("call up after %s", time.Since(start).Round(time.Millisecond))
	added := time.Now()
	a.addCanvasTrack()
	b.waitTwoVideos(idA)
	t.Logf("the added track decodes on the other side %s after addLocalTrack", time.Since(added).Round(time.Millisecond))
	a.waitVideo(idB) // and the camera still does

	a.exec(fmt.Sprintf(`(() => {
		const peer = window.rendezvous.client.peers.get(%s);
		window.__extra = peer._extra.get(window.__canvasTrack);
		window.__extraMid = window.__extra.mid;
		window.rendezvous.client.removeLocalTrack(window.__canvasTrack);
	})()`, jsString(idB)))
	a.waitFor("the removed track's transceiver to be inactive", `window.__extra.currentDirection === "inactive"`)
	mid := evaluate[string](a, `window.__extraMid`)
	b.waitFor("the removed track's transceiver to be inactive", fmt.Sprintf(`(() => {
		const t = window.rendezvous.client.peers.get(%s).pc.getTransceivers().find(t => t.mid === %s);
		return !!t && t.currentDirection === "inactive";
	})()`, jsString(idA), jsString(mid)))
	b.waitVideo(idA) // the camera goes on
	if !evaluate[bool](b, fmt.Sprintf(`window.rendezvous.client.peers.get(%s).pc === window.__pc`, jsString(idA))) {
		t.Error("b: the connection was replaced")
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// holdOffers makes the page's client hold the next renegotiation offer it
// receives until it has an offer of its own out (3 s at most), so that
// the two offers cross: glare, for sure. window.__glare counts the offers
// that arrived while one of its own was out.
func (p *page) holdOffers() {
	p.t.Helper()
	p.exec(`(() => {
		const c = window.rendezvous.client;
		const orig = c._onRenegotiationOffer;
		window.__glare = 0;
		c._onRenegotiationOffer = async (peer, msg) => {
			c._onRenegotiationOffer = orig; // once
			const until = performance.now() + 3000;
			while (!peer._makingOffer && peer.pc.signalingState === "stable" && performance.now() < until) {
				await new Promise(r => setTimeout(r, 10));
			}
			if (peer._makingOffer || peer.pc.signalingState !== "stable") window.__glare++;
			return orig.call(c, peer, msg);
		};
	})()`)
}

// TestGlare: both pages add a track at the same moment; the offers cross.
// The impolite side ignores the other's offer, the polite one rolls its
// own back and answers, then renegotiates its track: both tracks arrive
// and decode, on the same connection.
func TestGlare(t *testing.T) {
	start := time.Now()
	a, b, idA, idB := startCall(t, "glare")
	t.Logf("call up after %s", time.Since(start).Round(time.Millisecond))
	a.holdOffers()
	b.holdOffers()
	added := time.Now()
	var wg sync.WaitGroup
	for _, p := range []*page{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.addCanvasTrack()
		}()
	}
	wg.Wait()
	a.waitTwoVideos(idB)
	b.waitTwoVideos(idA)
	t.Logf("both added tracks decode %s after addLocalTrack", time.Since(added).Round(time.Millisecond))
	for _, p := range []*page{a, b} {
		if g := evaluate[int](p, `window.__glare`); g != 1 {
			t.Errorf("%s: %d offers crossed its own, want 1", p.name, g)
		}
	}
	politeA := evaluate[bool](a, fmt.Sprintf(`window.rendezvous.client.peers.get(%s).polite`, jsString(idB)))
	politeB := evaluate[bool](b, fmt.Sprintf(`window.rendezvous.client.peers.get(%s).polite`, jsString(idA)))
	if politeA == politeB || politeA != (idA > idB) {
		t.Errorf("polite: a (%s) %t, b (%s) %t; want the greater id polite", idA, politeA, idB, politeB)
	}
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// TestICERestart: an ICE restart renegotiates with new ICE credentials on
// both sides, on the same connection, and the call goes on: first one
// asked for with restartIce(), then the one signal.js makes when the
// connection fails. (The failure is simulated: connectionState reads
// "failed" for one connectionstatechange event; the restart that follows
// is real.)
func TestICERestart(t *testing.T) {
	start := time.Now()
	a, b, idA, idB := startCall(t, "ice-restart")
	ufrag := `(d) => (/a=ice-ufrag:(\S+)/.exec(d.sdp) || [])[1]`
	restarted := func(p *page, id string) {
		t.Helper()
		p.waitFor("new ICE credentials on both ends", fmt.Sprintf(`(() => {
			const pc = window.rendezvous.client.peers.get(%s).pc, u = %s;
			return pc.signalingState === "stable" && pc.connectionState === "connected" &&
				u(pc.localDescription) !== window.__ufrags[0] && u(pc.remoteDescription) !== window.__ufrags[1];
		})()`, jsString(id), ufrag))
		a.waitMoreFrames(idB, 10)
		b.waitMoreFrames(idA, 10)
		for _, x := range []struct {
			p  *page
			id string
		}{{a, idB}, {b, idA}} {
			if !evaluate[bool](x.p, fmt.Sprintf(`window.rendezvous.client.peers.get(%s).pc === window.__pc`, jsString(x.id))) {
				t.Errorf("%s: the connection was replaced", x.p.name)
			}
		}
	}
	saveUfrags := func(p *page, id string) string {
		return fmt.Sprintf(`const pc = window.rendezvous.client.peers.get(%s).pc, u = %s;
			window.__ufrags = [u(pc.localDescription), u(pc.remoteDescription)];`, jsString(id), ufrag)
	}

	a.exec(`(() => {` + saveUfrags(a, idB) + ` pc.restartIce(); })()`)
	restarted(a, idB)
	t.Logf("call and restartIce() done after %s", time.Since(start).Round(time.Millisecond))

	failedAt := time.Now()
	b.exec(`(() => {` + saveUfrags(b, idA) + `
		window.__icerestarts = [];
		window.rendezvous.client.on("icerestart", (d) => window.__icerestarts.push(d.id));
		Object.defineProperty(pc, "connectionState", { configurable: true, get: () => "failed" });
		try { pc.onconnectionstatechange(new Event("connectionstatechange")); } finally { delete pc.connectionState; }
	})()`)
	if got := evaluate[string](b, `window.__icerestarts.join(" ")`); got != idA {
		t.Errorf("icerestart events: %q, want %q", got, idA)
	}
	restarted(b, idA)
	t.Logf("restart after a failure: done %s after it", time.Since(failedAt).Round(time.Millisecond))
}
