package sessiontoken

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// runPeriodic moves the clock on by d a minute at a time, running the periodic function each
// minute as Vault does, and calls each (if given) after every minute.
func (e *env) runPeriodic(d time.Duration, each func()) {
	e.t.Helper()
	for end := e.clock.Now().Add(d); e.clock.Now().Before(end); {
		e.clock.Advance(time.Minute)
		if err := e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.s}); err != nil {
			e.t.Fatal(err)
		}
		if each != nil {
			each()
		}
	}
}

func keepWarmOf(e *env) map[string]any {
	return e.read("status", nil).Data["keep_warm"].(map[string]any)
}

// A mount read once is kept warm for keep_warm (by default twice the token's life: 30
// minutes with 15-minute tokens), then costs the upstream nothing: the periodic run neither
// refreshes nor, once the token has expired, logs in. The next reader logs in, and that read
// warms it again. status says which, and until when.
func TestIdleMountLapsesAndThePeriodicRunNeverLogsIn(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.read("token", nil)
	if kw := keepWarmOf(e); kw["kept_warm"] != true || kw["until"] != rfc3339(e.clock.Now().Add(30*time.Minute)) {
		t.Fatalf("status right after a read: %v", kw)
	}
	e.runPeriodic(30*time.Minute, nil)
	warm := e.sim.Stats(sim.PlexTrac)
	if warm.Refreshes < 2 {
		t.Fatalf("while read within keep_warm: %d refreshes ahead, want the session kept warm", warm.Refreshes)
	}
	e.runPeriodic(3*time.Hour, nil)
	if idle := e.sim.Stats(sim.PlexTrac); idle.AuthCalls != warm.AuthCalls {
		t.Fatalf("an idle mount cost %d auth calls in 3 hours past keep_warm", idle.AuthCalls-warm.AuthCalls)
	}
	if kw := keepWarmOf(e); kw["kept_warm"] != false || !strings.Contains(kw["reason"].(string), "lapses") {
		t.Fatalf("status of an idle mount: %v", kw)
	}
	e.read("token", nil)
	if st := e.sim.Stats(sim.PlexTrac); st.Logins != warm.Logins+1 || keepWarmOf(e)["kept_warm"] != true {
		t.Fatalf("the next reader: %d logins, want one; %v", st.Logins-warm.Logins, keepWarmOf(e))
	}
}

// Reads of status and metrics, and config writes, keep nothing warm; a lease renewal does,
// and so does a read on a mount whose config was rewritten since (the last-served time is the
// mount's, not the account's).
func TestOnlyReadsAndRenewalsKeepAMountWarm(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	lease := e.lease()
	scrape := func() {
		e.read("status", nil)
		e.read("metrics", map[string]any{"format": "prometheus"})
	}
	e.runPeriodic(2*time.Hour, scrape)
	e.write("config", map[string]any{"max_refused_logins": 5, "verify": false})
	before := e.sim.Stats(sim.PlexTrac)
	e.runPeriodic(time.Hour, scrape)
	if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls != before.AuthCalls {
		t.Fatalf("status and metrics reads and a config write kept the mount warm: %d auth calls", st.AuthCalls-before.AuthCalls)
	}

	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: lease.Secret, Data: lease.Data})
	if err != nil || resp == nil {
		t.Fatalf("renewal: %v", err)
	}
	if kw := keepWarmOf(e); kw["kept_warm"] != true || kw["last_served"] != rfc3339(e.clock.Now()) {
		t.Fatalf("after a renewal: %v", kw)
	}
	e.read("token", nil) // logs in: the session lapsed
	e.write("config", map[string]any{"max_refused_logins": 4, "verify": false})
	before = e.sim.Stats(sim.PlexTrac)
	e.runPeriodic(20*time.Minute, nil)
	if st := e.sim.Stats(sim.PlexTrac); st.Refreshes == before.Refreshes {
		t.Fatal("a config write that kept the account let the read mount go cold")
	}
}

// keep_warm = 0: the periodic run never refreshes ahead, even for a mount read all the time.
// keep_warm is written and read back as given, bounded, and past its bound refused.
func TestKeepWarmZeroNeverRefreshesAhead(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "keep_warm", 0))
	if got := e.read("config", nil).Data["keep_warm"]; got != 0 {
		t.Fatalf("keep_warm reads back %v", got)
	}
	e.read("token", nil)
	e.runPeriodic(9*time.Minute, func() { e.b.metrics.served(e.clock.Now()) }) // a read every minute that needs no refresh
	if st := e.sim.Stats(sim.PlexTrac); st.Refreshes != 0 {
		t.Fatalf("keep_warm=0: %d refreshes ahead", st.Refreshes)
	}
	if kw := keepWarmOf(e); kw["kept_warm"] != false || !strings.Contains(kw["reason"].(string), "keep_warm is 0") {
		t.Fatalf("status: %v", kw)
	}
	resp, err := e.do(logical.UpdateOperation, "config", map[string]any{"keep_warm": 7*86400 + 1})
	if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "keep_warm: 604801 is outside 0..604800") {
		t.Fatalf("keep_warm past its bound: %v %s", err, errText(resp))
	}
	e.write("config", map[string]any{"keep_warm": 3600, "verify": false})
	if got := e.read("config", nil).Data["keep_warm"]; got != 3600 {
		t.Fatalf("keep_warm reads back %v", got)
	}
}

// Only the node that runs the periodic refresh decides; status on another node says so.
func TestKeepWarmStatusOnANodeThatDoesNotDecide(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.read("token", nil)
	if kw := keepWarmOf(e.standby()); kw["kept_warm"] != false || !strings.Contains(kw["reason"].(string), "the active node decides") {
		t.Fatalf("standby status: %v", kw)
	}
}

