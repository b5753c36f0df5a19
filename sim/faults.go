package sim

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// Fault changes how the simulator answers matching calls, switchable at run time.
type Fault struct {
	// Provider limits the fault to one API ("" = all).
	Provider string `json:"provider,omitempty"`
	// Op is login, mfa, refresh, check (protected endpoint) or "" for all.
	Op string `json:"op,omitempty"`
	// Delay is added before answering (the request's context still ends it).
	Delay time.Duration `json:"delay,omitempty"`
	// Status answers with this HTTP status and a JSON error body instead of the real answer.
	Status int `json:"status,omitempty"`
	// RetryAfter, with Status 429, sets the Retry-After header (e.g. "7").
	RetryAfter string `json:"retry_after,omitempty"`
	// Body replaces the answer: "html" (an HTML error page with 200), "garbage", "truncated"
	// (cut-off JSON), "empty", "oversized" (OversizeMiB MiB of JSON-looking bytes), or
	// "refusal" (the provider's own refusal body, under Status, default 200: Plaspy's
	// success:false, PlexTrac's {"status":"error","statusCode":401}; needs Provider).
	Body        string `json:"body,omitempty"`
	OversizeMiB int    `json:"oversize_mib,omitempty"`
	// Token changes the tokens that successful logins issue: "notjwt", "expired" or "noexp".
	Token string `json:"token,omitempty"`
	// Times is how many calls it affects (0 = until cleared).
	Times int `json:"times,omitempty"`
}

// AddFault switches a fault on.
func (s *Server) AddFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// ClearFaults switches every fault off.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// takeFault returns the first fault matching provider and op, counting one use of it.
func (s *Server) takeFault(provider, op string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Provider != "" && f.Provider != provider) || (f.Op != "" && f.Op != op) {
			continue
		}
		got := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		s.stats[provider].Faults++
		return &got
	}
	return nil
}

// applyFault answers the request per f and says whether it did (so the real handler must not).
// A fault that only delays or changes tokens lets the real handler answer.
func applyFault(ctx context.Context, w http.ResponseWriter, f *Fault) bool {
	if f == nil {
		return false
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-ctx.Done():
			return true
		}
	}
	switch f.Body {
	case "html":
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(statusOr(f.Status, 200))
		_, _ = w.Write([]byte("<html><head><title>502 Bad Gateway</title></head><body>upstream error</body></html>"))
		return true
	case "garbage":
		w.WriteHeader(statusOr(f.Status, 200))
		_, _ = w.Write([]byte("\x00\x01garbage\xff{{{"))
		return true
	case "truncated":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(statusOr(f.Status, 200))
		_, _ = w.Write([]byte(`{"status":"success","tenant_id":0,"token":"eyJhbGciOi`))
		return true
	case "empty":
		w.WriteHeader(statusOr(f.Status, 200))
		return true
	case "refusal":
		writeJSON(w, statusOr(f.Status, 200), refusalBody(f.Provider, f.Op))
		return true
	case "oversized":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(statusOr(f.Status, 200))
		chunk := []byte(`{"pad":"` + strings.Repeat("x", 1<<20-10) + `"},`)
		for i := 0; i < max(f.OversizeMiB, 1); i++ {
			if _, err := w.Write(chunk); err != nil {
				return true
			}
		}
		return true
	}
	if f.Status != 0 {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeJSON(w, f.Status, map[string]any{
			"statusCode": f.Status,
			"error":      http.StatusText(f.Status),
			"message":    "fault injected by the simulator",
		})
		return true
	}
	return false
}

// refusalBody is how provider words a refused login (or MFA code) in its body, as
// UPSTREAMS.md says it does.
func refusalBody(provider, op string) map[string]any {
	switch provider {
	case Plaspy:
		return map[string]any{"success": false, "error": "Invalid API key or username."}
	case PlexTrac:
		msg := "Invalid username or password"
		if op == "mfa" {
			msg = "Invalid MFA code"
		}
		return map[string]any{
			"status":     "error",
			"statusCode": 401,
			"error":      "Unauthorized",
			"message":    msg,
		}
	}
	return map[string]any{"message": "Invalid credentials"}
}

func statusOr(s, def int) int {
	if s != 0 {
		return s
	}
	return def
}
