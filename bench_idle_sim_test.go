package sessiontoken

import (
	"bytes"
	"container/heap"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// The idle-mounts benchmark's machinery (bench_idle_test.go): its event queue, and the
// witness that counts auth calls by account in front of the simulator.

// eventQueue is the simulation's events in time order (ties in the order they were added).
type eventQueue struct {
	h   eventHeap
	seq int
}

type eventHeap []*event

type event struct {
	due time.Time
	seq int
	run func(due time.Time)
}

func (q *eventQueue) at(due time.Time, run func(time.Time)) {
	q.seq++
	heap.Push(&q.h, &event{due: due, seq: q.seq, run: run})
}

func (q eventHeap) Len() int { return len(q) }
func (q eventHeap) Less(i, j int) bool {
	return q[i].due.Before(q[j].due) || q[i].due.Equal(q[j].due) && q[i].seq < q[j].seq
}
func (q eventHeap) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventHeap) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventHeap) Pop() any {
	old := *q
	ev := old[len(old)-1]
	*q = old[:len(old)-1]
	return ev
}

// authCallLog is a witness in front of the simulator: when each PlexTrac auth call it let
// through was sent, by account (a login by its username, an MFA answer by its challenge's, a
// refresh by its token's username claim).
type authCallLog struct {
	now       func() time.Time
	mu        sync.Mutex
	byUser    map[string][]time.Time
	challenge map[string]string // MFA challenge code -> username
}

func (l *authCallLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Username, Code string }
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		_ = json.Unmarshal(body, &in)
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var out struct{ Code string }
		_ = json.Unmarshal(rec.Body.Bytes(), &out)
		l.mu.Lock()
		user := ""
		switch r.URL.Path {
		case "/api/v1/authenticate":
			user = in.Username
			if out.Code != "" {
				l.challenge[out.Code] = in.Username
			}
		case "/api/v1/authenticate/mfa":
			user = l.challenge[in.Code]
		case "/api/v1/token/refresh":
			user = jwtUsername(r.Header.Get("Authorization"))
		}
		if user != "" && rec.Code != http.StatusTooManyRequests {
			l.byUser[user] = append(l.byUser[user], l.now())
		}
		l.mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// jwtUsername is the username claim of a PlexTrac token, read unverified (the simulator verified it).
func jwtUsername(authorization string) string {
	parts := strings.Split(strings.TrimPrefix(authorization, "Bearer "), ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct{ Username string }
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Username
}
