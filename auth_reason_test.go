package sessiontoken

import (
	"net/http"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// authCalls is sessiontoken_auth_calls_total by reason, from a scrape.
func authCalls(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	_, fams := scrape(t, e)
	out := map[string]float64{}
	for _, r := range authReasons {
		out[r] = value(t, fams, "sessiontoken_auth_calls_total", "reason", r)
	}
	return out
}

// Each auth call upstream saw is counted once, under who started it: config's check (a
// login and its MFA step), the periodic run's refresh ahead, a renewal in the token's last
// third, rotate, and a read that found the session lapsed. Readers that join a call started
// by someone else add nothing.
func TestAuthCallsAreCountedByWhoStartedThem(t *testing.T) {
	e := newEnv(t)
	want := map[string]float64{"reader": 0, "renewal": 0, "periodic": 0, "rotate": 0, "config": 0}
	check := func(step string) {
		t.Helper()
		got := authCalls(t, e)
		var sum float64
		for r, n := range got {
			sum += n
			if n != want[r] {
				t.Errorf("after %s: %s = %v, want %v (all: %v)", step, r, n, want[r], got)
			}
		}
		if seen := e.sim.Stats(sim.PlexTrac).AuthCalls; sum != float64(seen) {
			t.Errorf("after %s: %v auth calls counted, upstream saw %d", step, sum, seen)
		}
	}
	e.write("config", e.plextracConfig(true))
	want["config"] = 2 // the login and its MFA step
	check("config")

	lease := e.lease()                // the check's token serves
	e.clock.Advance(11 * time.Minute) // in the token's last third
	renew(t, e, lease.Secret)
	want["renewal"] = 1 // a refresh
	check("a renewal that refreshed")

	e.runPeriodic(10*time.Minute, nil)
	want["periodic"] = 1 // ahead of the refreshed token's expiry
	check("the periodic run")

	e.write("rotate", nil)
	want["rotate"] = 2
	check("rotate")

	e.clock.Advance(time.Hour) // lapsed: no periodic run
	e.read("static-token", nil)
	want["reader"] = 2
	check("a read of a lapsed session")
}

// A read that joins a renewal's refresh adds no call and takes no credit: the call is the
// renewal's, whoever waits on it.
func TestAJoinedCallIsCreditedToWhoStartedIt(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	e := newEnvWrapped(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/v1/token/refresh" {
				arrived <- struct{}{}
				<-release
			}
			next.ServeHTTP(w, r)
		})
	})
	e.write("config", e.plextracConfig(false))
	lease := e.lease()
	e.clock.Advance(11 * time.Minute) // the lease and the session in their last third: both refresh
	renewed := make(chan struct{})
	go func() { defer close(renewed); renew(t, e, lease.Secret) }()
	<-arrived
	read := make(chan struct{})
	go func() { defer close(read); e.read("static-token", nil) }()
	for counterValue(e.b.metrics.waited) < 2 { // the reader is at the shared call (or past it: either way it starts no call)
		time.Sleep(time.Millisecond)
	}
	close(release)
	<-renewed
	<-read
	if got := authCalls(t, e); got["renewal"] != 1 || got["reader"] != 0 || e.sim.Stats(sim.PlexTrac).Refreshes != 1 {
		t.Fatalf("auth calls %v, %d refreshes upstream: want the one refresh credited to the renewal", got, e.sim.Stats(sim.PlexTrac).Refreshes)
	}
}
