package session

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/gate"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Slot is a mount's place for its upstream account: the account loaded from storage (or
// none), replaced by a config write, dropped by a delete, an invalidation or Clean, and the
// locks that keep it straight (the lock order is in account.go).
type Slot struct {
	Deps

	loadMu      sync.Mutex // one load of the account from storage at a time: see account.go
	sessionGate gate.Gate  // session and hold writes against account swaps: see account.go

	mu   sync.RWMutex
	acct *Account // nil until first use after (re)configuration
	gen  uint64   // counts account swaps, so that a load that raced one is not installed

	cleaned atomic.Bool // the mount was disabled or the plugin stopped: never load or register again
}

// Deps are what a mount's slot takes from its backend and process.
type Deps struct {
	MountID        string // the mount's name for the process's host limiters
	Clock          upstream.Clock
	Limiters       *upstream.Limiters
	StorageTimeout time.Duration // bounds each storage operation under the session gate (0: DefaultStorageTimeout)
	Logger         func() hclog.Logger
	Writable       func() bool // whether this node may write storage (and so log in)
	Counters       Counters
	// DialCheck is upstream.Deps.DialCheck for every provider the slot builds: nil in
	// production; tests set one that fails them on a dial to anything but loopback.
	DialCheck func(address string) error
}

// Counters are the mount's metrics that an account adds to: they live on the mount, which
// outlives every account a config write replaces.
type Counters interface {
	// Waited counts a read or renewal that waited on an upstream call.
	Waited()
	// ObserveUpstream is upstream.Deps.Observe: how an upstream call ended.
	ObserveUpstream(op, outcome string)
	// AuthSent is upstream.Deps.AuthSent: an auth call left for the upstream.
	AuthSent(ctx context.Context)
}

// NewSlot is an empty slot: the account loads on first use.
func NewSlot(d Deps) *Slot {
	if d.StorageTimeout == 0 {
		d.StorageTimeout = DefaultStorageTimeout
	}
	return &Slot{Deps: d}
}

// ErrCleaned refuses a load after the mount was disabled or the plugin stopped.
var ErrCleaned = errors.New("this mount is being disabled")

// Clean ends the slot: its account goes, and it never loads another.
func (b *Slot) Clean() {
	b.cleaned.Store(true)
	b.Reset()
}

// Cleaned says whether Clean ran.
func (b *Slot) Cleaned() bool { return b.cleaned.Load() }

// SessionWriteWouldWait says whether a session write would wait at the session gate now: a
// config change holds it or waits for it. For tests that must see a config write queued
// behind a held session write before they go on.
func (b *Slot) SessionWriteWouldWait() bool { return b.sessionGate.ReaderWouldWait() }
