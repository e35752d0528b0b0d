package main

// -tls-self-signed: a certificate made at start, so that browsers on other
// devices of the network (which need HTTPS for the camera) can reach the
// server without a certificate authority.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

// selfSignedValidity is how long a -tls-self-signed certificate is valid:
// a year, under the 398 days browsers accept of a certificate. Each start
// makes a new one (with a new fingerprint).
const selfSignedValidity = 365 * 24 * time.Hour

// certHosts are the names and addresses a self-signed certificate is made
// for.
type certHosts struct {
	names []string
	ips   []net.IP
}

// localHosts returns localhost, 127.0.0.1 and ::1, the machine's host
// name (and, when it has no dot, name.local, as mDNS announces it), and
// the addresses of its interfaces that are not loopback: the names by
// which a browser on this machine or on the local network reaches it.
// Addresses the machine gains after the start are not covered.
func localHosts() (certHosts, error) {
	h := certHosts{
		names: []string{"localhost"},
		ips:   []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if name, err := os.Hostname(); err == nil && name != "" && name != "localhost" {
		h.names = append(h.names, name)
		if !strings.Contains(name, ".") {
			h.names = append(h.names, name+".local")
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return certHosts{}, fmt.Errorf("-tls-self-signed: the machine's addresses: %w", err)
	}
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip := ipnet.IP
		if ip.IsLoopback() || ip.IsUnspecified() || ip.IsMulticast() ||
			slices.ContainsFunc(h.ips, ip.Equal) {
			continue
		}
		h.ips = append(h.ips, ip)
	}
	return h, nil
}

// selfSignedCert makes an ECDSA P-256 certificate for hosts, signed by its
// own key, valid from an hour before now (for clocks a little behind) for
// selfSignedValidity.
func selfSignedCert(hosts certHosts, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("-tls-self-signed: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("-tls-self-signed: serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "rendezvous self-signed", Organization: []string{"Rendezvous"}},
		DNSNames:              hosts.names,
		IPAddresses:           hosts.ips,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("-tls-self-signed: certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("-tls-self-signed: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// fingerprint is the SHA-256 of a certificate's DER bytes as browsers
// show it in their certificate viewers: upper-case hex bytes joined by
// colons.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// useSelfSigned makes a certificate for this machine and has hs serve it
// (hs.ServeTLS with no files then uses it). It returns the certificate.
func useSelfSigned(hs *http.Server, now time.Time) (tls.Certificate, error) {
	hosts, err := localHosts()
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := selfSignedCert(hosts, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	if hs.TLSConfig == nil {
		hs.TLSConfig = &tls.Config{}
	}
	hs.TLSConfig.Certificates = append(hs.TLSConfig.Certificates, cert)
	return cert, nil
}

// logSelfSigned logs the certificate's fingerprint, for the browser's
// warning about it, and the https URLs by which other devices reach a
// server listening on addr.
func logSelfSigned(log *slog.Logger, cert tls.Certificate, addr net.Addr) {
	log.Info("self-signed certificate: browsers warn until you accept it; check that its SHA-256 fingerprint is this one",
		"sha256", fingerprint(cert.Certificate[0]),
		"hosts", strings.Join(append(slices.Clone(cert.Leaf.DNSNames), ipStrings(cert.Leaf.IPAddresses)...), ","),
		"urls", strings.Join(otherDeviceURLs(cert.Leaf.IPAddresses, addr), " "))
}

// otherDeviceURLs returns the https URL of each of ips that is neither
// loopback nor link-local (which would need a zone) when the server
// listens on every interface (only the IPv4 ones for 0.0.0.0), or the URL
// of addr itself otherwise.
func otherDeviceURLs(ips []net.IP, addr net.Addr) []string {
	host, port, err := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsUnspecified() {
		return []string{listenURL("https", addr)}
	}
	v4only := net.ParseIP(host).To4() != nil // 0.0.0.0 rather than [::]
	var urls []string
	for _, ip := range ips {
		if !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && (!v4only || ip.To4() != nil) {
			urls = append(urls, "https://"+net.JoinHostPort(ip.String(), port)+"/")
		}
	}
	return urls
}

func ipStrings(ips []net.IP) []string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return s
}
