package peer

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// errNoRollback: the offer to roll back is the connection's first, so
// there is no earlier negotiated state to go back to.
var errNoRollback = errors.New("no negotiated state to roll back to")

// rollback takes pc from have-local-offer back to stable, for the polite
// side of a glare (perfect negotiation), so that it can answer incoming,
// the other side's offer.
//
// Pion (v4.2.26) refuses SetLocalDescription(rollback) from
// have-local-offer ("invalid proposed signaling state transition"), so a
// rollback is emulated: the pending offer is completed with an answer
// made here, which repeats what the remote agreed to last (its current
// remote description: same ICE credentials, fingerprint, codecs and
// directions, m-line by m-line) and marks the m-lines that are new in the
// offer inactive. Pion registers the codecs of every m-line of a remote
// description by payload type, and refuses a later one that maps a
// payload type to another codec: so the new m-lines carry the codecs the
// remote uses for that kind (in its current description, or else in
// incoming), or, when it uses none, only the offer's preferred codec.
// The connection ends stable with nothing changed on the
// wire; the transceivers of the new m-lines stay, unsent, and the change
// is offered again once the other side's offer is answered (r.needOffer).
// This answer never leaves this peer: the remote ignored the offer (it is
// the impolite side) and never sees it either.
//
// The new m-lines keep their mids, which pion cannot unset: renegotiation
// offers give new transceivers mids of this peer's own (assignMids), so
// that the other side's colliding offer cannot name the same mid for
// another track.
func rollback(pc *webrtc.PeerConnection, incoming string) error {
	pending, remote, local := pc.PendingLocalDescription(), pc.CurrentRemoteDescription(), pc.CurrentLocalDescription()
	if pending == nil || remote == nil || local == nil {
		return errNoRollback
	}
	answer, err := rollbackAnswer(pending.SDP, remote.SDP, local.SDP, incoming)
	if err != nil {
		return fmt.Errorf("rollback answer: %w", err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("apply rollback answer: %w", err)
	}
	return nil
}

// rollbackAnswer returns the answer to offer (ours, pending) that leaves
// the session as the current remote and local descriptions have it (see
// rollback); incoming is the remote's new offer.
func rollbackAnswer(offer, remote, local, incoming string) (string, error) {
	var off, rem, loc, in sdp.SessionDescription
	for _, d := range []struct {
		sd  *sdp.SessionDescription
		txt string
	}{{&off, offer}, {&rem, remote}, {&loc, local}, {&in, incoming}} {
		if err := d.sd.UnmarshalString(d.txt); err != nil {
			return "", err
		}
	}
	if len(rem.MediaDescriptions) == 0 {
		return "", errors.New("remote description has no m-line")
	}
	// The remote's DTLS role: the opposite of ours (the remote's own
	// description says actpass when it made the first offer).
	setup := "active"
	if v := setupOf(&loc); v == "active" {
		setup = "passive"
	}
	ans := rem
	ans.Attributes = nil
	for _, a := range rem.Attributes {
		if a.Key != "group" {
			ans.Attributes = append(ans.Attributes, fixSetup(a, setup))
		}
	}
	for _, a := range off.Attributes {
		if a.Key == "group" {
			ans.Attributes = append(ans.Attributes, a) // BUNDLE: the offer's mids
		}
	}
	byMid := make(map[string]*sdp.MediaDescription, len(rem.MediaDescriptions))
	for _, m := range rem.MediaDescriptions {
		if mid, ok := m.Attribute("mid"); ok {
			byMid[mid] = m
		}
	}
	ans.MediaDescriptions = make([]*sdp.MediaDescription, 0, len(off.MediaDescriptions))
	for _, m := range off.MediaDescriptions {
		mid, _ := m.Attribute("mid")
		if rm := byMid[mid]; rm != nil {
			c := *rm
			c.Attributes = make([]sdp.Attribute, 0, len(rm.Attributes))
			for _, a := range rm.Attributes {
				c.Attributes = append(c.Attributes, fixSetup(a, setup))
			}
			ans.MediaDescriptions = append(ans.MediaDescriptions, &c)
			continue
		}
		codecs := sectionOfKind(m.MediaName.Media, &rem, &in)
		ans.MediaDescriptions = append(ans.MediaDescriptions, inactiveSection(m, rem.MediaDescriptions[0], codecs, setup))
	}
	b, err := ans.Marshal()
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// sectionOfKind returns the first m-line of media kind (video, audio) in
// the first of sds that has one, or nil.
func sectionOfKind(kind string, sds ...*sdp.SessionDescription) *sdp.MediaDescription {
	for _, sd := range sds {
		for _, m := range sd.MediaDescriptions {
			if m.MediaName.Media == kind {
				return m
			}
		}
	}
	return nil
}

// codecAttribute reports whether a is an attribute of the codecs or RTP
// header extensions of an m-line.
func codecAttribute(a sdp.Attribute) bool {
	switch a.Key {
	case "rtpmap", "fmtp", "rtcp-fb", "extmap":
		return true
	}
	return false
}

// inactiveSection answers offered m-line m, new in the offer, as
// inactive: its mid, with the codecs of the remote's m-line codecs (when
// nil, the offer's preferred codec only), and the transport attributes
// (ICE credentials, fingerprint) of the remote's m-line tmpl.
func inactiveSection(m, tmpl, codecs *sdp.MediaDescription, setup string) *sdp.MediaDescription {
	c := *m
	c.Attributes = nil
	c.MediaName.Formats = m.MediaName.Formats[:min(1, len(m.MediaName.Formats))]
	if codecs != nil {
		c.MediaName.Formats = codecs.MediaName.Formats
		for _, a := range codecs.Attributes {
			if codecAttribute(a) {
				c.Attributes = append(c.Attributes, a)
			}
		}
	}
	for _, a := range m.Attributes {
		switch {
		case codecAttribute(a):
			if codecs != nil || (a.Key != "extmap" && !forFormat(a.Value, c.MediaName.Formats)) {
				continue
			}
		case a.Key == "mid", a.Key == "rtcp-mux", a.Key == "rtcp-rsize":
		default:
			continue // transport, direction, ssrc, msid: not the offer's
		}
		c.Attributes = append(c.Attributes, a)
	}
	for _, a := range tmpl.Attributes {
		switch a.Key {
		case "ice-ufrag", "ice-pwd", "fingerprint", "setup":
			c.Attributes = append(c.Attributes, fixSetup(a, setup))
		}
	}
	c.Attributes = append(c.Attributes, sdp.Attribute{Key: "inactive"})
	return &c
}

// forFormat reports whether a codec attribute's value ("96 VP8/90000")
// is about one of formats.
func forFormat(value string, formats []string) bool {
	pt, _, _ := strings.Cut(value, " ")
	return slices.Contains(formats, pt)
}

// setupOf returns the a=setup value of sd (session or first m-line).
func setupOf(sd *sdp.SessionDescription) string {
	if v, ok := sd.Attribute("setup"); ok {
		return v
	}
	for _, m := range sd.MediaDescriptions {
		if v, ok := m.Attribute("setup"); ok {
			return v
		}
	}
	return ""
}

// fixSetup returns a, with an a=setup of actpass (an offer's) replaced
// by setup.
func fixSetup(a sdp.Attribute, setup string) sdp.Attribute {
	if a.Key == "setup" && a.Value == "actpass" {
		a.Value = setup
	}
	return a
}
