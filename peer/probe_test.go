package peer

import (
	"io"
	"net"
	"runtime"
	"testing"

	"github.com/rendezvous-rtc/rendezvous/signal/signaltest"
)

// TestClosedByServer: the probe sees the server's FIN before the client
// reads it, and only once no data is left before it.
func TestClosedByServer(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs TCP_CORK to deliver data and FIN together")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if closedByServer(client) {
		t.Fatal("closed before anything happened")
	}
	if _, err := server.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	if closedByServer(client) {
		t.Fatal("closed while the server's end is open")
	}
	// "b" and the FIN arrive in one segment.
	signaltest.Cork(server)
	if _, err := server.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	_ = server.Close()
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatal(err)
	}
	if !closedByServer(client) {
		t.Fatal("the FIN behind the data read is not seen")
	}
	if _, err := client.Read(buf); err != io.EOF {
		t.Fatalf("read after the FIN: %v, want EOF", err)
	}
}
