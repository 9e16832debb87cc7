package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// What an IKE daemon needs from the API (docs/ike-api.md, API version 2): the daemon's identity and
// epoch, SPI allocation, owners, moving an SA in place, a policy's last use, and an event stream that
// loses nothing without saying so.

// Version is the API version this server speaks (GET /v1/info).
const Version = 2

// EpochHeader carries the daemon's epoch on every answer.
const EpochHeader = "Xdpsec-Epoch"

// Features lists what GET /v1/info announces (informational).
var Features = []string{"owner", "spi", "sa-migrate", "fresh-counters", "fwd", "policy-duplicates",
	"events", "epoch", "socket-group"}

// Info is GET /v1/info.
type Info struct {
	API       int      `json:"api"`
	Epoch     string   `json:"epoch"`
	Seq       uint64   `json:"seq"` // the highest event sequence number published so far
	Instance  string   `json:"instance"`
	EncapPort uint16   `json:"encap_port"` // the UDP port the card decapsulates ESP-in-UDP on
	Features  []string `json:"features"`
}

// SPIRequest is POST /v1/spi: reserve an SPI for an inbound SA being negotiated.
type SPIRequest struct {
	Src             netip.Addr  `json:"src,omitzero"` // informational
	Dst             netip.Addr  `json:"dst"`
	Proto           ipsec.Proto `json:"proto"`
	Min             uint32      `json:"min"`
	Max             uint32      `json:"max"`
	LifetimeSeconds uint32      `json:"lifetime_seconds,omitempty"` // 0: 30
}

// SPIAnswer is the reserved SPI.
type SPIAnswer struct {
	SPI     uint32      `json:"spi"`
	Dst     netip.Addr  `json:"dst"`
	Proto   ipsec.Proto `json:"proto"`
	Expires time.Time   `json:"expires"`
}

// Migration is POST /v1/sa/migrate: move an SA in place (NAT-T rebinding, MOBIKE).
type Migration struct {
	ID  sadb.SAID  `json:"id"`
	Src netip.Addr `json:"src"`
	Dst netip.Addr `json:"dst"`
	// Encap must be given: null for no encapsulation.
	Encap *sadb.Encap `json:"encap"`
	Reqid uint32      `json:"reqid,omitempty"` // 0: unchanged
}

// LarvalView answers the deletion of a reserved SPI.
type LarvalView struct {
	SPI   uint32      `json:"spi"`
	Dst   netip.Addr  `json:"dst"`
	Proto ipsec.Proto `json:"proto"`
	State string      `json:"state"` // "larval"
}

// PolicyGet asks for one policy (POST /v1/sp/get).
type PolicyGet struct {
	Ref sadb.PolicyRef `json:"ref"`
}

