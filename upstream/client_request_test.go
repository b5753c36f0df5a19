package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// A login sends its JSON body as application/json; a refresh, which has no body, sends no
// Content-Type.
func TestContentTypeOnlyWithABody(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("Content-Type")
		mu.Unlock()
		_, _ = w.Write([]byte(`{"status":"success","token":"opaque-token-abc"}`))
	}))
	defer srv.Close()
	p, err := newWithBudget(Config{Provider: PlexTrac, URL: srv.URL, Username: "u", Password: "pw-secret", MaxAuthPerMinute: 60,
		RequestTimeout: 2 * time.Second}, Deps{Clock: RealClock{}, Limiters: NewLimiters(), TOTPSteps: NewTOTPSteps()})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := p.Login(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Refresh(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen["/api/v1/authenticate"] != "application/json" || seen["/api/v1/token/refresh"] != "" {
		t.Fatalf("Content-Type seen: %v", seen)
	}
}

// Errors name what upstream answered (its Content-Type) and what failed, without the URL the
// HTTP client puts in front of a connection error.
func TestErrorsSayWhatCameBackNotTheURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<html>sign in</html>"))
	}))
	defer srv.Close()
	p := plextracAt(t, srv.URL)
	if _, err := p.Login(context.Background()); err == nil || !strings.Contains(err.Error(), "a body that is not JSON (text/html)") {
		t.Fatalf("HTML answer: %v, want the media type named", err)
	}
	srv.Close()
	_, err := p.Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot reach upstream") || strings.Contains(err.Error(), "http://") {
		t.Fatalf("connection refused: %v, want no URL in it", err)
	}
}
