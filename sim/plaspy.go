package sim

import (
	"mime"
	"net/http"
	"time"
)

// Plaspy: POST /api/Auth/Token answers HTTP 200 with success true/false; no refresh exists.
// GET /api/Account is the simulator's protected endpoint.
func (s *Server) plaspyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /api/Auth/Token", s.plaspyLogin)
	mux.HandleFunc("GET /api/Account", s.protected(Plaspy, func(sub string) any {
		return map[string]string{"userName": sub}
	}))
}

func (s *Server) plaspyLogin(w http.ResponseWriter, r *http.Request) {
	tokFault, done := s.authGate(w, r, Plaspy, "login")
	if done {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]any{
			"success": false,
			"error":   "Content-Type must be application/json.",
		})
		return
	}
	var body struct {
		UserName string `json:"userName"`
		APIKey   string `json:"apiKey"`
	}
	if !decodeJSON(r, &body) {
		writeJSON(w, 400, map[string]any{"success": false, "error": "Invalid request body."})
		return
	}
	s.mu.Lock()
	u := s.plaspy[body.UserName]
	ok := u != nil && u.APIKey == body.APIKey
	s.mu.Unlock()
	if !ok {
		s.count(Plaspy, func(st *Stats) { st.LoginFailures++ })
		writeJSON(w, 200, map[string]any{"success": false, "error": "Invalid API key or username."})
		return
	}
	s.count(Plaspy, func(st *Stats) { st.Logins++ })
	tok, exp := s.issue(Plaspy, body.UserName, nil, tokFault)
	writeJSON(w, 200, map[string]any{
		"success": true,
		"token":   tok,
		"expires": exp.UTC().Format(time.RFC3339),
	})
}
