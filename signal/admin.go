package signal

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/gorilla/websocket"
)

// The admin API (enabled by Config.AdminToken; README documents it):
//
//	GET    /api/rooms                  rooms with member counts and capacity
//	GET    /api/rooms/{room}           a room's members: ids, join times, remote addresses
//	DELETE /api/rooms/{room}           close the room: members get error room-closed and are removed
//	DELETE /api/rooms/{room}/peers/{id} kick one member: it gets error kicked and is disconnected
func (s *Server) adminRoutes(r *mux.Router) {
	r.Use(s.adminAuth)
	r.HandleFunc("/rooms", s.apiRooms).Methods(http.MethodGet)
	r.HandleFunc("/rooms/{room}", s.apiRoom).Methods(http.MethodGet)
	r.HandleFunc("/rooms/{room}", s.apiCloseRoom).Methods(http.MethodDelete)
	r.HandleFunc("/rooms/{room}/peers/{id}", s.apiKick).Methods(http.MethodDelete)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		apiError(w, http.StatusNotFound, "no such API route")
	})
}

// RequireAdmin wraps next with the admin API's access rule: 404 when the
// admin API is off (no Config.AdminToken), 401 without the token. A
// cluster serves its admin API through it.
func (s *Server) RequireAdmin(next http.Handler) http.Handler { return s.adminAuth(next) }

// adminAuth answers 404 when the admin API is off, and 401 without the
// right bearer token.
func (s *Server) adminAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminToken == "" {
			http.NotFound(w, r)
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rendezvous admin"`)
			apiError(w, http.StatusUnauthorized, "a valid admin token is required (Authorization: Bearer <token>)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RoomInfo describes a room in the admin API.
type RoomInfo struct {
	Room     string       `json:"room"`
	Members  int          `json:"members"`
	Capacity int          `json:"capacity"`
	Created  time.Time    `json:"created"`
	Peers    []MemberInfo `json:"peers,omitempty"`
}

// MemberInfo describes a member of a room in the admin API.
type MemberInfo struct {
	ID        string    `json:"id"`
	Joined    time.Time `json:"joined"`
	Remote    string    `json:"remote"`
	Connected bool      `json:"connected"` // false while the seat is held for a resume
}

func (s *Server) apiRooms(w http.ResponseWriter, _ *http.Request) {
	apiJSON(w, http.StatusOK, map[string]any{"rooms": s.Rooms()})
}

// Rooms lists the rooms, sorted by name, with member counts (no Peers).
func (s *Server) Rooms() []RoomInfo {
	s.mu.RLock()
	rooms := make([]RoomInfo, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, RoomInfo{Room: r.name, Members: len(r.members), Capacity: r.capacity, Created: r.created})
	}
	s.mu.RUnlock()
	sort.Slice(rooms, func(i, j int) bool { return rooms[i].Room < rooms[j].Room })
	return rooms
}

// Room describes room with its members; ok is false when it does not
// exist.
func (s *Server) Room(name string) (info RoomInfo, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rm := s.rooms[name]
	if rm == nil {
		return RoomInfo{}, false
	}
	info = RoomInfo{Room: rm.name, Members: len(rm.members), Capacity: rm.capacity, Created: rm.created, Peers: []MemberInfo{}}
	for _, m := range rm.members {
		info.Peers = append(info.Peers, MemberInfo{ID: m.id, Joined: m.joinedAt, Remote: m.remote, Connected: m.conn != nil})
	}
	return info, true
}

func (s *Server) apiRoom(w http.ResponseWriter, r *http.Request) {
	name, ok := pathVar(w, r, "room")
	if !ok {
		return
	}
	info, ok := s.Room(name)
	if !ok {
		apiError(w, http.StatusNotFound, "no such room")
		return
	}
	apiJSON(w, http.StatusOK, info)
}

// CloseRoom closes room as an operator: its members get error room-closed
// and are removed (the others see peer-left room-closed). It returns how
// many members the room had; ok is false when it does not exist.
func (s *Server) CloseRoom(name string) (members int, ok bool) {
	s.mu.Lock()
	rm := s.rooms[name]
	if rm != nil {
		ms := slices.Clone(rm.members)
		members = len(ms)
		msg := fmt.Sprintf("An operator closed room %q; you are in no room now.", name)
		for _, m := range ms {
			c := m.conn
			s.buryLocked(m, CodeRoomClosed, msg)
			s.removeMemberLocked(m, ReasonRoomClosed)
			if c != nil {
				c.sendError(perr(CodeRoomClosed, "%s", msg), "")
			}
		}
	}
	s.mu.Unlock()
	if rm == nil {
		return 0, false
	}
	s.log.Info("room closed by admin", "room", name, "members", members)
	return members, true
}

func (s *Server) apiCloseRoom(w http.ResponseWriter, r *http.Request) {
	name, ok := pathVar(w, r, "room")
	if !ok {
		return
	}
	n, ok := s.CloseRoom(name)
	if !ok {
		apiError(w, http.StatusNotFound, "no such room")
		return
	}
	apiJSON(w, http.StatusOK, map[string]any{"room": name, "closed": true, "members": n})
}

// Kick removes member id from room as an operator: it gets error kicked
// and its connection is closed (1008); the others see peer-left kicked.
// It reports false when there is no such member.
func (s *Server) Kick(room, id string) bool {
	s.mu.Lock()
	var m *member
	if rm := s.rooms[room]; rm != nil {
		m = rm.member(id)
	}
	var c *conn
	if m != nil {
		c = m.conn
		msg := fmt.Sprintf("An operator removed you from room %q.", room)
		s.buryLocked(m, CodeKicked, msg)
		s.removeMemberLocked(m, ReasonKicked)
		if c != nil {
			c.sendError(perr(CodeKicked, "%s", msg), "")
		}
	}
	s.mu.Unlock()
	if m == nil {
		return false
	}
	if c != nil {
		c.closeAfterQueue(websocket.ClosePolicyViolation, "kicked", reasonKicked)
	}
	s.log.Info("member kicked by admin", "room", room, "peer", id)
	return true
}

func (s *Server) apiKick(w http.ResponseWriter, r *http.Request) {
	name, ok := pathVar(w, r, "room")
	if !ok {
		return
	}
	id, ok := pathVar(w, r, "id")
	if !ok {
		return
	}
	if !s.Kick(name, id) {
		apiError(w, http.StatusNotFound, "no such member in that room")
		return
	}
	apiJSON(w, http.StatusOK, map[string]any{"room": name, "id": id, "kicked": true})
}

func pathVar(w http.ResponseWriter, r *http.Request, name string) (string, bool) {
	v, err := url.PathUnescape(mux.Vars(r)[name])
	if err != nil {
		apiError(w, http.StatusBadRequest, "bad escape in "+name)
		return "", false
	}
	return v, true
}

func apiJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, msg string) {
	apiJSON(w, status, map[string]string{"error": msg})
}
