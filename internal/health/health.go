// Package health keeps the state of claimsvc's dependencies (the database,
// ThingsBoard's MQTT transport, ThingsBoard's REST API) as the parts that use
// them see it, for /readyz's detail and the claimsvc_dependency_up gauge.
package health

import (
	"maps"
	"sync"
	"time"
)

// The dependencies claimsvc reports on.
const (
	Database = "database"
	MQTT     = "mqtt"
	REST     = "thingsboard_rest"
)

// State is one dependency's last known state.
type State struct {
	Up     bool      `json:"up"`
	Detail string    `json:"detail,omitempty"` // why it is down; never a secret
	Since  time.Time `json:"since"`            // when it last changed
}

// Board holds every dependency's state. It is safe for concurrent use; the
// zero value is not: use New.
type Board struct {
	mu     sync.Mutex
	states map[string]State
	onSet  func(name string, up bool)
	now    func() time.Time
}

// New returns a Board. onSet (may be nil) is told every change, e.g. to set
// a gauge.
func New(onSet func(name string, up bool)) *Board {
	if onSet == nil {
		onSet = func(string, bool) {}
	}
	return &Board{states: map[string]State{}, onSet: onSet, now: time.Now}
}

// Set records name's state. Since moves only when Up changes, so it tells
// how long an outage has lasted; Detail follows the latest report.
func (b *Board) Set(name string, up bool, detail string) {
	if up {
		detail = ""
	}
	b.mu.Lock()
	old, known := b.states[name]
	st := State{Up: up, Detail: detail, Since: old.Since}
	if !known || old.Up != up {
		st.Since = b.now()
	}
	b.states[name] = st
	b.mu.Unlock()
	if !known || old.Up != up {
		b.onSet(name, up)
	}
}

// Get returns name's state and whether anything was reported.
func (b *Board) Get(name string) (State, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.states[name]
	return st, ok
}

// Snapshot returns every reported state.
func (b *Board) Snapshot() map[string]State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.states)
}
