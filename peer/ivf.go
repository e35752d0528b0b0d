package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

// NewVP8Track returns a VP8 video track to put in Config.Tracks and feed
// with StreamIVF.
func NewVP8Track(id, streamID string) (*webrtc.TrackLocalStaticSample, error) {
	t, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, id, streamID)
	if err != nil {
		return nil, fmt.Errorf("peer: new VP8 track: %w", err)
	}
	return t, nil
}

// ivfFrame is one frame and its presentation time from the file's start.
type ivfFrame struct {
	data []byte
	at   time.Duration
}

// ivfFile reads the frames of a VP8 IVF file, rewinding at the end when
// looping.
type ivfFile struct {
	src     io.ReadSeeker
	loop    bool
	r       *ivfreader.IVFReader
	num     uint64        // time base numerator: seconds per tick = num/den
	den     uint64        // time base denominator
	frame   time.Duration // nominal frame duration (one tick)
	offset  time.Duration // presentation time of the current pass's start
	last    time.Duration // presentation time of the last frame read
	started bool          // a frame has been read in this pass
}

func openIVF(src io.ReadSeeker, loop bool) (*ivfFile, error) {
	f := &ivfFile{src: src, loop: loop}
	if err := f.rewind(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *ivfFile) rewind() error {
	if _, err := f.src.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("peer: rewind IVF: %w", err)
	}
	r, h, err := ivfreader.NewWith(f.src)
	if err != nil {
		return fmt.Errorf("peer: read IVF header: %w", err)
	}
	if h.FourCC != "VP80" {
		return fmt.Errorf("%w: codec %q", ErrNotVP8, h.FourCC)
	}
	f.r, f.num, f.den = r, uint64(h.TimebaseNumerator), uint64(h.TimebaseDenominator)
	f.frame = f.duration(1)
	f.started = false
	return nil
}

// duration converts IVF ticks to a duration.
func (f *ivfFile) duration(ticks uint64) time.Duration {
	return time.Duration(float64(ticks) * float64(f.num) / float64(f.den) * float64(time.Second))
}

// next returns the next frame, rewinding at the end when looping; it
// returns io.EOF at the end otherwise.
func (f *ivfFile) next() (ivfFrame, error) {
	data, h, err := f.r.ParseNextFrame()
	if errors.Is(err, io.EOF) && f.loop && f.started {
		f.offset = f.last + f.frame
		if err := f.rewind(); err != nil {
			return ivfFrame{}, err
		}
		data, h, err = f.r.ParseNextFrame()
	}
	if errors.Is(err, io.EOF) {
		return ivfFrame{}, io.EOF
	}
	if err != nil {
		return ivfFrame{}, fmt.Errorf("peer: read IVF frame: %w", err)
	}
	// ivfreader reports Timestamp = pts*den/num; the frame's time is
	// pts*num/den seconds, i.e. Timestamp*num²/den².
	pts := float64(h.Timestamp) * float64(f.num) / float64(f.den)
	at := f.offset + time.Duration(pts*float64(f.num)/float64(f.den)*float64(time.Second))
	if f.started && at <= f.last {
		at = f.last + f.frame // timestamps must grow; keep the pace
	}
	f.started, f.last = true, at
	return ivfFrame{data: data, at: at}, nil
}

// StreamIVF writes the frames of a VP8 IVF file to track, paced by the
// file's frame timestamps, until ctx ends or, unless loop is set, the file
// ends. Looping restarts the file and keeps the timestamps growing. It
// returns nil at the end of the file, ctx's error when ctx ends, and an
// error wrapping ErrNotVP8 for a file of another codec.
func StreamIVF(ctx context.Context, track *webrtc.TrackLocalStaticSample, src io.ReadSeeker, loop bool) error {
	f, err := openIVF(src, loop)
	if err != nil {
		return err
	}
	cur, err := f.next()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return err
	}
	start := time.Now().Add(-cur.at)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next, err := f.next()
		end := errors.Is(err, io.EOF)
		if err != nil && !end {
			return err
		}
		d := f.frame
		if !end {
			d = next.at - cur.at
		}
		if err := track.WriteSample(media.Sample{Data: cur.data, Duration: d}); err != nil {
			return fmt.Errorf("peer: write sample: %w", err)
		}
		if end {
			return nil
		}
		timer.Reset(time.Until(start.Add(next.at)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		cur = next
	}
}
