package sim

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"
)

// Stats counts what one API saw.
type Stats struct {
	Logins          int `json:"logins"`           // successful logins (MFA challenges excluded)
	LoginFailures   int `json:"login_failures"`   // rejected logins
	MFAChallenges   int `json:"mfa_challenges"`   // logins answered with an MFA challenge
	MFA             int `json:"mfa"`              // successful MFA completions
	MFAFailures     int `json:"mfa_failures"`     // rejected MFA codes (wrong, replayed, unknown challenge)
	Refreshes       int `json:"refreshes"`        // successful refreshes/renewals
	RefreshFailures int `json:"refresh_failures"` // refused refreshes (expired or unknown token)
	RateLimited     int `json:"rate_limited"`     // 429s from the auth limit
	Checks          int `json:"checks"`           // protected-endpoint calls with a valid token
	CheckFailures   int `json:"check_failures"`   // protected-endpoint calls refused
	Faults          int `json:"faults"`           // calls answered by an injected fault
	AuthCalls       int `json:"auth_calls"`       // every auth call let through the limit
	MaxAuthIn60s    int `json:"max_auth_in_60s"`  // most auth calls in any 60 s window so far
}

// Stats returns a copy of one API's counters.
func (s *Server) Stats(provider string) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := *s.stats[provider]
	st.AuthCalls = len(s.authLog[provider])
	st.MaxAuthIn60s = maxInWindow(s.authLog[provider], time.Minute)
	return st
}

// maxInWindow is the largest number of times in any window of length w (times are sorted).
func maxInWindow(times []time.Time, w time.Duration) int {
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= w {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// Reset zeroes the counters and the auth log (users, key and faults stay).
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.stats {
		s.stats[k] = &Stats{}
	}
	s.authLog = map[string][]time.Time{}
}

func (s *Server) count(provider string, f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.stats[provider])
}

// adminRoutes serve the switches that tests and scripts drive from outside the process:
//
//	GET    /_sim/stats            counters per API
//	POST   /_sim/reset            zero the counters
//	POST   /_sim/faults           add a Fault (JSON); DELETE clears all
//	POST   /_sim/lifetime         {"seconds": N} token lifetime from now on
//	POST   /_sim/forget           invalidate every issued token
//	POST   /_sim/users/{api}      {"name": ..., ...user fields} create or replace a user
//	POST   /_sim/check/{api}      {"token": ...} -> {"valid": bool}
func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		out := map[string]Stats{}
		for _, p := range []string{PlexTrac, Plaspy, Resolver} {
			out[p] = s.Stats(p)
		}
		writeJSON(w, 200, out)
	})
	mux.HandleFunc("POST /_sim/reset", func(w http.ResponseWriter, r *http.Request) { s.Reset(); w.WriteHeader(204) })
	mux.HandleFunc("POST /_sim/forget", func(w http.ResponseWriter, r *http.Request) { s.Forget(); w.WriteHeader(204) })
	mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) { s.ClearFaults(); w.WriteHeader(204) })
	mux.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Fault
		if !decodeJSON(r, &f) {
			writeJSON(w, 400, map[string]string{"error": "body must be a JSON fault"})
			return
		}
		s.AddFault(f)
		w.WriteHeader(204)
	})
	mux.HandleFunc("POST /_sim/lifetime", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Seconds float64 }
		if !decodeJSON(r, &body) || body.Seconds <= 0 {
			writeJSON(w, 400, map[string]string{"error": `body must be {"seconds": N} with N > 0`})
			return
		}
		s.SetTokenLifetime(time.Duration(body.Seconds * float64(time.Second)))
		w.WriteHeader(204)
	})
	mux.HandleFunc("POST /_sim/users/{api}", s.handleAddUser)
	mux.HandleFunc("POST /_sim/check/{api}", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Token string }
		if !decodeJSON(r, &body) {
			writeJSON(w, 400, map[string]string{"error": `body must be {"token": "..."}`})
			return
		}
		writeJSON(w, 200, map[string]bool{"valid": s.CheckToken(r.PathValue("api"), body.Token)})
	})
}

func (s *Server) handleAddUser(w http.ResponseWriter, r *http.Request) {
	var raw json.RawMessage
	var named struct{ Name string }
	if !decodeJSON(r, &raw) || json.Unmarshal(raw, &named) != nil || named.Name == "" {
		writeJSON(w, 400, map[string]string{"error": `body must be a JSON user with "name"`})
		return
	}
	var err error
	switch r.PathValue("api") {
	case PlexTrac:
		var u PlexTracUser
		if err = json.Unmarshal(raw, &u); err == nil {
			s.AddPlexTracUser(named.Name, u)
		}
	case Plaspy:
		var u PlaspyUser
		if err = json.Unmarshal(raw, &u); err == nil {
			s.AddPlaspyUser(named.Name, u)
		}
	case Resolver:
		var u ResolverUser
		if err = json.Unmarshal(raw, &u); err == nil {
			s.AddResolverUser(named.Name, u)
		}
	default:
		writeJSON(w, 404, map[string]string{"error": "unknown api"})
		return
	}
	if err != nil {
		writeJSON(w, 400, map[string]string{"error": err.Error()})
		return
	}
	w.WriteHeader(204)
}

// Users lists the user names of every API (for the simulator's banner).
func (s *Server) Users() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for n := range s.plextrac {
		out[PlexTrac] = append(out[PlexTrac], n)
	}
	for n := range s.plaspy {
		out[Plaspy] = append(out[Plaspy], n)
	}
	for n := range s.resolver {
		out[Resolver] = append(out[Resolver], n)
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}
