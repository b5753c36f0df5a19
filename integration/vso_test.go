//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Clients that follow the Vault Secrets Operator's algorithms, written from VSO's source
// (hashicorp/vault-secrets-operator, controllers/vaultdynamicsecret_controller.go and
// controllers/common.go), not copied from it:
//
// VaultDynamicSecret, leased (Reconcile, renewLease, computePostSyncHorizon):
//   - sync: read the path; keep lease_id, lease_duration D and renewable; requeue after
//     computeDynamicHorizonWithJitter(D, renewalPercent=67): 67 % of D plus 10 % of D minus a
//     random jitter below 10 % of D, so 67–77 % of D. Data is taken from reads only.
//   - at the horizon, if the held lease is renewable: PUT sys/leases/renew with lease_id and
//     increment=D. Renewal data is ignored. If the renewed lease_duration < D
//     (LeaseTruncatedError) or the renewal fails: sync again at once. If it is not renewable
//     (and not shorter): return without requeueing; the resource sits idle with what it holds
//     until a resync hours later. Otherwise keep the renewed lease and requeue after the
//     horizon of its duration.
//   - a failed sync requeues with an exponential backoff (5 s initial, 60 s max).
//
// VaultDynamicSecret with allowStaticCreds (syncSecret, awaitVaultSecretRotation,
// vaultStaticCredsMetaDataFromData, isStaticCreds, computePostSyncHorizon):
//   - read the path; no renewable lease, so it parses last_vault_rotation (RFC 3339, kept as
//     Unix seconds), rotation_period and ttl (json.Number or int; anything else is an error).
//   - isStaticCreds: last_vault_rotation > 0 and rotation_period >= 1. Without it the horizon
//     is 0 and the resource is never requeued (idle).
//   - if last_vault_rotation equals the one from the last sync: re-read with an exponential
//     backoff (0.5 s initial, 2 s max interval, 10 s max elapsed) while it stays the same and
//     ttl <= 2; a same-rotation answer with ttl > 2 is accepted as is.
//   - requeue after ttl + 0.5 s + a jitter below 5 % of 3 s.

const vsoRenewalPercent = 67

// vsoDynamicHorizon is computeDynamicHorizonWithJitter(d, 67).
func vsoDynamicHorizon(d time.Duration) time.Duration {
	maxJitter := d / 10
	var j time.Duration
	if maxJitter > 0 {
		j = rand.N(maxJitter)
	}
	return d*vsoRenewalPercent/100 + maxJitter - j
}

// vsoSyncBackoff is the BackOffRegistry's default exponential backoff (cenkalti/backoff v4
// with 5 s initial and 60 s max interval, multiplier 1.5, randomization 0.5) at attempt n.
func vsoSyncBackoff(n int) time.Duration {
	d := 5 * time.Second
	for range n {
		d = min(d*3/2, 60*time.Second)
	}
	return d/2 + rand.N(d)
}

// vsoClient is one VaultDynamicSecret: what its Kubernetes Secret holds, and counters.
type vsoClient struct {
	mu                                  sync.Mutex
	token                               string // the synced Secret's token
	syncs, renewals, truncated, renewOK int
	syncErrs, renewErrs                 int
	idle                                string // why it stopped requeueing; "" while it still does
	tokensSeen                          map[string]bool
	errs                                []string
}

func (v *vsoClient) hold(tok string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.token = tok
	v.tokensSeen[tok] = true
}

