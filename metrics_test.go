package sessiontoken

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// The mount counts, not the upstream client that each config write replaces: after two
// config writes (each with a login check) and reads, the counts are every call since the mount
// started, as the upstream saw them, in status, in JSON and in the scrape.
func TestConfigWriteDoesNotResetCounters(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.read("token", nil)
	e.write("config", with(e.plextracConfig(false), "min_ttl", 120))
	e.read("token", nil)
	e.clock.Advance(14 * time.Minute) // less than min_ttl left: the read waits on a refresh
	e.read("static-token", nil)
	st := e.sim.Stats(sim.PlexTrac)
	if st.Logins < 2 || st.Refreshes != 1 {
		t.Fatalf("setup: upstream saw %d logins, %d refreshes", st.Logins, st.Refreshes)
	}
	status := e.read("status", nil).Data
	if calls := status["upstream_calls"].(map[string]map[string]int); calls["login"]["ok"] != st.Logins || calls["refresh"]["ok"] != 1 {
		t.Errorf("status upstream_calls %v, upstream saw %d logins", calls, st.Logins)
	}
	if n := status["reads_waited_on_upstream"]; n != int64(1) {
		t.Errorf("reads_waited_on_upstream %v, want 1", n)
	}
	js := jsonSeries(t, e)
	_, fams := scrape(t, e)
	for name, want := range map[string]float64{
		`sessiontoken_upstream_calls_total{kind=login,outcome=ok}`:       float64(st.Logins),
		`sessiontoken_upstream_calls_total{kind=refresh,outcome=ok}`:     1,
		`sessiontoken_reads_total{outcome=ok,path=token}`:                2,
		`sessiontoken_reads_total{outcome=ok,path=static-token}`:         1,
		`sessiontoken_reads_waited_total{}`:                              1,
		`sessiontoken_upstream_calls_total{kind=login,outcome=rejected}`: 0, // made before its first event
	} {
		if js[name] != want {
			t.Errorf("JSON %s = %v, want %v", name, js[name], want)
		}
	}
	if got := value(t, fams, "sessiontoken_upstream_calls_total", "kind", "login", "outcome", "ok"); got != float64(st.Logins) {
		t.Errorf("scrape: %v logins, upstream saw %d", got, st.Logins)
	}
}

