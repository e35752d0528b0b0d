package web_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// setupRuns is how many calls one iteration of BenchmarkSetupTimes
// measures per pairing.
const setupRuns = 5

// BenchmarkSetupTimes measures, for browser↔browser and browser↔bot calls,
// the time from the second page's click on Join to connected and to the
// first decoded video frame:
//
//	go test ./web -run XXX -bench SetupTimes
//
// Each iteration measures setupRuns calls, after one warm-up call; the
// benchmark logs every call and reports the medians over all of them, in
// milliseconds (connected-ms, first-frame-ms, and camera-ms and joined-ms,
// the steps before). One iteration takes seconds, so the default
// -benchtime runs one; -benchtime 3x measures three times as many calls.
// ns/op, the time of a batch of calls, is not reported.
func BenchmarkSetupTimes(b *testing.B) {
	srv := newServer(b)

	b.Run("browser-browser", func(b *testing.B) {
		host := openPage(b, "host", srv.HTTP.URL+"/")
		host.join("timing", "Host", withMedia)
		hostID := host.joined()
		guest := openPage(b, "guest", srv.HTTP.URL+"/?debug")
		call := func() setupTimes {
			guest.resetTrace()
			guest.join("timing", "Guest", withMedia)
			guestID := guest.joined()
			guest.waitConnected(hostID)
			guest.waitVideo(hostID)
			guest.waitFor("the first frame to be recorded", fmt.Sprintf(`window.rendezvous.metrics.peers[%s].firstFrameAt > 0`, jsString(hostID)))
			m := guest.slowTrace(b, guest.metrics(hostID))
			guest.click("#leave")
			host.waitFor("the guest's tile to go", fmt.Sprintf(`!document.querySelector('.tile.remote[data-peer=%s]')`, jsString(guestID)))
			return m
		}
		measureSetupTimes(b, "browser↔browser", call)
	})

	b.Run("browser-bot", func(b *testing.B) {
		bt := startBot(b, srv.URL, "bot-timing")
		guest := openPage(b, "guest", srv.HTTP.URL+"/?debug")
		call := func() setupTimes {
			guest.resetTrace()
			guest.join("bot-timing", "Guest", withMedia)
			guestID := guest.joined()
			guest.waitConnected("bot")
			guest.waitVideo("bot")
			guest.waitFor("the first frame to be recorded", `window.rendezvous.metrics.peers.bot.firstFrameAt > 0`)
			m := guest.slowTrace(b, guest.metrics("bot"))
			guest.click("#leave")
			waitGo(b, "the bot to see the page leave", func() bool { return bt.p.PeerConnection(guestID) == nil })
			return m
		}
		measureSetupTimes(b, "browser↔bot", call)
	})
}

// measureSetupTimes makes a warm-up call, then b.N × setupRuns calls, and
// logs and reports their setup times.
func measureSetupTimes(b *testing.B, what string, call func() setupTimes) {
	b.Helper()
	call()
	b.ResetTimer()
	var runs []setupTimes
	for range b.N {
		for range setupRuns {
			runs = append(runs, call())
		}
	}
	b.StopTimer()
	var lines []string
	for i, r := range runs {
		lines = append(lines, fmt.Sprintf("  call %d: %v", i+1, r))
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
	connected := med(func(s setupTimes) float64 { return s.Connected })
	firstFrame := med(func(s setupTimes) float64 { return s.FirstFrame })
	camera := med(func(s setupTimes) float64 { return s.Media })
	joined := med(func(s setupTimes) float64 { return s.Joined })
	b.Logf("%s call setup, %d calls:\n%s\n  MEDIAN: join→connected %.0f ms, join→first frame %.0f ms (camera %.0f ms, joined %.0f ms)",
		what, len(runs), strings.Join(lines, "\n"), connected, firstFrame, camera, joined)
	b.ReportMetric(0, "ns/op") // the time of a batch of calls: not a figure of interest
	b.ReportMetric(connected, "connected-ms")
	b.ReportMetric(firstFrame, "first-frame-ms")
	b.ReportMetric(camera, "camera-ms")
	b.ReportMetric(joined, "joined-ms")
}

func (p *page) resetTrace() {
	p.t.Helper()
	p.exec(`(() => { window.rendezvous.trace = []; })()`)
}

// slowTrace logs the page's protocol trace (?debug) when a call took more
// than 3 s to connect, and returns m.
func (p *page) slowTrace(t testing.TB, m setupTimes) setupTimes {
	t.Helper()
	if m.Connected > 3000 {
		tr := evaluate[[]string](p, `window.rendezvous.trace`)
		t.Logf("slow call setup (%v); protocol trace:\n%s", m, strings.Join(tr, "\n"))
	}
	return m
}
