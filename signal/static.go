package signal

import (
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
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

// staticHandler serves files (the browser client) at /, with security
// headers: the page's Content-Security-Policy, no framing by other sites
// (frame-ancestors, and X-Frame-Options for older browsers), no MIME
// sniffing, and no Referer (the page's URL may carry a room name and a
// join token). Files marked by SiteFiles are served by siteHandler
// instead.
func staticHandler(files fs.FS) http.Handler {
	if site, ok := files.(siteFS); ok {
		return siteHandler(site.FS)
	}
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The browser client's files are public: other sites may import
		// signal.js (the WebSocket itself still checks the Origin).
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Content-Security-Policy", csp(r.Host))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		fileServer.ServeHTTP(w, r)
	})
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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" {
			name = "."
		}
		if !fs.ValidPath(name) || hidden(name) || !servable(files, name) {
			http.NotFound(w, r)
			return
		}
		fileServer.ServeHTTP(w, r)
	})
}

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
