package signal

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"

	"github.com/klauspost/compress/gzhttp"
)

// contentSecurityPolicy is the Content-Security-Policy of the browser
// client: its own scripts and styles only (no inline ones, no eval), no
// images but its own and the favicon's data: URI, media from itself or
// blob: URLs, and network connections to its own origin only: fetch, and
// the WebSocket (CSP level 3 browsers count ws: and wss: on the same host
// as 'self'; staticHandler also names them, for older browsers). No other
// site may frame the page (frame-ancestors).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; media-src 'self' blob:; connect-src 'self'"

// contentSecurityPolicyEnd follows connect-src's sources.
const contentSecurityPolicyEnd = "; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// plainHost matches a Host header that may be written into the policy as
// it is: a name or IPv4 address, or a bracketed IPv6 address, with an
// optional port. (net/http accepts characters in Host, such as ';', that
// would end a directive.)
var plainHost = regexp.MustCompile(`^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]+)?$`)

// cacheControl is the Cache-Control of every static file: browsers keep
// a copy but ask before each use whether it is still current (If-None-Match
// with the ETag; the answer is a bodiless 304 when it is). The names of the
// files do not change with their content (app.js imports signal.js by
// name, and other sites import signal.js), so a max-age would leave a
// browser running an old client against an upgraded server until it
// expired.
const cacheControl = "no-cache"

// staticHandler serves files (the browser client) at /, with security
// headers: the page's Content-Security-Policy, no framing by other sites
// (frame-ancestors, and X-Frame-Options for older browsers), no MIME
// sniffing, and no Referer (the page's URL may carry a room name and a
// join token). Files marked by SiteFiles are served by siteHandler
// instead.
//
// Responses are compressed (gzip, when the request accepts it; see
// compress) and carry Cache-Control: no-cache and an ETag. files must not
// change while the server runs, as the embedded browser client cannot:
// each file's ETag is a hash of its content, computed once, here.
func staticHandler(files fs.FS) http.Handler {
	if site, ok := files.(siteFS); ok {
		return siteHandler(site.FS)
	}
	fileServer := http.FileServerFS(files)
	etags := hashFiles(files)
	return compress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The browser client's files are public: other sites may import
		// signal.js (the WebSocket itself still checks the Origin).
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Content-Security-Policy", csp(r.Host))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", cacheControl)
		if name, ok := servedFile(r.URL.Path); ok {
			if etag, ok := etags[name]; ok {
				h.Set("ETag", etag)
			}
		}
		// http.FileServer answers If-None-Match with 304 when it matches
		// the ETag set here.
		fileServer.ServeHTTP(w, r)
	}))
}

// hashFiles returns the strong ETag of every regular file in files, by
// its slash-separated name: a quoted SHA-256 of its content (128 bits of
// it, base64url). A file that cannot be read gets none, and is served
// without one.
func hashFiles(files fs.FS) map[string]string {
	etags := make(map[string]string)
	_ = fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil // an unreadable directory is skipped; its files get no ETag
		}
		if etag, err := hashFile(files, name); err == nil {
			etags[name] = etag
		}
		return nil
	})
	return etags
}

// hashFile returns the ETag of the file name in files (see hashFiles).
func hashFile(files fs.FS, name string) (string, error) {
	f, err := files.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", name, err)
	}
	return `"` + base64.RawURLEncoding.EncodeToString(sum.Sum(nil)[:16]) + `"`, nil
}

// servedFile returns the name of the file in an fs.FS that
// http.FileServer serves for urlPath when it serves one: a directory's
// index.html for a path that ends in "/", the file itself otherwise. It
// returns false for …/index.html, which the file server redirects to …/.
// (A directory without the "/", or a file with it, is redirected too, and
// the name returned is then not that of a file, or not found.)
func servedFile(urlPath string) (string, bool) {
	if strings.HasSuffix(urlPath, "/index.html") {
		return "", false
	}
	name := strings.TrimPrefix(path.Clean("/"+urlPath), "/")
	if strings.HasSuffix(urlPath, "/") {
		name = path.Join(name, "index.html")
	}
	return name, fs.ValidPath(name)
}

// csp returns the Content-Security-Policy for a request to host.
func csp(host string) string {
	if !plainHost.MatchString(host) {
		return contentSecurityPolicy + contentSecurityPolicyEnd
	}
	return contentSecurityPolicy + " ws://" + host + " wss://" + host + contentSecurityPolicyEnd
}

