// Package chromiumtest starts the headless Chromium that the real-browser
// tests drive with chromedp: it finds the binary, skips a test without it
// (fails it when CI=true), and launches it with the flags WebRTC tests need
// (a fake camera and microphone, calls on loopback, host candidates with
// plain IP addresses).
//
// CHROMIUM=/path/to/chrome picks the binary explicitly.
package chromiumtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// installHint says how to get Chromium; the skip and failure messages of
// Need end with it.
const installHint = "install it with `apt-get update && apt-get install -y --no-install-recommends chromium` " +
	"(or set CHROMIUM=/path/to/chrome)"

// startTimeout bounds the start of the browser in Start.
const startTimeout = 30 * time.Second

// Path returns the Chromium binary: $CHROMIUM if set, else the first of
// chromium, chromium-browser, google-chrome, google-chrome-stable and chrome
// found on PATH (so /usr/bin/chromium), else "".
func Path() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Need returns the Chromium binary (see Path). Without one it skips the
// test, saying how to install it, unless CI=true, where it fails the test.
func Need(tb testing.TB) string {
	tb.Helper()
	path := Path()
	if path == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("Chromium is required in CI (CI=true) but none was found: %s", installHint)
		}
		tb.Skipf("skipping real-browser test: no Chromium found; %s", installHint)
	}
	return path
}

// options are chromedp's defaults (headless, hide-scrollbars, mute-audio,
// no background throttling, ...) plus the flags WebRTC tests need, for the
// binary path. An empty userDataDir lets chromedp make the profile
// directory, and remove it when the browser has stopped.
func options(path, userDataDir string) []chromedp.ExecAllocatorOption {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// chromedp's defaults disable these features; the flag replaces
		// its list, so they are repeated. Without mDNS obfuscation, host
		// candidates carry plain IP addresses that a Go peer can reach.
		// (chromedp v0.18 took "site-per-process" out of its list: it is
		// a switch, not a feature, and Chrome ignored it there.)
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns"),
		chromedp.WindowSize(1280, 800),
	)
	if userDataDir != "" {
		opts = append(opts, chromedp.UserDataDir(userDataDir))
	}
	return opts
}

// Start starts the Chromium at path, with its profile in userDataDir (""
// for a temporary one that chromedp removes), and returns the context of
// its first tab, from which new tabs derive, and a cleanup function that
// stops the browser and waits for its process to exit. copts go to the
// browser's chromedp.NewContext (logging, for example). Start gives up
// after 30 seconds (see Open); on an error it has already cleaned up.
func Start(path, userDataDir string, copts ...chromedp.ContextOption) (context.Context, func(), error) {
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), options(path, userDataDir)...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx, copts...)
	cleanup := func() {
		cancelBrowser()
		cancelAlloc() // waits for the browser process to exit
	}
	// The first Do starts the browser (chromedp talks to it over a pipe).
	if err := Open(ctx, startTimeout); err != nil {
		cleanup() // kills the browser; the Do in Open then returns
		return nil, nil, err
	}
	return ctx, cleanup, nil
}

// Open runs the first chromedp.Do on ctx, a context from
// chromedp.NewContext, which starts its browser or opens its tab, and
// waits for it at most timeout. ctx must carry no deadline: the browser or
// tab would be closed when it passes (chromedp does not bound the start on
// a pipe either; its WSURLReadTimeout is for the WebSocket mode). After a
// timeout the Do goes on until ctx is cancelled.
func Open(ctx context.Context, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("did not open within %s", timeout)
	}
}
