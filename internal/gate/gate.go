// Package gate is a read-write lock that hands its holders a proof of holding it, for
// functions that must run under it to ask for (oauthapp's "WithLock" pattern, made strict).
//
// What is checked, and by whom:
//   - Only WithRead and WithWrite make a live proof. The proof types have unexported fields,
//     so outside this package the only other value is the zero one, which Check refuses.
//     Their fields differ, so that neither converts to the other.
//   - A Write is not a Read, nor the other way round: a function that needs the write lock
//     takes a Write, and the compiler refuses it a Read. A Write gives a Read (Write.Read),
//     since holding the write lock also keeps every writer out.
//   - A proof is live only while its closure runs, and speaks of its own gate: Check, given
//     the gate the caller needs held, panics on a proof kept and used after its closure
//     returned (the lock may be anyone's by then) and on a proof of another gate.
//
// The compiler checks the proof's kind; Check, at run time, that it is live and of the gate
// in question. Functions that take a proof call Check first.
package gate

import (
	"sync"
	"sync/atomic"
)

// Gate is the lock. The zero value is ready to use; a Gate must not be copied.
type Gate struct{ mu sync.RWMutex }

// holding is one taking of gate's lock: live until the closure it was made for returns.
type holding struct {
	gate *Gate
	live atomic.Bool
}

func (h *holding) check(g *Gate, what string) {
	switch {
	case h == nil || !h.live.Load():
		panic("gate: " + what + " proof used outside the closure that holds the lock")
	case h.gate != g:
		panic("gate: " + what + " proof of another gate")
	}
}

// Read proves that its holder holds the gate's read lock (or its write lock).
type Read struct{ h *holding }

// Write proves that its holder holds the gate's write lock.
type Write struct{ w *holding } // not h: with the same fields as Read, one would convert to the other

// Check panics unless r was made by g's WithRead (or a Write.Read of g) whose closure is
// still running.
func (r Read) Check(g *Gate) { r.h.check(g, "read") }

// Check panics unless w was made by g's WithWrite whose closure is still running.
func (w Write) Check(g *Gate) { w.w.check(g, "write") }

// Read is the read proof that the write lock also gives: no writer can hold the gate either.
// It panics unless w is live.
func (w Write) Read() Read {
	if w.w == nil || !w.w.live.Load() {
		panic("gate: write proof used outside the closure that holds the lock")
	}
	return Read{w.w}
}

// WithRead runs fn holding the read lock, with its proof.
func (g *Gate) WithRead(fn func(Read) error) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	h := &holding{gate: g}
	h.live.Store(true)
	defer h.live.Store(false)
	return fn(Read{h})
}

// WithWrite runs fn holding the write lock, with its proof.
func (g *Gate) WithWrite(fn func(Write) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := &holding{gate: g}
	h.live.Store(true)
	defer h.live.Store(false)
	return fn(Write{h})
}

// ReaderWouldWait says whether a WithRead called now would wait: a writer holds the gate, or
// waits for it (sync.RWMutex turns new readers away once a writer waits). For tests that
// must see a writer queued behind a reader before they go on.
func (g *Gate) ReaderWouldWait() bool {
	if g.mu.TryRLock() {
		g.mu.RUnlock()
		return false
	}
	return true
}
