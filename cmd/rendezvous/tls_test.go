package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rendezvous-rtc/rendezvous/signal"
)

// isSelfSignedLog matches the line that gives the certificate's
// fingerprint.
func isSelfSignedLog(r logRecord) bool { return r.attrs["sha256"] != "" }

// pinned returns a TLS configuration that accepts only the certificate
// whose SHA-256 is fp (as logged: hex bytes joined by colons), as a
// browser does once its user has accepted the certificate.
func pinned(fp string) *tls.Config {
	want, err := hex.DecodeString(strings.ReplaceAll(fp, ":", ""))
	return &tls.Config{
		InsecureSkipVerify: true, // the pin below replaces the chain check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if err != nil {
				return fmt.Errorf("logged fingerprint %q: %w", fp, err)
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("no certificate")
			}
			if got := sha256.Sum256(cs.PeerCertificates[0].Raw); !bytes.Equal(got[:], want) {
				return fmt.Errorf("certificate SHA-256 %X, want %s", got, fp)
			}
			return nil
		},
	}
}

// httpsGet GETs url with a client that uses tc.
func httpsGet(ctx context.Context, tc *tls.Config, url string) (int, string, error) {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// TestTLSSelfSigned runs the server with -tls-self-signed (set by its
// environment variable in one case) and checks that it logs an https URL
// and a fingerprint, serves the page over https to a client pinning that
// fingerprint (and to no other), and relays between members over wss.
func TestTLSSelfSigned(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"flag", []string{"-tls-self-signed"}, nil},
		{"env", nil, map[string]string{"RENDEZVOUS_TLS_SELF_SIGNED": "true"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s := startServer(t, tt.args, tt.env)
			soonCtx, cancelSoon := context.WithTimeout(ctx, soon)
			defer cancelSoon()
			listening := s.waitLog(t, soonCtx, isListening)
			if want := "https://" + s.addr + "/"; listening.attrs["url"] != want {
				t.Errorf("listening url %q, want %q", listening.attrs["url"], want)
			}
			rec := s.waitLog(t, soonCtx, isSelfSignedLog)
			fp := rec.attrs["sha256"]
			if len(fp) != 32*3-1 {
				t.Fatalf("fingerprint %q is not 32 hex bytes joined by colons", fp)
			}
			if rec.attrs["urls"] != "https://"+s.addr+"/" {
				t.Errorf("urls %q, want the one address the server listens on", rec.attrs["urls"])
			}
			for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
				if !strings.Contains(","+rec.attrs["hosts"]+",", ","+host+",") {
					t.Errorf("hosts %q lacks %s", rec.attrs["hosts"], host)
				}
			}
			if strings.Contains(s.logs.String(), "need HTTPS") {
				t.Errorf("the server serves https but logs that devices need it:\n%s", s.logs)
			}

			code, body, err := httpsGet(ctx, pinned(fp), "https://"+s.addr+"/")
			if err != nil || code != http.StatusOK || !strings.Contains(body, "<html") {
				t.Fatalf("GET / with the pinned certificate: %d %v %.80q", code, err, body)
			}
			other := strings.Repeat("00:", 31) + "00"
			if _, _, err := httpsGet(ctx, pinned(other), "https://"+s.addr+"/healthz"); err == nil {
				t.Errorf("a client pinning another fingerprint connected")
			}
			if _, _, err := httpsGet(ctx, &tls.Config{}, "https://"+s.addr+"/healthz"); err == nil {
				t.Errorf("a client trusting only the system's roots accepted the self-signed certificate")
			}

			dialer := &websocket.Dialer{TLSClientConfig: pinned(fp), HandshakeTimeout: soon}
			dialWSS := func() *signal.Client {
				c, err := signal.Dial(ctx, "wss://"+s.addr+"/ws", &signal.DialOptions{Dialer: dialer})
				if err != nil {
					t.Fatalf("wss: %v", err)
				}
				t.Cleanup(func() { _ = c.Close() })
				return c
			}
			a, b := dialWSS(), dialWSS()
			join(t, ctx, a, "r", &signal.JoinOptions{ID: "a"})
			join(t, ctx, b, "r", &signal.JoinOptions{ID: "b"})
			if err := a.Send(&signal.Message{Type: signal.TypeMessage, To: "b", Data: json.RawMessage(`"over wss"`)}); err != nil {
				t.Fatal(err)
			}
			if m := next(t, soonCtx, b, signal.TypeMessage); m.From != "a" || string(m.Data) != `"over wss"` {
				t.Errorf("b got %+v, want a's message", m)
			}
		})
	}
}

