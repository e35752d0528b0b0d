package signal_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// TestSiteFiles: a user's directory (SiteFiles over an os.Root) is served
// at / without the browser client's Content-Security-Policy but with
// nosniff; directories without an index.html, hidden files and whatever
// lies outside the directory (by "..", escaped or not, or by a symbolic
// link) are 404; the server's own routes still win.
func TestSiteFiles(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "site")
	write := func(name, body string) {
		t.Helper()
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const page = "<!DOCTYPE html><script>console.log('inline')</script><script src='js/client.js'></script>"
	write("index.html", page)
	write("js/client.js", "var isInitiator;")
	write("docs/index.html", "docs")
	write("empty/readme.txt", "no index here")
	write("indexdir/index.html/x", "index.html is a directory")
	write(".git/config", "[core]")
	write(".env", "SECRET=1")
	write(".well-known/security.txt", "Contact: x")
	if err := os.WriteFile(filepath.Join(base, "secret.txt"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "secret.txt"), filepath.Join(dir, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base, filepath.Join(dir, "up")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	s := start(t, signal.Config{Files: signal.SiteFiles(root.FS())})

	for _, tt := range []struct {
		path     string
		code     int
		body     string // want the body to contain it; for 404s, to not
		jsType   bool
		noFollow bool
	}{
		{path: "/", code: 200, body: page},
		{path: "/js/client.js", code: 200, body: "isInitiator", jsType: true},
		{path: "/docs/", code: 200, body: "docs"},
		{path: "/docs", code: http.StatusMovedPermanently, noFollow: true},
		{path: "/empty/", code: 404, body: "readme.txt"},
		{path: "/empty", code: 404, body: "readme.txt"},
		{path: "/indexdir/", code: 404, body: "x"},
		{path: "/empty/readme.txt", code: 200, body: "no index here"},
		{path: "/.git/config", code: 404, body: "[core]"},
		{path: "/.env", code: 404, body: "SECRET"},
		{path: "/js/../.env", code: 404, body: "SECRET"},
		{path: "/.well-known/security.txt", code: 200, body: "Contact"},
		{path: "/link.txt", code: 404, body: "outside"},
		{path: "/up/secret.txt", code: 404, body: "outside"},
		{path: "/missing.html", code: 404},
	} {
		client := http.Client{Timeout: 10 * time.Second}
		if tt.noFollow {
			client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		}
		resp, err := client.Get(s.HTTP.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s: %d, want %d", tt.path, resp.StatusCode, tt.code)
		}
		if tt.body != "" && strings.Contains(string(b), tt.body) != (tt.code == 200) {
			t.Errorf("GET %s: body %q (want %q in it: %v)", tt.path, b, tt.body, tt.code == 200)
		}
		if tt.jsType && !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
			t.Errorf("GET %s: Content-Type %q", tt.path, resp.Header.Get("Content-Type"))
		}
		if resp.StatusCode == 200 {
			h := resp.Header
			if h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", tt.path, h.Get("X-Content-Type-Options"))
			}
			for _, name := range []string{"Content-Security-Policy", "X-Frame-Options", "Access-Control-Allow-Origin"} {
				if h.Get(name) != "" {
					t.Errorf("GET %s: %s %q; a user's site gets none", tt.path, name, h.Get(name))
				}
			}
		}
	}

	// Paths that leave the directory, as a client may send them unclean.
	for _, target := range []string{"/../secret.txt", "/%2e%2e/secret.txt", "/js/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt"} {
		if code, body := rawGet(t, s.HTTP.Listener.Addr().String(), target); code == 200 || strings.Contains(body, "outside") {
			t.Errorf("GET %s: %d %q, want it refused", target, code, body)
		}
	}

	// The server's routes come first.
	if resp, err := http.Get(s.HTTP.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /healthz: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// The same files not marked as a site get the browser client's policy.
	plain := start(t, signal.Config{Files: fstest.MapFS{"index.html": {Data: []byte(page)}}})
	resp, err := http.Get(plain.HTTP.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("the browser client's files: Content-Security-Policy %q", resp.Header.Get("Content-Security-Policy"))
	}
}

// rawGet sends a GET for target exactly as written (no client-side
// cleaning) and returns the status and body.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
