package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func plextracAt(t *testing.T, url string) Provider {
	t.Helper()
	p, err := New(Config{Provider: PlexTrac, URL: url, Username: "svc@acme.com", Password: "s3cret-pass", MaxAuthPerMinute: 600,
		RequestTimeout: 2 * time.Second}, Deps{Clock: RealClock{}, Limiters: NewLimiters()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRedirectIsNotFollowedWithCredentials(t *testing.T) {
	var reached atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/api/v1/authenticate", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := plextracAt(t, srv.URL).Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("want a redirect error, got %v", err)
	}
	if reached.Load() != 0 {
		t.Fatal("the credentials were sent to the redirect target")
	}
}

func TestHostileAnswersGiveClearErrorsWithoutSecrets(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
		kind    Kind
	}{
		{"html page with 200", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>oops</html>"))
		}, "not JSON", KindBadResponse},
		{"oversized body", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"token":"` + strings.Repeat("a", 3<<20) + `"}`))
		}, "larger than", KindBadResponse},
		{"error echoing the password", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(401)
			w.Write([]byte(`{"message":"bad password s3cret-pass for user, token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.abc"}`))
		}, "[redacted]", KindRejected},
		{"5xx", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, "HTTP 503", KindUnavailable},
		{"hang past timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, "request_timeout", KindUnavailable},
		{"token not a JWT and no expiry", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"status":"success","token":"opaque-token"}`))
		}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			tok, err := plextracAt(t, srv.URL).Login(context.Background())
			if tc.kind == "" { // accepted, with the assumed 15-minute life
				if err != nil || tok.Lifetime() != DefaultLifetime {
					t.Fatalf("got %v %v", tok, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !IsKind(err, tc.kind) {
				t.Fatalf("want a %s error saying %q, got %v", tc.kind, tc.want, err)
			}
			if !strings.HasPrefix(err.Error(), "plextrac (") {
				t.Errorf("error does not name the upstream: %v", err)
			}
			if strings.Contains(err.Error(), "s3cret-pass") || strings.Contains(err.Error(), "eyJ") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}
