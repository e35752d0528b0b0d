package cluster

import (
	"errors"
	"fmt"
)

// Sentinel errors of the cluster package. Functions wrap them with %w, so
// test with errors.Is.
var (
	// ErrNoRoom means the directory holds no record for the room: it was
	// never claimed, or it was released.
	ErrNoRoom = errors.New("cluster: no such room in the directory")
	// ErrClaimed means another node claimed the room first. The error is a
	// *ClaimedError naming the current host.
	ErrClaimed = errors.New("cluster: room already claimed")
	// ErrConflict means a compare-and-set lost: the record changed since
	// the revision the caller read. Read it again and retry.
	ErrConflict = errors.New("cluster: room record changed concurrently")
	// ErrBadEnvelope means a tunnel message is malformed.
	ErrBadEnvelope = errors.New("cluster: bad tunnel envelope")
)

// ClaimedError is returned by a claim that lost: the room already has a
// record, whose host and revision it carries. errors.Is(err, ErrClaimed)
// holds for it.
type ClaimedError struct {
	Room string // the room name
	Host string // node id of the room's current host
	Rev  uint64 // revision of the record that won
}

func (e *ClaimedError) Error() string {
	return fmt.Sprintf("cluster: room %q already claimed by node %q (revision %d)", e.Room, e.Host, e.Rev)
}

// Is makes errors.Is(err, ErrClaimed) true for a *ClaimedError.
func (e *ClaimedError) Is(target error) bool { return target == ErrClaimed }