func (v *vsoClient) note(f func(*vsoClient)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f(v)
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runDynamic is the leased VaultDynamicSecret reconcile loop until ctx ends.
func (v *vsoClient) runDynamic(ctx context.Context, c *api.Client, path string) {
	var leaseID string
	var leaseDur int
	var renewable bool
	doSync, failures := true, 0
	next := time.Duration(0)
	for sleepCtx(ctx, next) {
		if !doSync && renewable && leaseID != "" {
			v.note(func(v *vsoClient) { v.renewals++ })
			resp, err := c.Logical().WriteWithContext(ctx, "sys/leases/renew", map[string]any{"lease_id": leaseID, "increment": leaseDur})
			switch {
			case ctx.Err() != nil:
				return
			case err != nil || resp == nil:
				v.note(func(v *vsoClient) { v.renewErrs++; v.errs = append(v.errs, fmt.Sprintf("renew: %v", err)) })
			case resp.LeaseDuration < leaseDur:
				v.note(func(v *vsoClient) { v.truncated++ })
			case !resp.Renewable:
				v.note(func(v *vsoClient) {
					v.idle = fmt.Sprintf("renewal came back non-renewable and not shorter (%ds for increment %ds) at %s", resp.LeaseDuration, leaseDur, time.Now().Format(time.TimeOnly))
				})
				return
			default:
				v.note(func(v *vsoClient) { v.renewOK++ })
				leaseDur = resp.LeaseDuration
				d := time.Duration(leaseDur) * time.Second
				if d < time.Second {
					d = 5 * time.Second
				}
				next = vsoDynamicHorizon(d)
				continue
			}
		}
		// Sync: read the path.
		s, err := c.Logical().ReadWithContext(ctx, path)
		if ctx.Err() != nil {
			return
		}
		var tok string
		if s != nil {
			tok, _ = s.Data["token"].(string)
		}
		if err != nil || tok == "" {
			v.note(func(v *vsoClient) { v.syncErrs++; v.errs = append(v.errs, fmt.Sprintf("sync: %v", err)) })
			doSync, next = true, vsoSyncBackoff(failures)
			failures++
			continue
		}
		failures = 0
		v.note(func(v *vsoClient) { v.syncs++ })
		v.hold(tok)
		leaseID, leaseDur, renewable, doSync = s.LeaseID, s.LeaseDuration, s.Renewable, false
		if next = vsoDynamicHorizon(time.Duration(leaseDur) * time.Second); next == 0 {
			v.note(func(v *vsoClient) { v.idle = "sync horizon 0 (no lease duration)" })
			return
		}
	}
}

// vsoStaticMeta is VaultStaticCredsMetaData as VSO parses it.
type vsoStaticMeta struct {
	lastVaultRotation, rotationPeriod, ttl int64
}

func (m vsoStaticMeta) isStaticCreds() bool { return m.lastVaultRotation > 0 && m.rotationPeriod >= 1 }

func vsoParseStaticMeta(data map[string]any) (vsoStaticMeta, error) {
	var m vsoStaticMeta
	if v, ok := data["last_vault_rotation"]; ok && v != nil {
		s, _ := v.(string)
		ts, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return m, fmt.Errorf("invalid last_vault_rotation %w", err)
		}
		m.lastVaultRotation = ts.Unix()
	}
	num := func(k string) (int64, error) {
		v, ok := data[k]
		if !ok || v == nil {
			return 0, nil
		}
		switch t := v.(type) {
		case json.Number:
			return t.Int64()
		case int:
			return int64(t), nil
		}
		return 0, errors.New("invalid " + k)
	}
	var err error
	if m.rotationPeriod, err = num("rotation_period"); err != nil {
		return m, err
	}
	m.ttl, err = num("ttl")
	return m, err
}

