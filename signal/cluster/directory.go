package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultPrefix starts the names of the KV buckets a cluster uses
// (<prefix>_rooms, <prefix>_nodes); clusters sharing one NATS account
// need different prefixes.
const DefaultPrefix = "rendezvous"

// validPrefix matches bucket prefixes: KV bucket names are [A-Za-z0-9_-],
// and the suffix takes a few bytes of the server's limit.
var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// maxRoomRecord bounds one room record in the bucket (MaxValueSize): a
// record of a room of a few hundred members fits; a bug that grows one
// without bound fails its write instead of filling the stream.
const maxRoomRecord = 256 << 10

// claimAttempts bounds how often claim retries when the record that beat
// it vanishes before it could be read.
const claimAttempts = 3

// roomRecord is a room's entry in the directory: who hosts it and who is in
// it. It is the JSON value of the room's key.
type roomRecord struct {
	Host     string         `json:"host"` // node id of the host
	Capacity int            `json:"capacity"`
	Created  time.Time      `json:"created"`
	Members  []memberRecord `json:"members,omitempty"`
}

// memberRecord is one seat in a room, kept so that another node can take
// over the room with the same members.
type memberRecord struct {
	ID         string    `json:"id"`
	Joined     time.Time `json:"joined"`
	AuthExpiry time.Time `json:"authExpiry,omitzero"`
	// No resume token: a seat rebuilt after a crash takes any token the
	// cluster minted for it, so no secret is kept in the bucket.
}

// roomEntry is one room of a listing.
type roomEntry struct {
	Room   string
	Record roomRecord
	Rev    uint64
}

// directory is the cluster's room directory: the KV bucket <prefix>_rooms,
// one key per room (the base64url of its name, since room names are any
// UTF-8 and KV keys are not), whose value is the roomRecord JSON. Every
// write is compare-and-set on the key's revision, so two nodes can never
// both believe they host a room.
//
// Reads that decide (get, and the record behind ErrClaimed) go to the
// stream leader through the $JS.API.STREAM.MSG.GET API. KV buckets allow
// direct gets, which nats.go's KeyValue.Get uses and which any replica may
// answer, possibly with a value older than a write just acknowledged; a
// node acting on such a value would lose every compare-and-set until a
// follower caught up.
type directory struct {
	nc     *nats.Conn
	kv     jetstream.KeyValue
	bucket string
	stream string // KV_<bucket>
}

// openDirectory binds the room directory of the cluster named by prefix
// ("" for DefaultPrefix), creating its bucket with the given replicas (1,
// 3 or 5; 0 means 1) if no node has yet. An existing bucket is used as it
// is, whatever its replicas.
func openDirectory(ctx context.Context, js jetstream.JetStream, prefix string, replicas int) (*directory, error) {
	bucket, err := bucketName(prefix, "rooms")
	if err != nil {
		return nil, err
	}
	if replicas == 0 {
		replicas = 1
	}
	if replicas < 1 || replicas > 5 {
		return nil, fmt.Errorf("cluster: room directory replicas %d: want 1 to 5", replicas)
	}
	kv, err := bindBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:       bucket,
		Description:  "rendezvous room directory: room -> host node and members",
		History:      1,
		Storage:      jetstream.FileStorage,
		Replicas:     replicas,
		MaxValueSize: maxRoomRecord,
	})
	if err != nil {
		return nil, err
	}
	return &directory{nc: js.Conn(), kv: kv, bucket: bucket, stream: "KV_" + bucket}, nil
}

// bucketName is <prefix>_<suffix>, after checking prefix.
func bucketName(prefix, suffix string) (string, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !validPrefix.MatchString(prefix) {
		return "", fmt.Errorf("cluster: bucket prefix %q: want 1 to 64 of A-Z a-z 0-9 _ -", prefix)
	}
	return prefix + "_" + suffix, nil
}

// bindBucket binds the bucket cfg names, creating it with cfg if it does
// not exist. The first node to start sets the configuration; later ones
// bind whatever is there, so nodes with other settings do not fight.
func bindBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("cluster: bind KV bucket %s: %w", cfg.Bucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		// Another node created it between our look and our create.
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: create KV bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// roomKey is the KV key of a room: base64url without padding, which is
// always a valid key. A 64-byte room name gives an 86-byte key.
func roomKey(room string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(room))
}

// roomFromKey inverts roomKey.
func roomFromKey(key string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil {
		return "", fmt.Errorf("cluster: room directory key %q is not base64url: %w", key, err)
	}
	return string(b), nil
}

