//go:build integration

package integration

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type renewJSON struct {
	LeaseID       string         `json:"lease_id"`
	LeaseDuration int            `json:"lease_duration"`
	Renewable     bool           `json:"renewable"`
	Data          map[string]any `json:"data"`
}

func renewLease(t *testing.T, id string) renewJSON {
	t.Helper()
	var r renewJSON
	if err := json.Unmarshal([]byte(mustCLI(t, "lease", "renew", "-format=json", id)), &r); err != nil {
		t.Fatal(err)
	}
	if tok, ok := r.Data["token"].(string); ok {
		rememberSecret(tok)
	}
	return r
}

// Renewals through the CLI, with tokens long enough that the renewal window (the token's last
// third, less the 5 s by which the lease ends before the token) is far wider than a CLI round
// trip on a loaded machine. No fixed sleeps: the test renews every second until a renewal hands
// out a newer token, and checks each renewal against when it started and ended: one that ended
// before the window opened keeps the token and never outlives it; one that started inside the
// window switches tokens.
func TestLeaseRenewInsideAndOutsideTheWindow(t *testing.T) {
	t.Parallel()
	const life = 90 * time.Second // window: the last 30 s; the lease ends 5 s before the token
	sim := startSim(t, life)
	enable(t, "renew", plextracConfig(sim)...)
	s := readJSON(t, "renew/token")
	exp, _ := time.Parse(time.RFC3339, s.Data["expires_at"].(string))
	iss, _ := time.Parse(time.RFC3339, s.Data["issued_at"].(string))
	windowOpens := exp.Add(-exp.Sub(iss) / 3)
	if time.Until(windowOpens) < 10*time.Second {
		t.Fatalf("the first token has only %s before its renewal window opens; want a fresh token", time.Until(windowOpens))
	}

	var late renewJSON
	var lateStart time.Time
	early := 0
	for deadline := exp.Add(-5 * time.Second); ; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal handed out a newer token before the lease ended (%d renewals kept the old one)", early)
		}
		start := time.Now()
		r := renewLease(t, s.LeaseID)
		end := time.Now()
		if r.Data["token"] == s.Data["token"] {
			if !start.Before(windowOpens) {
				t.Fatalf("a renewal started %s after the window opened kept the old token: %+v", start.Sub(windowOpens), r)
			}
			if !r.Renewable {
				t.Fatalf("a renewal that kept the token made the lease non-renewable: %+v", r)
			}
			// The lease never outlives the token, not even by the 5 s margin.
			if leaseEnd := start.Add(time.Duration(r.LeaseDuration) * time.Second); leaseEnd.After(exp.Add(-4 * time.Second)) {
				t.Fatalf("an early renewal extended the lease (%ds) to %s, past the token's expiry %s less 5 s", r.LeaseDuration, leaseEnd, exp)
			}
			early++
			continue
		}
		if end.Before(windowOpens) {
			t.Fatalf("a renewal that ended %s before the window opened switched tokens", windowOpens.Sub(end))
		}
		late, lateStart = r, start
		break
	}
	t.Logf("%d early renewals kept the token; the first renewal into the window switched, %s after the window opened", early, lateStart.Sub(windowOpens).Round(100*time.Millisecond))
	if early == 0 {
		t.Error("no renewal happened before the window: the early-renewal rule went unchecked")
	}
	newTok, _ := late.Data["token"].(string)
	if newTok == "" || late.Renewable {
		t.Fatalf("renewal inside the window: want a new token and a non-renewable lease: %+v", late)
	}
	if !sim.valid(t, "plextrac", newTok) {
		t.Fatal("the renewed token does not work upstream")
	}
	newExp, _ := time.Parse(time.RFC3339, late.Data["expires_at"].(string))
	if !newExp.After(exp) {
		t.Fatalf("the renewed token expires at %s, not after the old one (%s)", newExp, exp)
	}
	// No increment asked: the lease runs to the new token's expiry less the 5 s margin.
	if want := int(newExp.Sub(lateStart).Seconds()) - 5; late.LeaseDuration < want-5 || late.LeaseDuration > want+1 {
		t.Errorf("renewed lease_duration %d, want ≈%d (new token's remaining life less 5 s)", late.LeaseDuration, want)
	}
	if _, errOut, err := vault.cli("lease", "renew", s.LeaseID); err == nil || !strings.Contains(errOut, "not renewable") {
		t.Errorf("a non-renewable lease renewed again: %v %s", err, errOut)
	}

	// Revoking a lease, and disabling the mount with leases outstanding, both succeed.
	mustCLI(t, "lease", "revoke", s.LeaseID)
	readJSON(t, "renew/token")
	readJSON(t, "renew/token")
	mustCLI(t, "secrets", "disable", "renew")
}