// A scrape shows what the test set up: the session it obtained (the simulator's tokens live 12
// minutes here), the mount's budget and what one login spent of it, no hold and no backoff;
// nothing in it is a secret, a user or a URL.
func TestScrapeShowsTheMountAsSetUp(t *testing.T) {
	e := newEnv(t)
	e.sim.SetTokenLifetime(12 * time.Minute)
	obtained := e.clock.Now()
	e.write("config", with(e.plextracConfig(false), "max_auth_per_minute", 7))
	tok := e.read("token", nil).Data["token"].(string)
	body, fams := scrape(t, e)
	if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls != 1 {
		t.Fatalf("set-up made %d auth calls, want the config check's login alone", st.AuthCalls)
	}
	for _, c := range []struct {
		name string
		want float64
	}{
		{"sessiontoken_configured", 1},
		{"sessiontoken_session_expiry_timestamp_seconds", float64(obtained.Add(12 * time.Minute).Unix())},
		{"sessiontoken_session_obtained_timestamp_seconds", float64(obtained.Unix())},
		{"sessiontoken_credentials_held", 0},
		{"sessiontoken_credentials_refused_in_a_row", 0},
		{"sessiontoken_failure_backoff_end_timestamp_seconds", 0},
		{"sessiontoken_host_auth_budget_per_minute", 7},
		{"sessiontoken_host_auth_tokens_left", 2}, // a burst of 3 for a budget of 7, one login spent
		{"sessiontoken_host_auth_blocked_until_timestamp_seconds", 0},
		{"sessiontoken_session_kept_warm", 1}, // read just now
	} {
		got := value(t, fams, c.name)
		if c.name == "sessiontoken_host_auth_tokens_left" {
			got = math.Floor(got)
		}
		if got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if h := healthGauge(t, fams); h != "ok" {
		t.Errorf("health gauge %s, want ok", h)
	}
	assertNoSecrets(t, "the scrape", string(body), tok)
	for _, s := range []string{e.url, strings.TrimPrefix(e.url, "http://"), sim.DemoPlexTracNoMFAUser} {
		if strings.Contains(string(body), s) {
			t.Errorf("the scrape names %q", s)
		}
	}
	allowed := map[string][]string{"kind": upstreamKinds, "outcome": slices.Concat(upstreamOutcomes, loginOnlyOutcomes, readOutcomes[:], renewOutcomes[:]),
		"path": readPaths[:], "state": healthStates, "reason": authReasons[:]}
	for name, f := range fams {
		if !strings.HasPrefix(name, "sessiontoken_") {
			t.Errorf("series %s is not this plugin's", name)
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(allowed[l.GetName()], l.GetValue()) {
					t.Errorf("%s has label %s=%q, outside the fixed sets", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// The health and hold gauges follow the mount through degraded, failing and held, with the
// read and call counters that tell how it got there.
func TestScrapeFollowsHealth(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.read("token", nil)

	e.upstreamDown()
	e.clock.Advance(11 * time.Minute) // 4m left, under min_ttl: the refresh fails, the token is served
	if resp := e.read("token", nil); len(resp.Warnings) == 0 {
		t.Fatal("setup: want a read served with a warning")
	}
	_, fams := scrape(t, e)
	status := e.read("status", nil).Data
	retry, _ := time.Parse(time.RFC3339, status["retry_after"].(string))
	if healthGauge(t, fams) != "degraded" || value(t, fams, "sessiontoken_reads_total", "path", "token", "outcome", "served_with_warning") != 1 ||
		value(t, fams, "sessiontoken_upstream_calls_total", "kind", "refresh", "outcome", "unavailable") != 1 ||
		value(t, fams, "sessiontoken_failure_backoff_end_timestamp_seconds") != float64(retry.Unix()) {
		t.Errorf("degraded: health %s, scrape %v", healthGauge(t, fams), fams["sessiontoken_reads_total"])
	}

	e.clock.Advance(5 * time.Minute) // expired
	e.readFailure("token")
	_, fams = scrape(t, e)
	if healthGauge(t, fams) != "failing" || value(t, fams, "sessiontoken_reads_total", "path", "token", "outcome", "error") != 1 {
		t.Errorf("failing: health %s", healthGauge(t, fams))
	}

	e.upstreamUp()
	revokeDemoPassword(e)
	for range session.DefaultMaxRefusedLogins {
		e.clock.Advance(10 * time.Minute) // past the backoff
		e.readFailure("token")
	}
	e.clock.Advance(10 * time.Minute)
	e.readFailure("token") // stopped by the hold: not sent
	_, fams = scrape(t, e)
	if healthGauge(t, fams) != "held" || value(t, fams, "sessiontoken_credentials_held") != 1 ||
		value(t, fams, "sessiontoken_credentials_refused_in_a_row") != session.DefaultMaxRefusedLogins ||
		value(t, fams, "sessiontoken_upstream_calls_total", "kind", "login", "outcome", "rejected") != session.DefaultMaxRefusedLogins ||
		value(t, fams, "sessiontoken_upstream_calls_total", "kind", "login", "outcome", "held") != 1 ||
		value(t, fams, "sessiontoken_session_expiry_timestamp_seconds") == 0 {
		t.Errorf("held: health %s, calls %v", healthGauge(t, fams), fams["sessiontoken_upstream_calls_total"])
	}
}

// Renewals are counted by outcome: same token, the session's newer token, refused, error.
func TestRenewalsCountedByOutcome(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	lease := e.lease()
	renew(t, e, lease.Secret) // early: same
	e.clock.Advance(time.Minute)
	renew(t, e, lease.Secret) // early again: same (twice, so that same and new_token differ)
	e.clock.Advance(10 * time.Minute)
	renew(t, e, lease.Secret) // last third: new_token
	bad := &logical.Secret{InternalData: map[string]any{"secret_type": secretTokenType}}
	if resp, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: bad}); err != nil || !resp.IsError() {
		t.Fatalf("a lease without its data: %v %v", resp, err)
	}
	second := e.lease()
	e.upstreamDown()
	e.clock.Advance(16 * time.Minute) // expired, and upstream is down
	if _, err := e.b.HandleRequest(t.Context(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: second.Secret, Data: second.Data}); err == nil {
		t.Fatal("a renewal with no token to hand out succeeded")
	}
	_, fams := scrape(t, e)
	for outcome, want := range map[string]float64{"same": 2, "new_token": 1, "refused": 1, "error": 1} {
		if got := value(t, fams, "sessiontoken_renewals_total", "outcome", outcome); got != want {
			t.Errorf("renewals %s = %v, want %v", outcome, got, want)
		}
	}
}

// Each mount of one plugin process shows its own series only, and none is in the process's
// default registry.
func TestMetricsAreThisMountsOnly(t *testing.T) {
	e := newEnv(t)
	other := e.otherMount()
	e.write("config", e.plextracConfig(false))
	e.read("token", nil)
	_, fams := scrape(t, other)
	if value(t, fams, "sessiontoken_configured") != 0 || value(t, fams, "sessiontoken_reads_total", "path", "token", "outcome", "ok") != 0 ||
		value(t, fams, "sessiontoken_upstream_calls_total", "kind", "login", "outcome", "ok") != 0 {
		t.Error("an unconfigured mount shows another mount's activity")
	}
	if _, ok := fams["sessiontoken_session_expiry_timestamp_seconds"]; ok {
		t.Error("an unconfigured mount shows a session gauge")
	}
	global, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range global {
		if strings.HasPrefix(f.GetName(), "sessiontoken_") {
			t.Errorf("%s is in the process's default registry", f.GetName())
		}
	}
}

func TestMetricsFormatIsChecked(t *testing.T) {
	e := newEnv(t)
	resp, err := e.do(logical.ReadOperation, "metrics", map[string]any{"format": "openmetrics"})
	if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "format: ") || !strings.Contains(errText(resp), "format=prometheus") {
		t.Fatalf("format=openmetrics: %v %s", err, errText(resp))
	}
}
