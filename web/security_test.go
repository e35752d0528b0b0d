package web_test

// The page's security headers, its Content-Security-Policy in a real
// browser, the join token taken out of the address bar, and what the page
// says when the server refuses its WebSocket.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rendezvous-rtc/rendezvous/signal"
	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// parseCSP splits a Content-Security-Policy into its directives' sources,
// by directive name. A directive given twice is reported as an error.
func parseCSP(t *testing.T, policy string) map[string][]string {
	t.Helper()
	directives := map[string][]string{}
	for _, d := range strings.Split(policy, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		if _, dup := directives[f[0]]; dup {
			t.Errorf("directive %s twice in %q", f[0], policy)
		}
		directives[f[0]] = f[1:]
	}
	return directives
}

// TestSecurityHeaders: every file of the browser client is served with a
// Content-Security-Policy that allows the page's own scripts, styles and
// connections only and forbids framing, with nosniff (and a JavaScript
// type for the scripts), no Referer, X-Frame-Options DENY, and
// Access-Control-Allow-Origin * (other sites import signal.js).
func TestSecurityHeaders(t *testing.T) {
	srv := newServer(t)
	host := srv.HTTP.Listener.Addr().String()
	want := map[string][]string{
		"default-src":     {"'none'"},
		"script-src":      {"'self'"},
		"style-src":       {"'self'"},
		"img-src":         {"'self'", "data:"},
		"media-src":       {"'self'", "blob:"},
		"connect-src":     {"'self'", "ws://" + host, "wss://" + host},
		"base-uri":        {"'none'"},
		"form-action":     {"'self'"},
		"frame-ancestors": {"'none'"},
	}
	for _, c := range []struct{ path, contentType string }{
		{"/", "text/html"},
		{"/?room=demo&token=secret", "text/html"},
		{"/index.html", "text/html"}, // redirected to / by the file server
		{"/signal.js", "text/javascript"},
		{"/app.js", "text/javascript"},
		{"/style.css", "text/css"},
		{"/no-such-file", ""},
	} {
		resp, err := http.Get(srv.HTTP.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if c.contentType != "" {
			if resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s: %s, want 200", c.path, resp.Status)
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, c.contentType) {
				t.Errorf("GET %s: Content-Type %q, want %s", c.path, ct, c.contentType)
			}
		}
		for name, value := range map[string]string{
			"Access-Control-Allow-Origin": "*",
			"X-Content-Type-Options":      "nosniff",
			"X-Frame-Options":             "DENY",
			"Referrer-Policy":             "no-referrer",
		} {
			if got := h.Get(name); got != value {
				t.Errorf("GET %s: %s: %q, want %q", c.path, name, got, value)
			}
		}
		got := parseCSP(t, h.Get("Content-Security-Policy"))
		for name, sources := range want {
			if !slices.Equal(got[name], sources) {
				t.Errorf("GET %s: Content-Security-Policy %s %q, want %q", c.path, name, got[name], sources)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("GET %s: unexpected Content-Security-Policy directive %s %q", c.path, name, got[name])
			}
		}
	}

	// A Host that could end a directive is not written into the policy.
	req, err := http.NewRequest(http.MethodGet, srv.HTTP.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "evil.example;script-src"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	policy := resp.Header.Get("Content-Security-Policy")
	got := parseCSP(t, policy)
	if !slices.Equal(got["connect-src"], []string{"'self'"}) || !slices.Equal(got["script-src"], []string{"'self'"}) {
		t.Errorf("Host %q: Content-Security-Policy %q, want connect-src 'self' alone and script-src unchanged", req.Host, policy)
	}
}

// TestContentSecurityPolicy: a whole call, media, chat, camera off and on,
// leave, raises no Content-Security-Policy violation in Chromium (every
// test's pages are checked for violations when they close; this call
// touches everything the page does). And the check sees violations: an
// inline script and eval are blocked and reported.
func TestContentSecurityPolicy(t *testing.T) {
	srv := newServer(t)
	alice := openPage(t, "alice", srv.HTTP.URL+"/?room=policy")
	bob := openPage(t, "bob", srv.HTTP.URL+"/?room=policy")
	alice.join("policy", "Alice", withMedia)
	aliceID := alice.joined()
	bob.join("policy", "Bob", withMedia)
	bobID := bob.joined()
	alice.waitVideo(bobID)
	bob.waitVideo(aliceID)
	alice.sendChat("under policy")
	bob.waitChat("Alice", "under policy")
	bob.waitFor("stats on the tile", `/RTT/.test(document.querySelector(".tile.remote .stats").textContent)`)
	bob.click("#btn-cam")
	bob.click("#btn-cam")
	alice.waitVideo(bobID)
	bob.click("#copy-link")
	bob.waitNotice("copied")
	bob.click("#log-toggle")
	bob.click("#leave")
	alice.waitNotice("peer-left")
	for _, p := range []*page{alice, bob} {
		if v := p.cspViolations(); len(v) > 0 {
			t.Errorf("%s: Content-Security-Policy violations during the call:\n%s", p.name, strings.Join(v, "\n"))
		}
	}

	// The policy is in force, and its violations are seen: an inline
	// script, a string evaluated as code and a style attribute, each
	// blocked and reported. (Code that chromedp runs in the page is exempt.)
	res := evaluate[struct {
		Inline bool
		Width  float64
	}](alice, `(() => {
		const s = document.createElement("script");
		s.textContent = "window.inlineRan = true";
		document.head.append(s);
		setTimeout("window.evalRan = true", 0);
		const d = document.createElement("div");
		d.setAttribute("style", "width: 123px");
		document.body.append(d);
		const width = d.getBoundingClientRect().width;
		d.remove();
		return {Inline: window.inlineRan === true, Width: width};
	})()`)
	if res.Inline || res.Width == 123 {
		t.Errorf("inline script ran: %t; style attribute applied: %t; want both blocked", res.Inline, res.Width == 123)
	}
	waitGo(t, "three violations to be reported", func() bool { return len(alice.cspViolations()) >= 3 })
	if evaluate[bool](alice, `window.evalRan === true`) {
		t.Error("a string passed to setTimeout ran, want it blocked")
	}
	v := strings.Join(alice.cspViolations(), "\n")
	for _, directive := range []string{"script-src", "unsafe-eval", "style-src"} {
		if !strings.Contains(v, directive) {
			t.Errorf("no violation of %s reported; violations:\n%s", directive, v)
		}
	}
	alice.forgetCSPViolations()
}

// TestTokenOutOfAddressBar: the page reads ?token= and takes it out of the
// address bar, keeping the other parameters; the join still carries it
// (the server needs one), and so does a join after a reload.
func TestTokenOutOfAddressBar(t *testing.T) {
	secret := []byte("join token secret")
	srv := newServerWith(t, signal.Config{AuthSecret: secret})
	token, err := signal.MintToken(secret, "vip", "", 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := openPage(t, "page", srv.HTTP.URL+"/?room=vip&token="+token+"&name=Tess#here")
	checkURL := func(when string) {
		t.Helper()
		loc := evaluate[struct{ Search, Hash, Href string }](p, `({Search: location.search, Hash: location.hash, Href: location.href})`)
		if loc.Search != "?room=vip&name=Tess" || loc.Hash != "#here" {
			t.Errorf("%s: the address is %s, want ?room=vip&name=Tess#here: the token out, the rest kept", when, loc.Href)
		}
	}
	checkURL("after loading")
	fields := evaluate[struct{ Room, Name string }](p, `({Room: document.getElementById("room").value, Name: document.getElementById("name").value})`)
	if fields.Room != "vip" || fields.Name != "Tess" {
		t.Errorf("the form has room %q and name %q, want vip and Tess", fields.Room, fields.Name)
	}
	p.join("vip", "Tess", dataOnly)
	p.joined()
	checkURL("in the room")

	if err := p.runTimeout(waitTimeout, chromedp.Reload()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	p.waitFor("the app to start again", appStarted)
	checkURL("after a reload")
	p.join("vip", "Tess", dataOnly)
	p.joined()
}

// hostRewritingProxy starts a reverse proxy to srv that does not pass the
// Host header through (as nginx without `proxy_set_header Host $host`):
// the server sees its own host, and the page's origin is the proxy's.
func hostRewritingProxy(t *testing.T, srv *signaltest.Server) *httptest.Server {
	t.Helper()
	target, err := url.Parse(srv.HTTP.URL)
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }})
	t.Cleanup(px.Close)
	return px
}