// SiteFiles marks files as a site of the user's own for Config.Files, as
// `rendezvous -static DIR` serves it in place of the embedded browser
// client (what node-static did for the origin tutorial's server). The
// server serves them at / as the browser client, except that:
//
//   - the only security header is X-Content-Type-Options: nosniff. The
//     browser client's Content-Security-Policy (and X-Frame-Options,
//     Referrer-Policy, Access-Control-Allow-Origin: *) would break pages
//     that were not written for it, such as the tutorial's inline
//     scripts; a site's own policy is its own to set.
//   - a directory is served by its index.html, and without one is 404:
//     there are no directory listings.
//   - a path with a segment that begins with "." (.git, .env) is 404,
//     except .well-known (ACME challenges, security.txt).
//   - a file's ETag is made of its modification time (in nanoseconds)
//     and size when it is served, rather than a hash of its content,
//     which would mean reading every file twice: the directory's files
//     may change while the server runs, and an edit changes the time.
//
// Like the browser client, a site is compressed and sent with
// Cache-Control: no-cache, so that a browser asks each time and gets an
// edited file at once.
//
// Paths are resolved inside files by the rules of io/fs, which have no
// ".."; for a directory on disk pass an os.Root's FS, which also refuses
// symbolic links that lead out of it.
func SiteFiles(files fs.FS) fs.FS { return siteFS{files} }

// siteFS marks a user's site (SiteFiles).
type siteFS struct{ fs.FS }

// siteHandler serves a user's site (see SiteFiles).
func siteHandler(files fs.FS) http.Handler {
	fileServer := http.FileServerFS(files)
	return compress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "."
		}
		if !fs.ValidPath(name) || hidden(name) || !servable(files, name) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", cacheControl)
		if file, ok := servedFile(r.URL.Path); ok {
			if etag, ok := statETag(files, file); ok {
				w.Header().Set("ETag", etag)
			}
		}
		fileServer.ServeHTTP(w, r)
	}))
}

// statETag returns the ETag of the file name in a user's site: its
// modification time in nanoseconds and its size, in hexadecimal (see
// SiteFiles). A directory has none.
func statETag(files fs.FS, name string) (string, bool) {
	fi, err := fs.Stat(files, name)
	if err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return fmt.Sprintf(`"%x-%x"`, fi.ModTime().UnixNano(), fi.Size()), true
}

// compress wraps h, a file server, in gzhttp's compression: gzip when the
// request's Accept-Encoding takes it (not zstd: at gzhttp's zstd level the
// browser client came out 12% larger than gzip's), for responses of
// at least 1 KiB but those compressed already (audio, video, JPEG,
// archives: gzhttp's default filter), with Vary: Accept-Encoding. A compressed response is not the same bytes as the file,
// so its ETag is made weak (W/"…"); If-None-Match compares weakly, and a
// browser revalidating its compressed copy still gets a 304. A Range
// request is answered uncompressed, as http.FileServer cuts it.
func compress(h http.Handler) http.Handler {
	wrap, err := gzhttp.NewWrapper(gzhttp.EnableZstd(false))
	if err != nil { // only for contradictory options, and there are none
		panic(fmt.Sprintf("signal: gzhttp: %v", err))
	}
	compressed := wrap(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		compressed.ServeHTTP(&weakETagWriter{ResponseWriter: w}, r)
	})
}

// weakETagWriter makes the ETag of a response weak when, as its header is
// written, it has a Content-Encoding.
type weakETagWriter struct {
	http.ResponseWriter
	wroteHeader bool
}

func (w *weakETagWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		h := w.Header()
		if etag := h.Get("ETag"); h.Get("Content-Encoding") != "" && strings.HasPrefix(etag, `"`) {
			h.Set("ETag", "W/"+etag)
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *weakETagWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *weakETagWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// hidden reports whether a slash-separated path has a segment that begins
// with "." other than ".well-known".
func hidden(name string) bool {
	for seg := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(seg, ".") && seg != "." && seg != ".well-known" {
			return true
		}
	}
	return false
}

// servable reports whether name can be opened in files (any error, such
// as an os.Root's for a link that leads out of it, counts as not found)
// and, when it is a directory, has an index.html file: http.FileServer
// would list it otherwise.
func servable(files fs.FS, name string) bool {
	fi, err := fs.Stat(files, name)
	if err != nil {
		return false
	}
	if !fi.IsDir() {
		return true
	}
	fi, err = fs.Stat(files, path.Join(name, "index.html"))
	return err == nil && !fi.IsDir()
}
