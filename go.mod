module github.com/rendezvous-rtc/rendezvous

go 1.24.0

require (
	github.com/gorilla/mux v1.8.1
	github.com/gorilla/websocket v1.5.3
	github.com/pion/sdp/v3 v3.0.20
	golang.org/x/time v0.12.0
)

require github.com/pion/randutil v0.1.0 // indirect