// checkRoom refuses a room name that cannot be a key.
func checkRoom(room string) error {
	if room == "" {
		return errors.New("cluster: empty room name")
	}
	return nil
}

// get reads a room's record and revision from the stream leader;
// ErrNoRoom if the room has none.
func (d *directory) get(ctx context.Context, room string) (roomRecord, uint64, error) {
	if err := checkRoom(room); err != nil {
		return roomRecord{}, 0, err
	}
	data, rev, err := d.leaderGet(ctx, roomKey(room))
	if err != nil {
		return roomRecord{}, 0, fmt.Errorf("cluster: get room %q: %w", room, err)
	}
	rec, err := decodeRecord(room, data)
	if err != nil {
		return roomRecord{}, 0, err
	}
	return rec, rev, nil
}

// msgGetResponse is the reply of $JS.API.STREAM.MSG.GET.
type msgGetResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error"`
	Message *struct {
		Subject string `json:"subject"`
		Seq     uint64 `json:"seq"`
		Header  []byte `json:"hdrs"`
		Data    []byte `json:"data"`
	} `json:"message"`
}

// errCodeNoMessage is JetStream's "no message found" error code.
const errCodeNoMessage = 10037

// leaderGet reads the latest value of key with the stream leader's message
// get API (not direct get: see directory). A key that is absent, deleted
// or purged gives ErrNoRoom.
func (d *directory) leaderGet(ctx context.Context, key string) ([]byte, uint64, error) {
	req, err := json.Marshal(map[string]string{"last_by_subj": "$KV." + d.bucket + "." + key})
	if err != nil {
		return nil, 0, err
	}
	msg, err := d.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+d.stream, req)
	if err != nil {
		return nil, 0, err
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, 0, fmt.Errorf("JetStream message get: bad reply: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == errCodeNoMessage:
		return nil, 0, ErrNoRoom
	case resp.Error != nil:
		return nil, 0, fmt.Errorf("JetStream message get: %s (code %d)", resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return nil, 0, errors.New("JetStream message get: reply without a message")
	}
	if len(resp.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Header)
		if err != nil {
			return nil, 0, fmt.Errorf("JetStream message get: headers: %w", err)
		}
		// A delete or purge marker, or a server marker (expiry), means
		// the key has no value.
		if h.Get("KV-Operation") != "" || h.Get(jetstream.MarkerReasonHeader) != "" {
			return nil, 0, ErrNoRoom
		}
	}
	return resp.Message.Data, resp.Message.Seq, nil
}

// decodeRecord parses a stored record.
func decodeRecord(room string, data []byte) (roomRecord, error) {
	var rec roomRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return roomRecord{}, fmt.Errorf("cluster: room %q: record is not valid JSON: %w", room, err)
	}
	return rec, nil
}

// encodeRecord is the stored form of rec; a record needs a host.
func encodeRecord(room string, rec roomRecord) ([]byte, error) {
	if rec.Host == "" {
		return nil, fmt.Errorf("cluster: room %q: record without a host", room)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("cluster: room %q: encode record: %w", room, err)
	}
	if len(data) > maxRoomRecord {
		return nil, fmt.Errorf("cluster: room %q: record of %d bytes exceeds %d", room, len(data), maxRoomRecord)
	}
	return data, nil
}

// claim creates the room's record if it has none (or was released),
// returning its revision. If another record is there, the error is a
// *ClaimedError (errors.Is ErrClaimed) naming its host.
func (d *directory) claim(ctx context.Context, room string, rec roomRecord) (uint64, error) {
	if err := checkRoom(room); err != nil {
		return 0, err
	}
	data, err := encodeRecord(room, rec)
	if err != nil {
		return 0, err
	}
	key := roomKey(room)
	for range claimAttempts {
		rev, err := d.kv.Create(ctx, key, data)
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("cluster: claim room %q: %w", room, err)
		}
		cur, curRev, err := d.get(ctx, room)
		if errors.Is(err, ErrNoRoom) {
			continue // released between our create and our read: try again
		}
		if err != nil {
			return 0, fmt.Errorf("cluster: claim room %q: read the winner: %w", room, err)
		}
		return 0, &ClaimedError{Room: room, Host: cur.Host, Rev: curRev}
	}
	return 0, fmt.Errorf("cluster: claim room %q: claimed and released %d times in a row: %w", room, claimAttempts, ErrConflict)
}