// TestTLSSelfSignedConflicts: -tls-self-signed with a certificate of
// one's own, from flags or the environment, or a bad value, exits 2
// with a message saying why.
func TestTLSSelfSignedConflicts(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"with cert and key", []string{"-tls-self-signed", "-tls-cert", "c.pem", "-tls-key", "k.pem"}, nil, "not both"},
		{"with cert only", []string{"-tls-self-signed", "-tls-cert", "c.pem"}, nil, "not both"},
		{"with key only", []string{"-tls-self-signed", "-tls-key", "k.pem"}, nil, "not both"},
		{"env with cert flags", []string{"-tls-cert", "c.pem", "-tls-key", "k.pem"},
			map[string]string{"RENDEZVOUS_TLS_SELF_SIGNED": "1"}, "not both"},
		{"flag with cert env", []string{"-tls-self-signed"},
			map[string]string{"RENDEZVOUS_TLS_CERT": "c.pem", "RENDEZVOUS_TLS_KEY": "k.pem"}, "not both"},
		{"bad env value", nil, map[string]string{"RENDEZVOUS_TLS_SELF_SIGNED": "maybe"}, "RENDEZVOUS_TLS_SELF_SIGNED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-addr", "127.0.0.1:0"}, tt.args...)
			code, stderr := runToExit(t, args, tt.env)
			if code != 2 || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit 2 mentioning %q", code, stderr, tt.wantErr)
			}
		})
	}
}

// TestPlainHTTPHintsSelfSigned: without TLS, the startup log's hint that
// other devices need HTTPS names -tls-self-signed.
func TestPlainHTTPHintsSelfSigned(t *testing.T) {
	s := startServer(t, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), soon)
	defer cancel()
	hint := s.waitLog(t, ctx, func(r logRecord) bool { return strings.Contains(r.attrs["msg"], "need HTTPS") })
	if !strings.Contains(hint.attrs["msg"], "-tls-self-signed") {
		t.Errorf("hint %q does not name -tls-self-signed", hint.attrs["msg"])
	}
}

// TestSelfSignedCert checks the certificate made for this machine: ECDSA
// P-256, self-signed, for server authentication, valid now and for the
// names and addresses a browser may use.
func TestSelfSignedCert(t *testing.T) {
	hosts, err := localHosts()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cert, err := selfSignedCert(hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("not signed by its own key: %v", err)
	}
	if !leaf.NotBefore.Before(now) || !leaf.NotAfter.After(now.Add(300*24*time.Hour)) || leaf.NotAfter.Sub(leaf.NotBefore) > 398*24*time.Hour {
		t.Errorf("valid %s to %s; want from before now, for most of a year, at most 398 days", leaf.NotBefore, leaf.NotAfter)
	}
	if leaf.IsCA {
		t.Error("the certificate is a CA's")
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("extended key usage %v, want server authentication", leaf.ExtKeyUsage)
	}
	want := []string{"localhost", "127.0.0.1", "::1"}
	if name, err := os.Hostname(); err == nil {
		want = append(want, name)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipnet, ok := a.(*net.IPNet); ok && !ipnet.IP.IsLoopback() {
			want = append(want, ipnet.IP.String())
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, host := range want {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("not valid for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.org", Roots: roots, CurrentTime: now}); err == nil {
		t.Error("valid for example.org")
	}
	if other, err := selfSignedCert(hosts, now); err != nil || fingerprint(other.Certificate[0]) == fingerprint(cert.Certificate[0]) {
		t.Errorf("two certificates have the same fingerprint (err %v)", err)
	}
}

// TestOtherDeviceURLs checks the URLs logged for other devices.
func TestOtherDeviceURLs(t *testing.T) {
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(192, 168, 1, 5),
		net.ParseIP("fe80::1"), net.ParseIP("2001:db8::5")}
	for _, tt := range []struct {
		addr string
		want string
	}{
		{"[::]:2013", "https://192.168.1.5:2013/ https://[2001:db8::5]:2013/"},
		{"0.0.0.0:2013", "https://192.168.1.5:2013/"},
		{"192.168.1.5:443", "https://192.168.1.5:443/"},
		{"127.0.0.1:8443", "https://127.0.0.1:8443/"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(otherDeviceURLs(ips, addr), " "); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.addr, got, tt.want)
		}
	}
}
