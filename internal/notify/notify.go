// Package notify lets HTTP requests that asked for `Prefer: wait` sleep until
// this process's dispatcher finishes their claim, instead of polling tightly.
// It is only a hint: another replica may finish the claim, so waiters also
// re-read the database at a slow pace.
package notify

import (
	"sync"

	"github.com/google/uuid"
)

// Hub maps claim ids to waiting requests. The zero value is not usable; use
// New.
type Hub struct {
	mu      sync.Mutex
	waiters map[uuid.UUID][]chan struct{}
}

// New returns an empty Hub.
func New() *Hub { return &Hub{waiters: map[uuid.UUID][]chan struct{}{}} }

// Subscribe returns a channel closed when Done(id) is called, and a cancel
// func that must be called when the waiter gives up.
func (h *Hub) Subscribe(id uuid.UUID) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	h.mu.Lock()
	h.waiters[id] = append(h.waiters[id], ch)
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		ws := h.waiters[id]
		for i, w := range ws {
			if w == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(h.waiters, id)
		} else {
			h.waiters[id] = ws
		}
	}
}

// Done wakes everyone waiting for id.
func (h *Hub) Done(id uuid.UUID) {
	h.mu.Lock()
	ws := h.waiters[id]
	delete(h.waiters, id)
	h.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}
