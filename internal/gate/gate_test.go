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
	_ = g.WithRead(func(p Read) error { r = p; p.Check(&g); return nil })
	_ = g.WithWrite(func(p Write) error { w = p; fromWrite = p.Read(); p.Check(&g); fromWrite.Check(&g); return nil })
	panics(t, "a read proof after WithRead returned", func() { r.Check(&g) })
	panics(t, "a write proof after WithWrite returned", func() { w.Check(&g) })
	panics(t, "a write's read proof after WithWrite returned", func() { fromWrite.Check(&g) })
	panics(t, "Read of a write proof after WithWrite returned", func() { w.Read() })
	panics(t, "the zero read proof", func() { Read{}.Check(&g) })
	panics(t, "the zero write proof", func() { Write{}.Check(&g) })
}

// A proof speaks of the gate that made it: held for one gate, it proves nothing of another,
// which may be free.
func TestAProofOfAnotherGatePanics(t *testing.T) {
	var one, other Gate
	_ = one.WithWrite(func(w Write) error {
		w.Check(&one)
		panics(t, "a write proof of one gate checked against another", func() { w.Check(&other) })
		panics(t, "its read proof checked against another", func() { w.Read().Check(&other) })
		return nil
	})
	_ = one.WithRead(func(r Read) error {
		panics(t, "a read proof of one gate checked against another", func() { r.Check(&other) })
		return nil
	})
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
