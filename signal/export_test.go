package signal

// ClientFragment lets the external tests (package signal_test) build raw
// client frames.
var ClientFragment = clientFragment