// StreamLine is a line of the event stream that is not an event.
type StreamLine struct {
	Type   string `json:"type"` // stream-start, resync, keepalive
	Epoch  string `json:"epoch,omitempty"`
	Seq    uint64 `json:"seq"`
	Oldest uint64 `json:"oldest,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Stream line types.
const (
	StreamStart = "stream-start"
	Resync      = "resync"
	Keepalive   = "keepalive"
)

// DefaultKeepalive is how long the event stream stays silent before it sends a keepalive line.
const DefaultKeepalive = 15 * time.Second

// IKEBackend is the part of the Backend that serves what docs/ike-api.md adds.
type IKEBackend interface {
	Info() Info
	// Epoch names the daemon's in-memory state: it changes with every start.
	Epoch() string
	AllocSPI(req SPIRequest) (SPIAnswer, error)
	MigrateSA(m Migration) (SAView, error)
	// DeleteLarval removes a reserved SPI and reports whether there was one.
	DeleteLarval(id sadb.SAID) bool
	ListSAsOf(f sadb.OwnerFilter, showKeys bool) []SAView
	FlushSAsOf(f sadb.OwnerFilter) []SAView
	// PutPolicy adds a policy; created is false when an identical ike policy existed (and is returned).
	PutPolicy(p sadb.Policy) (v PolicyView, created bool, err error)
	GetPolicyOf(ref sadb.PolicyRef, f sadb.OwnerFilter) (PolicyView, error)
	DeletePolicyOf(ref sadb.PolicyRef, f sadb.OwnerFilter) (PolicyView, error)
	ListPoliciesOf(f sadb.OwnerFilter) []PolicyView
	FlushPoliciesOf(f sadb.OwnerFilter) []PolicyView
	// Events is the bus whose backlog GET /v1/events streams.
	Events() *events.Bus
}

// ErrEpoch: the request's epoch is not the daemon's (412).
var ErrEpoch = errors.New("epoch")

// ErrUnsupported: the daemon cannot do this one (501).
var ErrUnsupported = sadb.ErrUnsupported

// withEpoch puts the epoch on every answer and refuses (412) a request whose ?epoch= names another
// daemon's state, before anything is done. The event stream treats ?epoch= as the epoch of ?since=.
func (h *handler) withEpoch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.b == nil {
			next.ServeHTTP(w, r)
			return
		}
		epoch := h.b.Epoch()
		w.Header().Set(EpochHeader, epoch)
		if e, ok := r.URL.Query()["epoch"]; ok && r.URL.Path != "/v1/events" && (len(e) != 1 || e[0] != epoch) {
			h.fail(w, fmt.Errorf("%w: %q is not this daemon's epoch %s (it restarted): nothing was done", ErrEpoch,
				strings.Join(e, ","), epoch))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (h *handler) registerIKE(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, h.b.Info())
	})
	mux.HandleFunc("POST /v1/spi", withBody(h, http.StatusCreated, Backend.AllocSPI))
	mux.HandleFunc("POST /v1/sa/migrate", h.saMigrate)
	mux.HandleFunc("POST /v1/sp/get", h.owned(func(r *http.Request, f sadb.OwnerFilter) (any, error) {
		var q PolicyGet
		if err := decode(r, &q); err != nil {
			return nil, err
		}
		return h.b.GetPolicyOf(q.Ref, f)
	}))
	mux.HandleFunc("GET /v1/events", h.events)
}

// owned serves a call that takes the request's ?owner= filter.
func (h *handler) owned(call func(*http.Request, sadb.OwnerFilter) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := ownerParam(r)
		if err != nil {
			h.fail(w, err)
			return
		}
		v, err := call(r, f)
		if err != nil {
			h.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func ownerParam(r *http.Request) (sadb.OwnerFilter, error) {
	f, err := sadb.ParseOwnerFilter(r.URL.Query().Get("owner"))
	if err != nil {
		return f, fmt.Errorf("%w: ?owner=: %w", errBadRequest, err)
	}
	return f, nil
}

// saMigrate decodes the request itself: encap must be present, null meaning none.
func (h *handler) saMigrate(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Migration
		Encap json.RawMessage `json:"encap"` // shadows Migration.Encap
	}
	err := decode(r, &in)
	m := in.Migration
	switch {
	case err != nil:
	case len(in.Encap) == 0:
		err = fmt.Errorf("%w: encap missing (null for no encapsulation)", errBadRequest)
	case string(in.Encap) != "null":
		m.Encap = new(sadb.Encap)
		dec := json.NewDecoder(strings.NewReader(string(in.Encap)))
		dec.DisallowUnknownFields()
		if derr := dec.Decode(m.Encap); derr != nil {
			err = fmt.Errorf("%w: encap: %w", errBadRequest, derr)
		}
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	v, err := h.b.MigrateSA(m)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// events streams the bus's backlog as JSON lines (docs/ike-api.md, "Events"): a stream-start line,
// a resync line whenever events after the reader's position are no longer held, the events after
// ?since= that pass the ?owner= and ?type= filters, and keepalives while nothing happens.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := ownerParam(r)
	var since uint64
	if err == nil && q.Get("since") != "" {
		if since, err = strconv.ParseUint(q.Get("since"), 10, 64); err != nil {
			err = fmt.Errorf("%w: ?since=: want a sequence number", errBadRequest)
		}
	}
	if err != nil {
		h.fail(w, err)
		return
	}
	epoch := h.b.Epoch()
	if e := q.Get("epoch"); e != "" && e != epoch {
		since = 0 // another daemon's numbers mean nothing here
	}
	var types map[events.Type]bool
	if t := q.Get("type"); t != "" {
		types = map[events.Type]bool{}
		for _, name := range strings.Split(t, ",") {
			types[events.Type(name)] = true
		}
	}
	bus := h.b.Events()
	pos := bus.Position()
	since = min(since, pos.Seq)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(w)
	if enc.Encode(StreamLine{Type: StreamStart, Epoch: epoch, Seq: pos.Seq, Oldest: pos.Oldest}) != nil || rc.Flush() != nil {
		return
	}
	keep := h.keepalive
	if keep <= 0 {
		keep = DefaultKeepalive
	}
	idle := time.NewTimer(keep)
	defer idle.Stop()
	buf := make([]events.Event, 0, 256)
	for {
		evs, pos, wake := bus.Read(since, buf[:0])
		wrote := false
		if since+1 < pos.Oldest && since < pos.Seq {
			// Fallen behind the backlog: the reader must re-read the state.
			if enc.Encode(StreamLine{Type: Resync, Reason: "backlog", Seq: pos.Seq}) != nil {
				return
			}
			wrote = true
		}
		for i := range evs {
			ev := &evs[i]
			since = ev.Seq
			if (f.Set && ev.Owner != f.Owner.String()) || (types != nil && !types[ev.Type]) {
				continue
			}
			if enc.Encode(ev) != nil {
				return
			}
			wrote = true
		}
		if wrote {
			if rc.Flush() != nil {
				return
			}
			idle.Reset(keep)
		}
		if len(evs) > 0 {
			continue // more may be held
		}
		select {
		case <-wake:
		case <-idle.C:
			if enc.Encode(StreamLine{Type: Keepalive, Seq: bus.Position().Seq}) != nil || rc.Flush() != nil {
				return
			}
			idle.Reset(keep)
		case <-r.Context().Done():
			return
		case <-h.stop:
			return
		}
	}
}
