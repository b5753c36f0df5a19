package upstream

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Spec is what a provider declares about itself, once, in its own file (registered from that
// file's init). The backend derives from it which providers there are, which config fields
// each takes and requires, the account's identity rules and how the token read describes the
// Authorization header and the extras; it never names a provider itself. What a provider
// can do is in its methods: Refresh returns ErrNoRefresh, Logout ErrNoLogout, TOTP nil when
// it has no such call.
type Spec struct {
	Name string // the provider config value, e.g. "plextrac"
	Rank int    // where lists show it: the lowest first

	// Takes are the config fields it takes beyond those every provider takes (url, headers,
	// ca_cert, …); Requires those it cannot do without. Names from the backend's field table:
	// a test fails on a name the table lacks.
	Takes, Requires []string
	// DefaultURL is url when the config leaves it out ("": url is required).
	DefaultURL string
	// FoldUserCase: the upstream compares user names (e-mail addresses) case-insensitively,
	// so the account's identity does too.
	FoldUserCase bool
	// AccountSecrets names the secret fields (and "headers": every header value) that name
	// the account for a login of cfg that sends no user name. nil: its logins always do.
	AccountSecrets func(cfg Config) []string
	// Validate checks what the field table cannot, naming the field (nil: nothing more).
	Validate func(cfg Config) error
	// RefusedStatus says whether a login answered with this HTTP status was refused, for an
	// upstream without a refusal signal of its own (nil: refusals are KindRejected only).
	RefusedStatus func(status int) bool
	// Authorization says how its Authorization header carries the token, for help text.
	Authorization string
	// Extras are the non-secret integer fields its tokens carry, with what each is.
	Extras []Extra

	New func(c *Client, cfg Config, deps Deps) (Provider, error)
}

// Extra is a non-secret field a provider's tokens carry (an integer).
type Extra struct{ Name, Description string }

var registry = struct {
	sync.Mutex
	specs map[string]Spec
}{specs: map[string]Spec{}}

// Register adds a provider; providers call it from their file's init. It panics on a second
// spec of one name (two files claim it). It returns the removal, for a test that registers a
// provider of its own.
func Register(s Spec) (remove func()) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.specs[s.Name]; dup || s.Name == "" || s.New == nil {
		panic(fmt.Sprintf("upstream: provider %q registered twice, unnamed or without New", s.Name))
	}
	registry.specs[s.Name] = s
	return func() {
		registry.Lock()
		defer registry.Unlock()
		delete(registry.specs, s.Name)
	}
}

// Specs are the registered providers, by Rank.
func Specs() []Spec {
	registry.Lock()
	defer registry.Unlock()
	out := make([]Spec, 0, len(registry.specs))
	for _, s := range registry.specs {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Spec) int { return cmp.Or(cmp.Compare(a.Rank, b.Rank), cmp.Compare(a.Name, b.Name)) })
	return out
}

// Names are the registered providers' names, by Rank.
func Names() []string {
	var out []string
	for _, s := range Specs() {
		out = append(out, s.Name)
	}
	return out
}

// SpecOf is the spec of the provider name.
func SpecOf(name string) (Spec, bool) {
	registry.Lock()
	defer registry.Unlock()
	s, ok := registry.specs[name]
	return s, ok
}

// ErrNoLogout says the upstream has no logout call: its tokens end only by expiring.
var ErrNoLogout = errors.New("upstream has no logout call")
