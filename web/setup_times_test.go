package web_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// setupRuns is how many calls TestSetupTimes measures per pairing, after
// one warm-up call.
const setupRuns = 5

// TestSetupTimes measures, for browser↔browser and browser↔bot calls, the
// time from the second page's click on Join to connected and to the first
// decoded video frame, and logs the medians. It asserts nothing about the
// times (they depend on the machine); it is skipped with -short.
func TestSetupTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("measures call setup times; skipped with -short")
	}
	srv := newServer(t)

	t.Run("browser-browser", func(t *testing.T) {
		host := openPage(t, "host", srv.HTTP.URL+"/")
		host.join("timing", "Host", withMedia)
		hostID := host.joined()
		guest := openPage(t, "guest", srv.HTTP.URL+"/?debug")
		var runs []setupTimes
		for i := 0; i <= setupRuns; i++ {
			guest.resetTrace()
			guest.join("timing", "Guest", withMedia)
			guestID := guest.joined()
			guest.waitConnected(hostID)
			guest.waitVideo(hostID)
			guest.waitFor("the first frame to be recorded", fmt.Sprintf(`window.rendezvous.metrics.peers[%s].firstFrameAt > 0`, jsString(hostID)))
			if i > 0 { // the first call warms up
				runs = append(runs, guest.slowTrace(t, guest.metrics(hostID)))
			}
			guest.click("#leave")
			host.waitFor("the guest's tile to go", fmt.Sprintf(`!document.querySelector('.tile.remote[data-peer=%s]')`, jsString(guestID)))
		}
		logSetupTimes(t, "browser↔browser", runs)
	})

	t.Run("browser-bot", func(t *testing.T) {
		b := startBot(t, srv.URL, "bot-timing")
		guest := openPage(t, "guest", srv.HTTP.URL+"/?debug")
		var runs []setupTimes
		for i := 0; i <= setupRuns; i++ {
			guest.resetTrace()
			guest.join("bot-timing", "Guest", withMedia)
			guestID := guest.joined()
			guest.waitConnected("bot")
			guest.waitVideo("bot")
			guest.waitFor("the first frame to be recorded", `window.rendezvous.metrics.peers.bot.firstFrameAt > 0`)
			if i > 0 {
				runs = append(runs, guest.slowTrace(t, guest.metrics("bot")))
			}
			guest.click("#leave")
			waitGo(t, "the bot to see the page leave", func() bool { return b.p.PeerConnection(guestID) == nil })
		}
		logSetupTimes(t, "browser↔bot", runs)
	})
}

func logSetupTimes(t *testing.T, what string, runs []setupTimes) {
	t.Helper()
	var lines []string
	for i, r := range runs {
		lines = append(lines, fmt.Sprintf("  run %d: %v", i+1, r))
	}
	med := func(f func(setupTimes) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		if n := len(v); n%2 == 0 {
			return (v[n/2-1] + v[n/2]) / 2
		}
		return v[len(v)/2]
	}
	t.Logf("%s call setup, %d runs:\n%s\n  MEDIAN: join→connected %.0f ms, join→first frame %.0f ms (camera %.0f ms, joined %.0f ms)",
		what, len(runs), strings.Join(lines, "\n"),
		med(func(s setupTimes) float64 { return s.Connected }),
		med(func(s setupTimes) float64 { return s.FirstFrame }),
		med(func(s setupTimes) float64 { return s.Media }),
		med(func(s setupTimes) float64 { return s.Joined }))
}

func (p *page) resetTrace() {
	p.t.Helper()
	var ok bool
	p.eval(`(() => { window.rendezvous.trace = []; return true; })()`, &ok)
}

// slowTrace logs the page's protocol trace (?debug) when a call took more
// than 3 s to connect, and returns m.
func (p *page) slowTrace(t testing.TB, m setupTimes) setupTimes {
	t.Helper()
	if m.Connected > 3000 {
		var tr []string
		p.eval(`window.rendezvous.trace`, &tr)
		t.Logf("slow call setup (%v); protocol trace:\n%s", m, strings.Join(tr, "\n"))
	}
	return m
}
