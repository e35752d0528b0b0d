package main

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/rendezvous-rtc/rendezvous/peer"
)

// reflector sends each member's media back to it (-echo). The sending slot
// must exist in the first (and only) negotiation: prepare adds one local
// RTP track per kind to each connection before the offer or answer, and
// onTrack forwards the member's packets to the track of the same kind.
type reflector struct {
	video    bool   // reflect video too (false when -video uses the video section)
	streamID string // the MediaStream id of the return tracks

	mu     sync.Mutex
	tracks map[string]map[webrtc.RTPCodecType]*reflection // guarded by mu; by member, by kind

	wg sync.WaitGroup // RTCP readers; Add only from prepare (the peer's run loop)
}

// reflection is the return path of one kind of media to one member.
type reflection struct {
	pc    *webrtc.PeerConnection
	local *webrtc.TrackLocalStaticRTP
	ssrc  atomic.Uint32 // SSRC of the member's incoming track, 0 until it arrives
}

func newReflector(video bool, streamID string) *reflector {
	return &reflector{video: video, streamID: streamID, tracks: make(map[string]map[webrtc.RTPCodecType]*reflection)}
}

func (r *reflector) kinds() []webrtc.RTPCodecType {
	if r.video {
		return []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio}
	}
	return []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio}
}

// prepare is peer.Config.Prepare. Offering, it offers a sendrecv section
// per kind; answering, it adds a track for each kind the offer sends, which
// pion attaches to the offered section (making it sendrecv).
func (r *reflector) prepare(remoteID string, role peer.Role, pc *webrtc.PeerConnection) error {
	for _, kind := range r.kinds() {
		if role == peer.RoleAnswer && !remoteSends(pc, kind) {
			continue
		}
		codec := videoCodecs[0].RTPCodecCapability
		if kind == webrtc.RTPCodecTypeAudio {
			codec = audioCodecs[0].RTPCodecCapability
		}
		local, err := webrtc.NewTrackLocalStaticRTP(codec, "echo-"+kind.String(), r.streamID)
		if err != nil {
			return fmt.Errorf("echo %s track: %w", kind, err)
		}
		var sender *webrtc.RTPSender
		if role == peer.RoleOffer {
			tr, err := pc.AddTransceiverFromTrack(local, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv})
			if err != nil {
				return fmt.Errorf("echo %s transceiver: %w", kind, err)
			}
			sender = tr.Sender()
		} else if sender, err = pc.AddTrack(local); err != nil {
			return fmt.Errorf("echo %s track: %w", kind, err)
		}
		rf := &reflection{pc: pc, local: local}
		r.mu.Lock()
		if r.tracks[remoteID] == nil {
			r.tracks[remoteID] = make(map[webrtc.RTPCodecType]*reflection)
		}
		r.tracks[remoteID][kind] = rf
		r.mu.Unlock()
		r.wg.Add(1)
		go r.forwardPLI(rf, sender)
	}
	return nil
}

// remoteSends reports whether the applied offer has a section of kind that
// the member sends on and that has no local track yet.
func remoteSends(pc *webrtc.PeerConnection, kind webrtc.RTPCodecType) bool {
	for _, tr := range pc.GetTransceivers() {
		d := tr.Direction()
		if tr.Kind() == kind && tr.Sender() == nil && (d == webrtc.RTPTransceiverDirectionRecvonly || d == webrtc.RTPTransceiverDirectionSendrecv) {
			return true
		}
	}
	return false
}

// forwardPLI reads the RTCP of the return path until the connection
// closes, and passes keyframe requests on to the member's own stream.
func (r *reflector) forwardPLI(rf *reflection, sender *webrtc.RTPSender) {
	defer r.wg.Done()
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if ssrc := rf.ssrc.Load(); ssrc != 0 {
					_ = rf.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
				}
			}
		}
	}
}

// onTrack is peer.Config.OnTrack: it forwards the member's packets to the
// return path of the same kind until the track ends.
func (r *reflector) onTrack(remoteID string, t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	r.mu.Lock()
	rf := r.tracks[remoteID][t.Kind()]
	r.mu.Unlock()
	if rf == nil {
		return
	}
	rf.ssrc.Store(uint32(t.SSRC()))
	if t.Kind() == webrtc.RTPCodecTypeVideo {
		// Start the reflection on a keyframe.
		_ = rf.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.SSRC())}})
	}
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		if err := rf.local.WriteRTP(pkt); err != nil {
			return
		}
	}
}

// forget drops the return paths of a member that left.
func (r *reflector) forget(remoteID string) {
	r.mu.Lock()
	delete(r.tracks, remoteID)
	r.mu.Unlock()
}

// wait waits for the RTCP readers, which end when their connections close.
func (r *reflector) wait() { r.wg.Wait() }
