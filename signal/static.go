package signal

import (
	"io/fs"
	"net/http"
	"regexp"
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
// join token).
func staticHandler(files fs.FS) http.Handler {
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
