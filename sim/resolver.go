package sim

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// Resolver Core: POST /user/authenticate logs in, GET /user/authenticate renews with the
// current token. GET /user/me is the simulator's protected endpoint.
func (s *Server) resolverRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /user/authenticate", s.resolverLogin)
	mux.HandleFunc("GET /user/authenticate", s.resolverRenew)
	mux.HandleFunc("GET /user/me", s.protected(Resolver, func(sub string) any {
		return map[string]string{"email": sub}
	}))
}

func (s *Server) resolverLogin(w http.ResponseWriter, r *http.Request) {
	tokFault, done := s.authGate(w, r, Resolver, "login")
	if done {
		return
	}
	var body struct {
		Email       string `json:"email"`
		Password    string `json:"password"`
		SelectedOrg int    `json:"selectedOrg"`
		Client      string `json:"client"`
	}
	if !decodeJSON(r, &body) {
		writeJSON(w, 400, map[string]string{"message": "invalid JSON body"})
		return
	}
	s.mu.Lock()
	u := s.resolver[body.Email]
	var user ResolverUser
	if u != nil {
		user = *u
	}
	s.mu.Unlock()
	fail := func(status int, msg string) {
		s.count(Resolver, func(st *Stats) { st.LoginFailures++ })
		writeJSON(w, status, map[string]string{"message": msg})
	}
	switch {
	case u == nil || user.Password != body.Password:
		fail(401, "Invalid email or password")
	case len(user.Orgs) == 0:
		fail(404, "User is not an active member of any organization")
	case !slices.Contains(user.Orgs, body.SelectedOrg):
		fail(403, fmt.Sprintf("User is not a member of org %d", body.SelectedOrg))
	default:
		s.count(Resolver, func(st *Stats) { st.Logins++ })
		s.resolverIssue(w, body.Email, body.SelectedOrg, tokFault)
	}
}

func (s *Server) resolverIssue(w http.ResponseWriter, email string, org int, tokFault string) {
	tok, exp := s.issue(Resolver, email, jwt.MapClaims{"email": email, "orgId": org}, tokFault)
	writeJSON(w, 200, map[string]any{"token": tok, "expiresAt": exp.Unix()})
}

func (s *Server) resolverRenew(w http.ResponseWriter, r *http.Request) {
	tokFault, done := s.authGate(w, r, Resolver, "refresh")
	if done {
		return
	}
	claims := jwt.MapClaims{}
	sub, err := s.check(Resolver, bearer(r, Resolver))
	if err == nil {
		_, _, _ = jwt.NewParser().ParseUnverified(bearer(r, Resolver), claims)
	}
	if err != nil {
		s.count(Resolver, func(st *Stats) { st.RefreshFailures++ })
		writeJSON(w, 401, map[string]string{"message": "Token is invalid or expired"})
		return
	}
	org, _ := claims["orgId"].(float64)
	s.count(Resolver, func(st *Stats) { st.Refreshes++ })
	s.resolverIssue(w, sub, int(org), tokFault)
}
