package sim

import (
	"fmt"
	"math"
	"net/http"
)

// authGate runs what every auth call meets before the login logic: the per-minute limit
// (429 with a JSON body and Retry-After) and any injected fault. It returns the token fault to
// apply to issued tokens and whether the call was already answered.
func (s *Server) authGate(w http.ResponseWriter, r *http.Request, provider, op string) (string, bool) {
	if ok, wait := s.allowAuth(provider); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", fmt.Sprint(secs))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{
			"statusCode": 429,
			"error":      "Too Many Requests",
			"message":    fmt.Sprintf("Rate limit exceeded, retry in %d seconds", secs),
		})
		return "", true
	}
	return s.faultGate(w, r, provider, op)
}

// faultGate applies an injected fault, if one matches.
func (s *Server) faultGate(w http.ResponseWriter, r *http.Request, provider, op string) (string, bool) {
	f := s.takeFault(provider, op)
	if applyFault(r.Context(), w, f) {
		return "", true
	}
	if f != nil {
		return f.Token, false
	}
	return "", false
}

// protected answers a provider's token-checking endpoint: 200 with the subject, else 401.
func (s *Server) protected(provider string, body func(sub string) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, done := s.faultGate(w, r, provider, "check"); done {
			return
		}
		sub, err := s.check(provider, bearer(r, provider))
		if err != nil {
			s.count(provider, func(st *Stats) { st.CheckFailures++ })
			writeJSON(w, 401, map[string]any{
				"status":     "error",
				"statusCode": 401,
				"error":      "Unauthorized",
				"message":    "invalid or expired token",
			})
			return
		}
		s.count(provider, func(st *Stats) { st.Checks++ })
		writeJSON(w, 200, body(sub))
	}
}