// update replaces the room's record if its revision is still rev,
// returning the new revision; ErrConflict if it changed or is gone.
func (d *directory) update(ctx context.Context, room string, rec roomRecord, rev uint64) (uint64, error) {
	if err := checkRoom(room); err != nil {
		return 0, err
	}
	if rev == 0 {
		return 0, fmt.Errorf("cluster: update room %q: revision 0 (use claim to create)", room)
	}
	data, err := encodeRecord(room, rec)
	if err != nil {
		return 0, err
	}
	newRev, err := d.kv.Update(ctx, roomKey(room), data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("cluster: update room %q at revision %d: %w", room, rev, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("cluster: update room %q: %w", room, err)
	}
	return newRev, nil
}

// release deletes the room's record if its revision is still rev;
// ErrConflict if it changed or is already gone.
func (d *directory) release(ctx context.Context, room string, rev uint64) error {
	if err := checkRoom(room); err != nil {
		return err
	}
	if rev == 0 {
		return fmt.Errorf("cluster: release room %q: revision 0", room)
	}
	err := d.kv.Delete(ctx, roomKey(room), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("cluster: release room %q at revision %d: %w", room, rev, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("cluster: release room %q: %w", room, err)
	}
	return nil
}

// list returns every room in the directory, sorted by name. It holds all
// records in memory at once: fine for tens of thousands of rooms (a record
// is a few hundred bytes plus its members), not for millions. The values
// come from one ordered consumer over the stream; on a replicated bucket
// they may trail the leader by a moment, but each carries its revision, so
// a compare-and-set based on a stale one fails with ErrConflict.
func (d *directory) list(ctx context.Context) ([]roomEntry, error) {
	return d.collect(ctx, func(roomRecord) bool { return true })
}

// hostedBy returns the rooms whose host is node, sorted by name: the rooms
// to take over when node dies. Same scale as list.
func (d *directory) hostedBy(ctx context.Context, node string) ([]roomEntry, error) {
	return d.collect(ctx, func(r roomRecord) bool { return r.Host == node })
}

// collect walks the bucket's current values and keeps the rooms keep
// accepts.
func (d *directory) collect(ctx context.Context, keep func(roomRecord) bool) ([]roomEntry, error) {
	w, err := startWatch(ctx, d.kv, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("cluster: list rooms: %w", err)
	}
	defer w.stop()
	var out []roomEntry
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("cluster: list rooms: %w", ctx.Err())
		case e, ok := <-w.updates():
			if !ok {
				return nil, errors.New("cluster: list rooms: watcher closed before the listing ended")
			}
			if e == nil { // all current values delivered
				sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
				return out, nil
			}
			room, err := roomFromKey(e.Key())
			if err != nil {
				return nil, err
			}
			rec, err := decodeRecord(room, e.Value())
			if err != nil {
				return nil, err
			}
			if keep(rec) {
				out = append(out, roomEntry{Room: room, Record: rec, Rev: e.Revision()})
			}
		}
	}
}

// watch is a KV watcher with a context of its own. nats.go keeps a
// goroutine per watcher until the context it was started with ends, even
// after Stop, so each watcher's context ends when it stops.
type watch struct {
	w      jetstream.KeyWatcher
	cancel context.CancelFunc
}

// startWatch watches every key of kv until parent ends or stop.
func startWatch(parent context.Context, kv jetstream.KeyValue, opts ...jetstream.WatchOpt) (*watch, error) {
	ctx, cancel := context.WithCancel(parent)
	w, err := kv.WatchAll(ctx, opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	return &watch{w: w, cancel: cancel}, nil
}

// updates delivers the current values, a nil marker, then changes; it
// closes when the watcher stops.
func (w *watch) updates() <-chan jetstream.KeyValueEntry { return w.w.Updates() }

// stop ends the watcher and its goroutines.
func (w *watch) stop() {
	w.cancel()
	stopWatcher(w.w)
}

// stopWatcherTimeout bounds the wait for a stopped watcher to close.
const stopWatcherTimeout = 5 * time.Second

// stopWatcher stops w and drains its channel until it closes: nats.go's
// delivery blocks on a full channel while holding the lock that its close
// needs, so a stopped watcher nobody drains can hang.
func stopWatcher(w jetstream.KeyWatcher) {
	_ = w.Stop() // fails only if already stopped; the drain ends either way
	timer := time.NewTimer(stopWatcherTimeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-timer.C:
			return
		}
	}
}
