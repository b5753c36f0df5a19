package upstream

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

// recorder is an upstream that answers from a script and records what it was sent.
type recorder struct {
	*httptest.Server
	mu      sync.Mutex
	answers map[string]answer // "METHOD /path" -> answer
	got     []sent
}

type answer struct {
	status int
	body   string
}

type sent struct {
	method, path, authz string
	body                map[string]any
}

func newRecorder(t *testing.T, answers map[string]answer) *recorder {
	rec := &recorder{answers: answers}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		rec.mu.Lock()
		rec.got = append(rec.got, sent{r.Method, r.URL.Path, r.Header.Get("Authorization"), m})
		a, ok := rec.answers[r.Method+" "+r.URL.Path]
		rec.mu.Unlock()
		if !ok {
			a = answer{404, `{"message":"no such route"}`}
		}
		w.WriteHeader(a.status)
		w.Write([]byte(a.body))
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) set(route string, a answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[route] = a
}

func (r *recorder) sent() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.got...)
}

func providerAt(t *testing.T, cfg Config, clock Clock) Provider {
	t.Helper()
	cfg.MaxAuthPerMinute, cfg.RequestTimeout = 600, 2*time.Second
	p, err := newWithBudget(cfg, Deps{Clock: clock, Limiters: NewLimiters(), TOTPSteps: NewTOTPSteps()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func wantErr(t *testing.T, err error, kind Kind, says ...string) {
	t.Helper()
	e, ok := AsError(err)
	if !ok || e.Kind != kind {
		t.Fatalf("want a %s error, got %v", kind, err)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("want %q in: %v", s, err)
		}
	}
}

// testClock is the tests' one fake clock (internal/testclock).
type testClock = testclock.Clock

func newTestClock() *testClock { return testclock.New() }

// clientOf is the *Client every provider embeds.
func clientOf(p Provider) *Client {
	return reflect.ValueOf(p).Elem().FieldByName("Client").Interface().(*Client)
}
