// Package api is the daemon's local API: HTTP/JSON over a unix socket that only the daemon's user (root)
// may open. The schema is documented in docs/control.md; the types here are that schema.
//
// Server serves a Backend (the manager) on a unix socket; Client is what the CLI uses.
package api

import (
	"context"
	"time"

	"github.com/xdpsec/xdpsec/control/events"
	"github.com/xdpsec/xdpsec/control/offload"
	"github.com/xdpsec/xdpsec/control/sadb"
	"github.com/xdpsec/xdpsec/ipsec"
)

// SAView is an SA as the API returns it: the SAD entry plus its offload state on every interface.
// Keys are present only when asked for (show_keys).
type SAView struct {
	sadb.SAEntry
	OffloadState []offload.IfaceState `json:"offload_state"`
	// Direction is the direction the card uses the SA in: the SA's own dir, else in when it serves an
	// inbound PROTECT policy, else out (offload.Engine.Direction). Absent for a deleted SA.
	Direction *ipsec.Dir `json:"direction,omitempty"`
}

// PolicyView is a policy plus its offload state per interface.
type PolicyView struct {
	sadb.PolicyEntry
	OffloadState []offload.IfaceState `json:"offload_state,omitempty"`
	// LastUse is when the policy last applied to a packet (POST /v1/sp/get only; absent: never).
	LastUse time.Time `json:"last_use_time,omitzero"`
}

// Stats are the global counters (`xdpsec stats`).
type Stats struct {
	// Card holds the card's and the workers' drop and error reasons, by name (xfrm_stat-like).
	Card     map[string]uint64 `json:"card"`
	Engine   offload.Stats     `json:"engine"`
	Capacity offload.Capacity  `json:"capacity"` // the card's table sizes, when its driver reports them
	SAs      int               `json:"sas"`
	Policies int               `json:"policies"`
	// SAStates counts SAs by lifetime state, Offload counts (SA, interface) pairs by offload state.
	SAStates map[string]int `json:"sa_states"`
	Offload  map[string]int `json:"offload"`
	Events   EventStats     `json:"events"`
}

// EventStats counts the event stream.
type EventStats struct {
	Published uint64 `json:"published"`
	Dropped   uint64 `json:"dropped"` // (event, subscriber) deliveries lost to a slow subscriber
}

// SAGet asks for one SA.
type SAGet struct {
	Ref      sadb.Ref `json:"ref"`
	ShowKeys bool     `json:"show_keys,omitempty"`
}

// ReloadResult says what a reload did, by name.
type ReloadResult struct {
	SAsAdded        []string `json:"sas_added,omitempty"`
	SAsUpdated      []string `json:"sas_updated,omitempty"`  // in place: the same SA, sequence numbers kept
	SAsReplaced     []string `json:"sas_replaced,omitempty"` // deleted and added again (a new SPI, dst or key)
	SAsDeleted      []string `json:"sas_deleted,omitempty"`
	SAsUnchanged    int      `json:"sas_unchanged"`
	PoliciesAdded   []string `json:"policies_added,omitempty"`
	PoliciesUpdated []string `json:"policies_updated,omitempty"`
	PoliciesDeleted []string `json:"policies_deleted,omitempty"`
	// DefaultVerdict is true when default_verdict changed and the card applies the new one.
	DefaultVerdict bool `json:"default_verdict,omitempty"`
	// Restart lists settings that changed but need a restart (instance, interfaces, capacities, …).
	Restart []string `json:"restart,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
	// Kind is exists, not_found, invalid, immutable, full, epoch, unsupported or internal, for scripts.
	Kind string `json:"kind"`
}

// Backend is what the server serves: the manager.
type Backend interface {
	AddSA(sa sadb.SA) (SAView, error)
	UpdateSA(sa sadb.SA) (SAView, error)
	DeleteSA(ref sadb.Ref) (SAView, error)
	GetSA(ref sadb.Ref, showKeys bool) (SAView, error)
	ListSAs(showKeys bool) []SAView
	FlushSAs() []SAView
	AddPolicy(p sadb.Policy) (PolicyView, error)
	UpdatePolicy(p sadb.Policy) (PolicyView, error)
	DeletePolicy(ref sadb.PolicyRef) (PolicyView, error)
	ListPolicies() []PolicyView
	FlushPolicies() []PolicyView
	Stats(ctx context.Context) (Stats, error)
	Check(ctx context.Context) (offload.Report, error)
	Reload(ctx context.Context) (ReloadResult, error)
	Subscribe(buf int) *events.Sub
	IKEBackend
}