// A mount left idle past keep_warm plus a token's life, then read at Vault Agent's cadence
// (a lease, renewed at ~0.7 of its TTL, read again when a renewal ends its renewability or
// leaves it no life): its first read logs in once, and from then on the reader never holds an
// expired token and upstream sees no other login.
func TestAgentOnALapsedMountLogsInOnceAndNeverHoldsAnExpiredToken(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.runPeriodic(30*time.Minute+15*time.Minute+5*time.Minute, nil) // never read: lapsed
	before := e.sim.Stats(sim.PlexTrac)
	lease := e.lease()
	held := func(resp *logical.Response) (time.Time, time.Time) {
		exp, err := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		return exp, e.clock.Now().Add(resp.Secret.TTL * 7 / 10)
	}
	expiresAt, renewAt := held(lease)
	expired, renewals := 0, 0
	e.runPeriodic(3*time.Hour, func() {
		if !e.clock.Now().Before(expiresAt) {
			expired++
		}
		if e.clock.Now().Before(renewAt) {
			return
		}
		renewals++
		if resp := renew(t, e, lease.Secret); resp.Secret != nil && resp.Secret.Renewable && resp.Secret.TTL > time.Minute {
			lease.Secret, lease.Data = resp.Secret, resp.Data
		} else {
			lease = e.lease() // Agent reads the path again
		}
		expiresAt, renewAt = held(lease)
	})
	after := e.sim.Stats(sim.PlexTrac)
	if expired != 0 || after.Logins != before.Logins+1 || renewals == 0 {
		t.Fatalf("%d minutes holding an expired token, %d logins after the lapse (want 1), %d renewals", expired, after.Logins-before.Logins, renewals)
	}
}

// A mount left idle past keep_warm plus a token's life, then synced by the Vault Secrets
// Operator's two clients (integration/vso_test.go says where the algorithms come from; one
// minute is this model's step): its first sync logs in once, and from then on neither client
// holds an expired token and upstream sees no other login.
//   - VaultDynamicSecret, leased: requeue at 67–77 % of the lease (a seeded jitter, so the run
//     is the same each time); renew with increment=D; a renewal that fails, is cut short of D
//     or ends renewability with less than D syncs again at once; one not renewable with D or
//     more is kept as is and never requeued (VSO then sits idle).
//   - allowStaticCreds on static-token: requeue after ttl + 0.5 s (+ a jitter under 150 ms).
func TestVSOOnALapsedMountLogsInOnceAndNeverHoldsAnExpiredToken(t *testing.T) {
	for _, static := range []bool{false, true} {
		name := map[bool]string{false: "dynamic secret, leased", true: "static creds"}[static]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.write("config", e.plextracConfig(false))
			e.runPeriodic(30*time.Minute+15*time.Minute+5*time.Minute, nil) // never read: lapsed
			before := e.sim.Stats(sim.PlexTrac)
			jitter := rand.New(rand.NewPCG(1, 2))
			var lease *logical.Response
			var expiresAt, next time.Time
			sync := func() {
				if static {
					resp := e.read("static-token", nil)
					lease = resp
					next = e.clock.Now().Add(time.Duration(resp.Data["ttl"].(int))*time.Second + 500*time.Millisecond + time.Duration(jitter.Int64N(int64(150*time.Millisecond))))
				} else {
					lease = e.lease()
					d := lease.Secret.TTL
					next = e.clock.Now().Add(d*67/100 + d/10 - time.Duration(jitter.Int64N(int64(d/10))))
				}
				exp, err := time.Parse(time.RFC3339, lease.Data["expires_at"].(string))
				if err != nil {
					t.Fatal(err)
				}
				expiresAt = exp
			}
			sync()
			expired, requeues := 0, 0
			e.runPeriodic(3*time.Hour, func() {
				if !e.clock.Now().Before(expiresAt) {
					expired++
				}
				if next.IsZero() || e.clock.Now().Before(next) {
					return
				}
				requeues++
				if static {
					sync()
					return
				}
				d := lease.Secret.TTL
				lease.Secret.Increment = d // VSO renews with increment=D
				resp := renew(t, e, lease.Secret)
				switch {
				case resp.Secret == nil || resp.Secret.TTL < d:
					sync() // LeaseTruncatedError or a failed renewal: sync again at once
				case !resp.Secret.Renewable:
					next = time.Time{} // kept as is, never requeued
				default:
					lease.Secret = resp.Secret
					next = e.clock.Now().Add(d*67/100 + d/10 - time.Duration(jitter.Int64N(int64(d/10))))
				}
			})
			after := e.sim.Stats(sim.PlexTrac)
			if expired != 0 || after.Logins != before.Logins+1 || requeues < 10 {
				t.Fatalf("%d minutes holding an expired token, %d logins after the lapse (want 1), %d requeues", expired, after.Logins-before.Logins, requeues)
			}
		})
	}
}

// keep_warm as written, to the second: a mount read once stays warm until exactly keep_warm
// after the read, and no longer.
func TestKeepWarmIsHeldToTheSecond(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "keep_warm", 600))
	e.read("token", nil)
	read := e.clock.Now()
	e.clock.Advance(599 * time.Second)
	if kw := keepWarmOf(e); kw["kept_warm"] != true || kw["until"] != rfc3339(read.Add(600*time.Second)) {
		t.Fatalf("599 s after the read, keep_warm 600: %v", kw)
	}
	e.clock.Advance(time.Second)
	if kw := keepWarmOf(e); kw["kept_warm"] != false {
		t.Fatalf("600 s after the read, keep_warm 600: %v", kw)
	}
}
