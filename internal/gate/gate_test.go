package gate

import (
	"errors"
	"testing"
)

func panics(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", what)
		}
	}()
	f()
}

// A proof kept past its closure, or never made by one, is refused: the lock it spoke of may
// be anyone's by then.
func TestAProofOutsideItsClosurePanics(t *testing.T) {
	var g Gate
	var r Read
	var w Write
	var fromWrite Read
	_ = g.WithRead(func(p Read) error { r = p; p.Check(); return nil })
	_ = g.WithWrite(func(p Write) error { w = p; fromWrite = p.Read(); p.Check(); fromWrite.Check(); return nil })
	panics(t, "a read proof after WithRead returned", r.Check)
	panics(t, "a write proof after WithWrite returned", w.Check)
	panics(t, "a write's read proof after WithWrite returned", fromWrite.Check)
	panics(t, "Read of a write proof after WithWrite returned", func() { w.Read() })
	panics(t, "the zero read proof", Read{}.Check)
	panics(t, "the zero write proof", Write{}.Check)
}

// The proofs speak the truth: under WithWrite nobody else holds the gate at all; under
// WithRead other readers may, writers may not. The closure's error is returned.
func TestTheProofsHoldTheirLocks(t *testing.T) {
	var g Gate
	boom := errors.New("boom")
	if g.ReaderWouldWait() {
		t.Error("a reader would wait at a free gate")
	}
	err := g.WithWrite(func(Write) error {
		if !g.ReaderWouldWait() {
			t.Error("a reader would get in under WithWrite")
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("WithWrite returned %v, want the closure's error", err)
	}
	_ = g.WithRead(func(Read) error {
		if g.mu.TryLock() {
			t.Error("a writer got in under WithRead")
		}
		if !g.mu.TryRLock() {
			t.Error("another reader was kept out under WithRead")
		} else {
			g.mu.RUnlock()
		}
		return nil
	})
	if !g.mu.TryLock() {
		t.Fatal("the gate is still held after the closures returned")
	}
	g.mu.Unlock()
}