// runStatic is the allowStaticCreds VaultDynamicSecret reconcile loop until ctx ends.
func (v *vsoClient) runStatic(ctx context.Context, c *api.Client, path string) {
	var last vsoStaticMeta
	failures := 0
	next := time.Duration(0)
	read := func() (*api.Secret, vsoStaticMeta, error) {
		s, err := c.Logical().ReadWithContext(ctx, path)
		if err != nil {
			return nil, vsoStaticMeta{}, err
		}
		if s == nil {
			return nil, vsoStaticMeta{}, errors.New("nil response")
		}
		m, err := vsoParseStaticMeta(s.Data)
		return s, m, err
	}
	for sleepCtx(ctx, next) {
		s, m, err := read()
		if err == nil && s.Renewable {
			err = errors.New("a renewable lease: not static creds")
		}
		if err == nil && m.isStaticCreds() && m.lastVaultRotation == last.lastVaultRotation {
			// awaitVaultSecretRotation: the same rotation as the last sync.
			wait, deadline := 500*time.Millisecond, time.Now().Add(10*time.Second)
			for err == nil && m.lastVaultRotation == last.lastVaultRotation && m.ttl <= 2 {
				if time.Now().Add(wait).After(deadline) {
					err = errors.New("near rotation, ttl<=2: backoff exhausted")
					break
				}
				if !sleepCtx(ctx, wait/2+rand.N(wait)) {
					return
				}
				wait = min(wait*3/2, 2*time.Second)
				s, m, err = read()
			}
		}
		if ctx.Err() != nil {
			return
		}
		tok := ""
		if err == nil {
			tok, _ = s.Data["token"].(string)
			if tok == "" {
				err = errors.New("no token in the answer")
			}
		}
		if err != nil {
			v.note(func(v *vsoClient) { v.syncErrs++; v.errs = append(v.errs, fmt.Sprintf("sync: %v", err)) })
			next = vsoSyncBackoff(failures)
			failures++
			continue
		}
		failures = 0
		v.note(func(v *vsoClient) { v.syncs++ })
		v.hold(tok)
		if !m.isStaticCreds() {
			v.note(func(v *vsoClient) {
				v.idle = fmt.Sprintf("not static creds (last_vault_rotation %d, rotation_period %d): horizon 0", m.lastVaultRotation, m.rotationPeriod)
			})
			return
		}
		last = m
		next = time.Second
		if m.ttl > 0 {
			next = time.Duration(m.ttl)*time.Second + 500*time.Millisecond
		}
		next += rand.N(3 * time.Second / 20)
	}
}

type vsoRun struct {
	clients           []*vsoClient
	samples, expired  int
	expiredBy         map[int]int
	elapsed           time.Duration
	authCalls         float64
	authWhat          [2]string // the upstream's breakdown before and after
	leasesUnderMount0 int
	leasesUnderMount  int
}

// runVSOClients starts n clients on path, staggered evenly over stagger, samples every
// client's held token once a second against the simulator until d has passed, and stops them.
func runVSOClients(t *testing.T, sim *simulator, mount, path string, static bool, n int, stagger, d time.Duration) vsoRun {
	t.Helper()
	c := apiClient(t, n)
	c.SetClientTimeout(20 * time.Second)
	r := vsoRun{expiredBy: map[int]int{}, leasesUnderMount0: countLeases(t, mount+"/")}
	auth0, what0 := authStats(t, sim)
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(d))
	defer cancel()
	var wg sync.WaitGroup
	for i := range n {
		v := &vsoClient{tokensSeen: map[string]bool{}}
		r.clients = append(r.clients, v)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleepCtx(ctx, stagger*time.Duration(i)/time.Duration(n)) {
				return
			}
			if static {
				v.runStatic(ctx, c, path)
			} else {
				v.runDynamic(ctx, c, path)
			}
		}()
	}
	for sleepCtx(ctx, time.Second) {
		valid := map[string]bool{}
		for i, v := range r.clients {
			v.mu.Lock()
			tok := v.token
			v.mu.Unlock()
			if tok == "" {
				continue // not started yet
			}
			ok, seen := valid[tok]
			if !seen {
				rememberSecret(tok)
				ok = sim.valid(t, "plextrac", tok)
				valid[tok] = ok
			}
			r.samples++
			if !ok {
				r.expired++
				r.expiredBy[i]++
			}
		}
	}
	cancel()
	wg.Wait()
	r.elapsed = time.Since(start)
	auth, what := authStats(t, sim)
	r.authCalls, r.authWhat = auth-auth0, [2]string{what0, what}
	r.leasesUnderMount = countLeases(t, mount+"/")
	return r
}

