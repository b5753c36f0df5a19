// Package sim simulates the upstream login APIs described in shared/UPSTREAMS.md (PlexTrac,
// Plaspy, Resolver Core) for tests, benchmarks and `make dev`.
//
// It is an independent witness: it is written from the API description and shares no code
// with the plugin's upstream clients, so a misreading in one is not mirrored by the other.
package sim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Provider names used in stats, faults and limits.
const (
	PlexTrac = "plextrac"
	Plaspy   = "plaspy"
	Resolver = "resolver"
)

// Options configure a Server. Zero values take the defaults noted per field.
type Options struct {
	// TokenLifetime is the life of every issued token (default 15m).
	TokenLifetime time.Duration
	// AuthLimitPerMinute caps auth calls (login, MFA, refresh) per provider in any sliding
	// 60 s window, failures included. Default: plextrac 10 (vendor docs), others unlimited.
	AuthLimitPerMinute map[string]int
	// Now is the simulator's clock (default time.Now): tests share a fake clock with the plugin.
	Now func() time.Time
}

// PlexTracUser is a PlexTrac account. With TOTPSecret set, MFA is on.
type PlexTracUser struct {
	Password   string `json:"password"`
	TOTPSecret string `json:"totp_secret,omitempty"`
	TenantID   int    `json:"tenant_id"`
}

// PlaspyUser is a Plaspy account.
type PlaspyUser struct {
	APIKey string `json:"api_key"`
}

// ResolverUser is a Resolver Core user; Orgs empty means "not an active member of any org".
type ResolverUser struct {
	Password string `json:"password"`
	Orgs     []int  `json:"orgs"`
}

// Server is the simulator. Its Handler serves all three APIs plus an admin API under /_sim/.
type Server struct {
	mu       sync.Mutex
	opts     Options
	key      []byte // HMAC signing key; Forget rotates it so every issued token stops working
	plextrac map[string]*PlexTracUser
	plaspy   map[string]*PlaspyUser
	resolver map[string]*ResolverUser

	challenges map[string]challenge // PlexTrac MFA challenge code -> user
	lastStep   map[string]int64     // PlexTrac user -> last TOTP step accepted (replay guard)
	authLog    map[string][]time.Time
	stats      map[string]*Stats
	faults     []*Fault
}

type challenge struct {
	user    string
	expires time.Time
}

// New returns a simulator with no users.
func New(opts Options) *Server {
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = 15 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	limits := map[string]int{PlexTrac: 10}
	for k, v := range opts.AuthLimitPerMinute {
		limits[k] = v
	}
	opts.AuthLimitPerMinute = limits
	s := &Server{
		opts:       opts,
		key:        randomBytes(32),
		plextrac:   map[string]*PlexTracUser{},
		plaspy:     map[string]*PlaspyUser{},
		resolver:   map[string]*ResolverUser{},
		challenges: map[string]challenge{},
		lastStep:   map[string]int64{},
		authLog:    map[string][]time.Time{},
		stats:      map[string]*Stats{PlexTrac: {}, Plaspy: {}, Resolver: {}},
	}
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

func randomID() string { return hex.EncodeToString(randomBytes(12)) }

// AddPlexTracUser, AddPlaspyUser and AddResolverUser create or replace an account. Replacing
// one with a new password or key is how tests revoke credentials upstream.
func (s *Server) AddPlexTracUser(name string, u PlexTracUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plextrac[name] = &u
}

func (s *Server) AddPlaspyUser(name string, u PlaspyUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plaspy[name] = &u
}

func (s *Server) AddResolverUser(email string, u ResolverUser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolver[email] = &u
}

// SetTokenLifetime changes the life of tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.TokenLifetime = d
}

// Forget makes the upstream forget every token it issued (as a restart with a new key would).
func (s *Server) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = randomBytes(32)
}

func (s *Server) now() time.Time { return s.opts.Now() }

// Handler serves the upstream APIs and the admin API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.plextracRoutes(mux)
	s.plaspyRoutes(mux)
	s.resolverRoutes(mux)
	s.adminRoutes(mux)
	return mux
}

// allowAuth records one auth call for provider and says whether the provider's per-minute
// limit lets it through; refused calls are not recorded (they never reached the login logic).
func (s *Server) allowAuth(provider string) (ok bool, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	limit := s.opts.AuthLimitPerMinute[provider]
	log := s.authLog[provider]
	if limit > 0 {
		recent := 0
		for i := len(log) - 1; i >= 0 && now.Sub(log[i]) < time.Minute; i-- {
			recent++
		}
		if recent >= limit {
			oldest := log[len(log)-recent]
			s.stats[provider].RateLimited++
			return false, time.Minute - now.Sub(oldest)
		}
	}
	if len(log) >= 100000 { // keep memory bounded in long soaks
		log = log[len(log)/2:]
	}
	s.authLog[provider] = append(log, now)
	return true, 0
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func decodeJSON(r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	return dec.Decode(v) == nil
}

// bearer returns the token from an Authorization header as provider reads it. PlexTrac takes
// the bare token or "Bearer <token>" (UPSTREAMS.md: both are seen working); Plaspy and Resolver
// Core document only "Bearer <token>" (the scheme word in any case), so for them a bare token is
// no token and the call is refused, as the real upstream would.
func bearer(r *http.Request, provider string) string {
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if i := strings.IndexByte(h, ' '); i > 0 && strings.EqualFold(h[:i], "bearer") {
		return strings.TrimSpace(h[i+1:])
	}
	if provider == PlexTrac {
		return h
	}
	return ""
}
