package signal_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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

// fetched is a response to fetch, its body decoded.
type fetched struct {
	code   int
	header http.Header
	wire   int    // bytes of body on the wire
	body   []byte // decoded
}

// fetch sends a request for url with the given headers, with a transport
// that neither asks for nor decodes compression by itself, and decodes a
// gzip body.
func fetch(t *testing.T, method, url string, header map[string]string) fetched {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f := fetched{code: resp.StatusCode, header: resp.Header, wire: len(raw), body: raw}
	switch enc := resp.Header.Get("Content-Encoding"); enc {
	case "":
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: gzip: %v", url, err)
		}
		if f.body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: gzip: %v", url, err)
		}
	default:
		t.Fatalf("%s: Content-Encoding %q", url, enc)
	}
	return f
}

// staticFiles is a browser client for the tests of compression and
// caching: text large enough to compress, a small text, and a JPEG
// (compressed already).
func staticFiles() fstest.MapFS {
	script := []byte(strings.Repeat("export function hello(name) { return `hello ${name}`; }\n", 200))
	return fstest.MapFS{
		"index.html":      {Data: append([]byte("<!DOCTYPE html><title>t</title>"), bytes.Repeat([]byte("<p>page</p>\n"), 200)...)},
		"app.js":          {Data: script},
		"small.css":       {Data: []byte("body { margin: 0 }\n")},
		"photo.jpg":       {Data: append([]byte("\xff\xd8\xff\xe0"), bytes.Repeat([]byte{0}, 4000)...)},
		"docs/index.html": {Data: bytes.Repeat([]byte("<p>docs</p>\n"), 200)},
	}
}