// report logs one line per client and the totals, and asserts what every VSO run must show.
func (r vsoRun) check(t *testing.T, life time.Duration) {
	t.Helper()
	idle := 0
	var lines []string
	for i, v := range r.clients {
		v.mu.Lock()
		line := fmt.Sprintf("client %2d: syncs %d, renewals %d (truncated %d, renewed %d), sync errors %d, renew errors %d, tokens %d, expired samples %d",
			i, v.syncs, v.renewals, v.truncated, v.renewOK, v.syncErrs, v.renewErrs, len(v.tokensSeen), r.expiredBy[i])
		if v.idle != "" {
			idle++
			line += "; IDLE: " + v.idle
		}
		if len(v.errs) > 0 {
			line += "; errors: " + strings.Join(v.errs[:min(3, len(v.errs))], " | ")
		}
		errs := v.syncErrs + v.renewErrs
		v.mu.Unlock()
		lines = append(lines, line)
		if errs > 0 {
			t.Errorf("client %d: %d failed requests", i, errs)
		}
	}
	sort.Strings(lines)
	t.Logf("%d clients, %s tokens, %s:\n%s", len(r.clients), life, r.elapsed.Round(time.Second), strings.Join(lines, "\n"))
	t.Logf("idle clients %d of %d; expired samples %d of %d; upstream auth calls %v in %s (%.2f per lifetime; before: %s; after: %s); leases under the mount before %d, after %d",
		idle, len(r.clients), r.expired, r.samples, r.authCalls, r.elapsed.Round(time.Second), r.authCalls/(float64(r.elapsed)/float64(life)), r.authWhat[0], r.authWhat[1], r.leasesUnderMount0, r.leasesUnderMount)
	if idle > 0 {
		t.Errorf("%d of %d VSO clients went idle", idle, len(r.clients))
	}
	if r.expired > 0 {
		t.Errorf("%d of %d samples held a token the upstream rejects", r.expired, r.samples)
	}
	if r.samples < len(r.clients)*int(r.elapsed/time.Second)/2 {
		t.Errorf("only %d samples", r.samples)
	}
	if max := authBound(r.elapsed, life); r.authCalls > max {
		t.Errorf("%v upstream auth calls in %s with %s tokens; want at most %v (one per half lifetime, whatever the number of clients)", r.authCalls, r.elapsed.Round(time.Second), life, max)
	}
}

// Issue 11: clients following VSO's VaultDynamicSecret algorithm on the leased token path,
// started at staggered times over the first token lifetime and run for four: none goes idle,
// none ever holds an expired token, and the upstream sees no more auth calls than one shared
// session needs (authBound), whatever the number of clients.
func TestVSODynamicSecretClientsFollowTheToken(t *testing.T) {
	t.Parallel()
	const life, clients = 60 * time.Second, 12
	sim := startSim(t, life)
	enable(t, "vsodyn", plextracConfig(sim)...)
	r := runVSOClients(t, sim, "vsodyn", "vsodyn/token", false, clients, life, 4*life)
	r.check(t, life)
	truncated := 0
	for _, v := range r.clients {
		truncated += v.truncated
	}
	if truncated == 0 {
		t.Error("no renewal came back shorter than its increment: the clients never re-read after a renewal")
	}
}

// Issue 11: clients following VSO's allowStaticCreds algorithm on the lease-free static-token
// path: none goes idle (each finds last_vault_rotation, rotation_period >= 1 and ttl), none
// holds an expired token, each moves to every new token, and no lease is created.
func TestVSOStaticCredsClientsFollowTheLeaseFreeToken(t *testing.T) {
	t.Parallel()
	const life, clients = 45 * time.Second, 8
	sim := startSim(t, life)
	enable(t, "vsostatic", plextracConfig(sim)...)
	r := runVSOClients(t, sim, "vsostatic", "vsostatic/static-token", true, clients, life, 4*life)
	r.check(t, life)
	if r.leasesUnderMount0 != 0 || r.leasesUnderMount != 0 {
		t.Errorf("static-token reads created leases: %d before, %d after", r.leasesUnderMount0, r.leasesUnderMount)
	}
	for i, v := range r.clients {
		// Client i ran for at least 3 lifetimes: it must have held at least 3 tokens.
		if len(v.tokensSeen) < 3 {
			t.Errorf("client %d held %d tokens in three or more lifetimes; want at least 3", i, len(v.tokensSeen))
		}
	}
}
