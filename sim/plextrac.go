package sim

import (
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// PlexTrac: POST /api/v1/authenticate, POST /api/v1/authenticate/mfa, PUT /api/v1/token/refresh,
// GET /api/v1/ (health); GET /api/v1/whoami is the simulator's protected endpoint.
func (s *Server) plextracRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"text": "Authenticate at /authenticate"})
	})
	mux.HandleFunc("POST /api/v1/authenticate", s.plextracLogin)
	mux.HandleFunc("POST /api/v1/authenticate/mfa", s.plextracMFA)
	mux.HandleFunc("PUT /api/v1/token/refresh", s.plextracRefresh)
	mux.HandleFunc("GET /api/v1/whoami", s.protected(PlexTrac, func(sub string) any {
		return map[string]string{"username": sub}
	}))
}

func plextracUnauthorized(w http.ResponseWriter, msg string) {
	writeJSON(w, 401, map[string]any{
		"status":     "error",
		"statusCode": 401,
		"error":      "Unauthorized",
		"message":    msg,
	})
}

func (s *Server) plextracLogin(w http.ResponseWriter, r *http.Request) {
	tokFault, done := s.authGate(w, r, PlexTrac, "login")
	if done {
		return
	}
	var body struct{ Username, Password string }
	if !decodeJSON(r, &body) {
		writeJSON(w, 400, map[string]any{
			"status":     "error",
			"statusCode": 400,
			"message":    "invalid JSON body",
		})
		return
	}
	s.mu.Lock()
	u, ok := s.plextrac[body.Username]
	var user PlexTracUser
	if ok {
		user = *u
	}
	s.mu.Unlock()
	if !ok || user.Password != body.Password {
		s.count(PlexTrac, func(st *Stats) { st.LoginFailures++ })
		plextracUnauthorized(w, "Invalid username or password")
		return
	}
	if user.TOTPSecret != "" {
		code := randomID()
		s.mu.Lock()
		s.challenges[code] = challenge{user: body.Username, expires: s.now().Add(5 * time.Minute)}
		s.stats[PlexTrac].MFAChallenges++
		s.mu.Unlock()
		writeJSON(w, 200, map[string]any{"mfa_enabled": true, "code": code})
		return
	}
	s.count(PlexTrac, func(st *Stats) { st.Logins++ })
	s.plextracIssue(w, body.Username, user.TenantID, tokFault)
}

func (s *Server) plextracIssue(w http.ResponseWriter, user string, tenant int, tokFault string) {
	tok, _ := s.issue(PlexTrac, user, jwt.MapClaims{"username": user, "tenantId": tenant}, tokFault)
	writeJSON(w, 200, map[string]any{
		"status":    "success",
		"tenant_id": tenant,
		"cookie":    tok,
		"token":     tok,
	})
}

func (s *Server) plextracMFA(w http.ResponseWriter, r *http.Request) {
	tokFault, done := s.authGate(w, r, PlexTrac, "mfa")
	if done {
		return
	}
	var body struct{ Code, Token string }
	if !decodeJSON(r, &body) {
		writeJSON(w, 400, map[string]any{
			"status":     "error",
			"statusCode": 400,
			"message":    "invalid JSON body",
		})
		return
	}
	now := s.now()
	s.mu.Lock()
	ch, ok := s.challenges[body.Code]
	delete(s.challenges, body.Code) // a challenge is good for one attempt
	var user PlexTracUser
	if u := s.plextrac[ch.user]; ok && u != nil {
		user = *u
	}
	s.mu.Unlock()
	fail := func(msg string) {
		s.count(PlexTrac, func(st *Stats) { st.MFAFailures++ })
		plextracUnauthorized(w, msg)
	}
	if !ok || now.After(ch.expires) || user.TOTPSecret == "" {
		fail("Unknown or expired MFA challenge")
		return
	}
	step, valid := matchTOTP(user.TOTPSecret, body.Token, now)
	if !valid {
		fail("Invalid MFA code")
		return
	}
	s.mu.Lock()
	replay := step <= s.lastStep[ch.user]
	if !replay {
		s.lastStep[ch.user] = step
	}
	s.mu.Unlock()
	if replay {
		fail("MFA code already used")
		return
	}
	s.count(PlexTrac, func(st *Stats) { st.MFA++ })
	s.plextracIssue(w, ch.user, user.TenantID, tokFault)
}

// matchTOTP checks code against the steps around now (±1 step of clock skew, as
// authenticator servers allow) and returns the step it matched.
func matchTOTP(secret, code string, now time.Time) (int64, bool) {
	for _, d := range []int64{0, -1, 1} {
		step := now.Unix()/30 + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*30, 0), totp.ValidateOpts{
			Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err == nil && want == code {
			return step, true
		}
	}
	return 0, false
}

func (s *Server) plextracRefresh(w http.ResponseWriter, r *http.Request) {
	tokFault, done := s.authGate(w, r, PlexTrac, "refresh")
	if done {
		return
	}
	sub, err := s.check(PlexTrac, bearer(r, PlexTrac))
	s.mu.Lock()
	u := s.plextrac[sub]
	tenant := 0
	if u != nil {
		tenant = u.TenantID
	}
	s.mu.Unlock()
	if err != nil || u == nil {
		s.count(PlexTrac, func(st *Stats) { st.RefreshFailures++ })
		plextracUnauthorized(w, "Token is invalid or expired")
		return
	}
	s.count(PlexTrac, func(st *Stats) { st.Refreshes++ })
	s.plextracIssue(w, sub, tenant, tokFault)
}