// TestStaticCompression: the browser client's files are gzipped when the
// request's Accept-Encoding takes gzip, and only then, decode to the file's bytes, and keep the security
// headers; small files and JPEGs are sent as they are; a Range request
// gets the plain bytes.
func TestStaticCompression(t *testing.T) {
	files := staticFiles()
	s := start(t, signal.Config{Files: files})
	for _, tt := range []struct {
		path, accept, wantEnc string
	}{
		{"/app.js", "", ""},
		{"/app.js", "gzip", "gzip"},
		{"/app.js", "identity", ""},
		{"/app.js", "gzip;q=0", ""},
		{"/app.js", "zstd", ""},
		{"/app.js", "gzip, deflate, br, zstd", "gzip"}, // Chromium's
		{"/app.js", "br", ""},
		{"/", "gzip", "gzip"},
		{"/docs/", "gzip", "gzip"},
		{"/small.css", "gzip", ""},
		{"/photo.jpg", "gzip", ""},
	} {
		t.Run(tt.path+" "+tt.accept, func(t *testing.T) {
			name := strings.TrimPrefix(tt.path, "/")
			if name == "" || strings.HasSuffix(name, "/") {
				name += "index.html"
			}
			header := map[string]string{}
			if tt.accept != "" {
				header["Accept-Encoding"] = tt.accept
			}
			f := fetch(t, http.MethodGet, s.HTTP.URL+tt.path, header)
			if f.code != http.StatusOK {
				t.Fatalf("%d", f.code)
			}
			if enc := f.header.Get("Content-Encoding"); enc != tt.wantEnc {
				t.Errorf("Content-Encoding %q, want %q", enc, tt.wantEnc)
			}
			if !bytes.Equal(f.body, files[name].Data) {
				t.Errorf("body (%d bytes decoded) is not the file's %d bytes", len(f.body), len(files[name].Data))
			}
			if tt.wantEnc != "" && f.wire >= len(files[name].Data) {
				t.Errorf("%d bytes on the wire for a %d-byte file", f.wire, len(files[name].Data))
			}
			if tt.wantEnc != "" && !strings.Contains(f.header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %q lacks Accept-Encoding", f.header.Get("Vary"))
			}
			checkStaticHeaders(t, f.header)
		})
	}

	// A range of a compressible file: the file's bytes, not compressed.
	f := fetch(t, http.MethodGet, s.HTTP.URL+"/app.js", map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-99"})
	if f.code != http.StatusPartialContent || f.header.Get("Content-Encoding") != "" || !bytes.Equal(f.body, files["app.js"].Data[:100]) {
		t.Errorf("Range: %d, Content-Encoding %q, %d bytes", f.code, f.header.Get("Content-Encoding"), len(f.body))
	}
	// HEAD: no body, whatever the encoding.
	if f := fetch(t, http.MethodHead, s.HTTP.URL+"/app.js", map[string]string{"Accept-Encoding": "gzip"}); f.code != http.StatusOK || f.wire != 0 {
		t.Errorf("HEAD: %d with %d bytes", f.code, f.wire)
	}
}

// checkStaticHeaders checks the browser client's security headers and its
// Cache-Control.
func checkStaticHeaders(t *testing.T, h http.Header) {
	t.Helper()
	for name, want := range map[string]string{
		"Content-Security-Policy": "script-src 'self'",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-cache",
	} {
		if !strings.Contains(h.Get(name), want) {
			t.Errorf("%s %q, want %q in it", name, h.Get(name), want)
		}
	}
}

// TestStaticETag: each of the browser client's files has a strong ETag
// that depends on its content only (the same from another server, another
// for other content), weak on a compressed response; a request whose
// If-None-Match holds it, in either form, gets a bodiless 304 with the
// same headers; a redirect gets none.
func TestStaticETag(t *testing.T) {
	files := staticFiles()
	s1, s2 := start(t, signal.Config{Files: files}), start(t, signal.Config{Files: files})
	changed := staticFiles()
	changed["app.js"] = &fstest.MapFile{Data: append(slices.Clone(files["app.js"].Data), '\n')}
	s3 := start(t, signal.Config{Files: changed})

	plain := fetch(t, http.MethodGet, s1.HTTP.URL+"/app.js", nil)
	etag := plain.header.Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 18 {
		t.Fatalf("ETag %q, want a strong (quoted) hash", etag)
	}
	if again := fetch(t, http.MethodGet, s2.HTTP.URL+"/app.js", nil).header.Get("ETag"); again != etag {
		t.Errorf("another server of the same files: ETag %q, want %q", again, etag)
	}
	if other := fetch(t, http.MethodGet, s3.HTTP.URL+"/app.js", nil).header.Get("ETag"); other == etag || other == "" {
		t.Errorf("other content: ETag %q (the first file's %q)", other, etag)
	}
	if other := fetch(t, http.MethodGet, s1.HTTP.URL+"/small.css", nil).header.Get("ETag"); other == etag || other == "" {
		t.Errorf("another file: ETag %q (app.js's %q)", other, etag)
	}
	gz := fetch(t, http.MethodGet, s1.HTTP.URL+"/app.js", map[string]string{"Accept-Encoding": "gzip"})
	if got := gz.header.Get("ETag"); got != "W/"+etag {
		t.Errorf("gzip response: ETag %q, want W/%s", got, etag)
	}
	index := fetch(t, http.MethodGet, s1.HTTP.URL+"/", nil).header.Get("ETag")
	if index == "" || index == etag {
		t.Errorf("/: ETag %q", index)
	}
	if redirect := fetch(t, http.MethodGet, s1.HTTP.URL+"/index.html", nil); redirect.code != http.StatusMovedPermanently || redirect.header.Get("ETag") != "" {
		t.Errorf("/index.html: %d with ETag %q, want a redirect without one", redirect.code, redirect.header.Get("ETag"))
	}

	for _, tt := range []struct {
		path, ifNoneMatch, accept string
		code                      int
	}{
		{"/app.js", etag, "", http.StatusNotModified},
		{"/app.js", etag, "gzip", http.StatusNotModified},
		{"/app.js", "W/" + etag, "gzip", http.StatusNotModified},
		{"/app.js", "W/" + etag, "gzip, deflate, br, zstd", http.StatusNotModified},
		{"/app.js", `"other", ` + etag, "", http.StatusNotModified},
		{"/app.js", "*", "", http.StatusNotModified},
		{"/app.js", `"other"`, "gzip", http.StatusOK},
		{"/small.css", etag, "", http.StatusOK},
		{"/", index, "gzip", http.StatusNotModified},
	} {
		f := fetch(t, http.MethodGet, s1.HTTP.URL+tt.path, map[string]string{"If-None-Match": tt.ifNoneMatch, "Accept-Encoding": tt.accept})
		if f.code != tt.code {
			t.Errorf("%s If-None-Match %s: %d, want %d", tt.path, tt.ifNoneMatch, f.code, tt.code)
			continue
		}
		checkStaticHeaders(t, f.header)
		if f.code == http.StatusNotModified && (f.wire != 0 || f.header.Get("ETag") == "") {
			t.Errorf("304 with %d bytes, ETag %q", f.wire, f.header.Get("ETag"))
		}
	}
}

// TestSiteFilesCaching: a user's site is compressed and sent with
// Cache-Control: no-cache and an ETag of its modification time and size,
// which answers If-None-Match with 304 until the file changes.
func TestSiteFilesCaching(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "index.html")
	page := bytes.Repeat([]byte("<p>my own page</p>\n"), 100)
	if err := os.WriteFile(file, page, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	s := start(t, signal.Config{Files: signal.SiteFiles(root.FS())})

	f := fetch(t, http.MethodGet, s.HTTP.URL+"/", map[string]string{"Accept-Encoding": "gzip"})
	if f.code != http.StatusOK || f.header.Get("Content-Encoding") != "gzip" || !bytes.Equal(f.body, page) {
		t.Fatalf("GET /: %d, Content-Encoding %q, body %d bytes", f.code, f.header.Get("Content-Encoding"), len(f.body))
	}
	if cc := f.header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	if csp := f.header.Get("Content-Security-Policy"); csp != "" {
		t.Errorf("a user's site got Content-Security-Policy %q", csp)
	}
	etag := strings.TrimPrefix(f.header.Get("ETag"), "W/")
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q", f.header.Get("ETag"))
	}
	if again := fetch(t, http.MethodGet, s.HTTP.URL+"/", nil).header.Get("ETag"); again != etag {
		t.Errorf("ETag %q, then %q", etag, again)
	}
	if f := fetch(t, http.MethodGet, s.HTTP.URL+"/", map[string]string{"If-None-Match": f.header.Get("ETag"), "Accept-Encoding": "gzip"}); f.code != http.StatusNotModified {
		t.Errorf("If-None-Match the ETag: %d, want 304", f.code)
	}

	// The same size, another modification time: a new ETag, and the
	// old one no longer matches.
	edited := bytes.ToUpper(page)
	if err := os.WriteFile(file, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(file, later, later); err != nil {
		t.Fatal(err)
	}
	f = fetch(t, http.MethodGet, s.HTTP.URL+"/", map[string]string{"If-None-Match": etag})
	if f.code != http.StatusOK || !bytes.Equal(f.body, edited) || f.header.Get("ETag") == etag {
		t.Errorf("after an edit, If-None-Match the old ETag: %d, ETag %q (was %q)", f.code, f.header.Get("ETag"), etag)
	}
	if f := fetch(t, http.MethodGet, s.HTTP.URL+"/missing.js", map[string]string{"Accept-Encoding": "gzip"}); f.code != http.StatusNotFound || f.header.Get("ETag") != "" {
		t.Errorf("missing file: %d, ETag %q", f.code, f.header.Get("ETag"))
	}
}