// TestWebSocketRefused: when the server refuses the page's WebSocket
// (HTTP 403: the page's origin is not among its allowed origins; 503: too
// many connections), the page says the server is up but refused it, and
// points at -origins, instead of calling it unreachable.
func TestWebSocketRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		cfg   signal.Config
		proxy bool // load the page through hostRewritingProxy
		hold  int  // connections the test opens first
	}{
		{name: "origin not allowed", proxy: true},
		{name: "too many connections", cfg: signal.Config{MaxConns: 1}, hold: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newServerWith(t, c.cfg)
			origin := srv.HTTP.URL
			if c.proxy {
				origin = hostRewritingProxy(t, srv).URL
				// The premise: the server refuses the proxy's origin.
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				_, err := signal.Dial(ctx, "ws"+strings.TrimPrefix(origin, "http")+"/ws",
					&signal.DialOptions{Header: http.Header{"Origin": {origin}}})
				cancel()
				if err == nil || !strings.Contains(err.Error(), "403") {
					t.Fatalf("a WebSocket with Origin %s through the proxy: %v, want HTTP 403", origin, err)
				}
			}
			for range c.hold {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				conn, err := signal.Dial(ctx, srv.URL, nil)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = conn.Close() })
			}
			p := openPage(t, "page", origin+"/")
			p.join("refused", "Rhea", dataOnly)
			msg := p.waitNotice("refused")
			if !strings.Contains(msg, "refused") || !strings.Contains(msg, "-origins") || strings.Contains(strings.ToLower(msg), "unreachable") {
				t.Errorf("notice = %q, want it to say the server refused the connection and to name -origins", msg)
			}
			p.waitFor("the join form back", `document.body.dataset.phase === "lobby" && !document.getElementById("join").disabled && window.rendezvous.client.state === "idle"`)
		})
	}
}

// TestSignalJSRefusedElsewhere: signal.js imported by a page of another
// site tells a server that refuses that site's origin ("refused") from
// one that is gone ("unreachable"): the /healthz probe works across
// origins too.
func TestSignalJSRefusedElsewhere(t *testing.T) {
	srv := newServer(t) // allows its own origin only
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><title>Another site</title><p>Another site</p>"))
	}))
	t.Cleanup(site.Close)
	p := openTab(t, "elsewhere", site.URL+"/")
	join := `(async () => {
		const { RendezvousClient } = await import(` + jsString(srv.HTTP.URL+"/signal.js") + `);
		const c = new RendezvousClient({ timeout: 5000 });
		try {
			await c.join("elsewhere");
			return "joined";
		} catch (err) {
			return err.code + ": " + err.message;
		} finally {
			c.close();
		}
	})()`
	res := evaluate[string](p, join)
	if !strings.HasPrefix(res, "refused: ") {
		t.Errorf("join from another origin: %q, want refused", res)
	}
	srv.HTTP.Close()
	res = evaluate[string](p, join)
	if !strings.HasPrefix(res, "unreachable: ") {
		t.Errorf("join with the server gone: %q, want unreachable", res)
	}
}
