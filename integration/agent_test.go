//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agentSamples is what sampling an Agent-rendered token file once a second found.
type agentSamples struct {
	samples, expired int
	distinct         int
	span             time.Duration // from the first sample to the last
}

// runAgent runs the real Vault Agent with one template rendering secretPath's .Data.token to a
// file, samples the file once a second for d, checks every sample against the simulator, and
// stops the Agent.
func runAgent(t *testing.T, sim *simulator, secretPath string, d time.Duration) agentSamples {
	t.Helper()
	dir := t.TempDir()
	tokenFile, out := filepath.Join(dir, "vault-token"), filepath.Join(dir, "token.txt")
	if err := os.WriteFile(tokenFile, []byte(vault.token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `
vault { address = "http://` + vault.addr + `" }
auto_auth { method "token_file" { config = { token_file_path = "` + tokenFile + `" } } }
template {
  contents    = "{{ with secret \"` + secretPath + `\" }}{{ .Data.token }}{{ end }}"
  destination = "` + out + `"
}
`
	cfgPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := startProcess(t, filepath.Join(dir, "agent.log"), vaultBin, "agent", "-config="+cfgPath)
	defer agent.stop()
	if !waitFor(30*time.Second, func() bool { b, _ := os.ReadFile(out); return len(b) > 0 }) {
		t.Fatalf("agent rendered nothing; log:\n%s", agent.log())
	}

	seen := map[string]bool{}
	var r agentSamples
	var first, last time.Time
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Second) {
		b, err := os.ReadFile(out)
		tok := strings.TrimSpace(string(b))
		if err != nil || tok == "" {
			continue // the agent replaces the file; a sample may fall between
		}
		if r.samples == 0 {
			first = time.Now()
		}
		last = time.Now()
		r.samples++
		seen[tok] = true
		rememberSecret(tok)
		if !sim.valid(t, "plextrac", tok) {
			r.expired++
		}
	}
	r.distinct, r.span = len(seen), last.Sub(first)
	if leaks := scanForSecrets(agent.logPath); len(leaks) > 0 {
		t.Errorf("agent log holds secrets: %v", leaks)
	}
	return r
}

// check asserts what any Agent run must show: enough samples, none expired, and at least
// floor(span/life) distinct tokens (a token serves samples for at most its lifetime, so a file
// that never held an expired token over span held more than span/life tokens).
func (r agentSamples) check(t *testing.T, life, d time.Duration) {
	t.Helper()
	if r.samples < int(d/time.Second)*3/4 {
		t.Errorf("only %d samples in %s", r.samples, d)
	}
	if r.expired > 0 {
		t.Errorf("%d of %d samples held a token the upstream rejects", r.expired, r.samples)
	}
	if r.distinct < int(r.span/life) {
		t.Errorf("over %s the file held %d tokens; want at least %d (one per %s lifetime)", r.span.Round(time.Second), r.distinct, int(r.span/life), life)
	}
}

// Vault Agent renders the leased token to a file. With 45-second tokens, sampled every second
// for more than three lifetimes: the file moves to a new token before the old one expires, and
// no sample ever holds a token the upstream rejects.
func TestAgentNeverRendersAnExpiredToken(t *testing.T) {
	t.Parallel()
	const life = 45 * time.Second
	const d = 3*life + 15*time.Second
	sim := startSim(t, life)
	enable(t, "agent", plextracConfig(sim)...)
	r := runAgent(t, sim, "agent/token", d)
	t.Logf("Agent on token, %s tokens: %d samples over %s, %d distinct tokens (at least %d required), %d expired",
		life, r.samples, r.span.Round(time.Second), r.distinct, int(r.span/life), r.expired)
	r.check(t, life, d)
}

// Vault Agent renders the lease-free static-token for more than four token lifetimes. Agent
// (consul-template v0.41 in Vault 1.21, leaseCheckWait) treats a secret with no lease whose
// data has rotation_period and ttl as rotating and reads it again exactly ttl+1 s after each
// read. Asserted: no sample holds an expired token; every re-read comes ttl+1 s (plus latency)
// after the read before it, so Agent neither polls nor waits past a rotation; no lease is
// created; upstream auth calls stay within what one shared session needs (authBound).
func TestAgentRendersTheLeaseFreeTokenWithoutLeases(t *testing.T) {
	t.Parallel()
	const life = 45 * time.Second
	const d = 4*life + 15*time.Second
	sim := startSim(t, life)
	enable(t, "agentstatic", plextracConfig(sim)...)
	before := countLeases(t, "agentstatic/")
	auth0, what0 := authStats(t, sim)
	start := time.Now()
	r := runAgent(t, sim, "agentstatic/static-token", d)
	elapsed := time.Since(start)
	auth, what := authStats(t, sim)
	auth -= auth0
	after := countLeases(t, "agentstatic/")
	t.Logf("Agent on static-token, %s tokens: %d samples over %s, %d distinct tokens (at least %d required), %d expired; upstream auth calls %v in %s (%.2f per lifetime; before: %s; after: %s); leases under agentstatic/ before %d, after %d",
		life, r.samples, r.span.Round(time.Second), r.distinct, int(r.span/life), r.expired, auth, elapsed.Round(time.Second), auth/(float64(elapsed)/float64(life)), what0, what, before, after)
	r.check(t, life, d)
	if before != 0 || after != 0 {
		t.Errorf("static-token reads created leases: %d before, %d after", before, after)
	}
	if max := authBound(elapsed, life); auth > max {
		t.Errorf("%v upstream auth calls in %s with %s tokens; want at most %v (one per half lifetime)", auth, elapsed.Round(time.Second), life, max)
	}

	// The re-read cadence, from the audit log: each read's ttl, and when the next read came.
	reads := auditedReads(t, "agentstatic/static-token")
	if reads == nil {
		return // no audit device (make bench)
	}
	if len(reads) < int(d/life) {
		t.Errorf("Agent read static-token %d times in %s; want at least %d", len(reads), d, int(d/life))
	}
	var gaps []string
	for i := 1; i < len(reads); i++ {
		want := time.Duration(reads[i-1].ttl+1) * time.Second
		gap := reads[i].at.Sub(reads[i-1].at)
		gaps = append(gaps, gap.Round(100*time.Millisecond).String()+"/"+want.String())
		// Agent sleeps exactly ttl+1 s after the answer arrives: never earlier; later only by
		// the round trip and scheduling on a loaded machine.
		if gap < want-250*time.Millisecond || gap > want+5*time.Second {
			t.Errorf("Agent read static-token again %s after a read that said ttl=%d; want ttl+1 s = %s", gap.Round(100*time.Millisecond), reads[i-1].ttl, want)
		}
	}
	t.Logf("Agent static-token reads: %d; gap/ttl+1 s: %s", len(reads), strings.Join(gaps, " "))
}

// authBound is the most upstream auth calls d may take with one shared session, whatever the
// number of readers: every refresh is of a token at least half its life old (readers refresh
// when min_ttl, here a third of the life, is left; Vault's periodic function never touches a
// token in the first half of its life), so at most one per half lifetime, plus one for the
// edges. Measured with 45–60 s tokens: 1.25–1.4 calls per lifetime.
func authBound(d, life time.Duration) float64 {
	return math.Floor(float64(d)/float64(life/2)) + 1
}

// authStats is the upstream's count of auth calls, with what they were.
func authStats(t *testing.T, sim *simulator) (calls float64, what string) {
	t.Helper()
	st := sim.stats(t, "plextrac")
	return st["auth_calls"], fmt.Sprintf("refreshes %v, logins %v, MFA %v", st["refreshes"], st["logins"], st["mfa"])
}

type auditedRead struct {
	at  time.Time
	ttl int
}

// auditedReads lists the successful reads of path in the audit log, with the ttl each answer
// carried; nil without an audit device.
func auditedReads(t *testing.T, path string) []auditedRead {
	t.Helper()
	if auditLogPath == "" {
		return nil
	}
	f, err := os.Open(auditLogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var reads []auditedRead
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), `"`+path+`"`) {
			continue
		}
		var e struct {
			Time     time.Time `json:"time"`
			Type     string    `json:"type"`
			Request  struct{ Path, Operation string }
			Response *struct {
				Data map[string]any `json:"data"`
			}
			Error string `json:"error"`
		}
		if json.Unmarshal(line, &e) != nil || e.Type != "response" || e.Request.Path != path || e.Request.Operation != "read" || e.Error != "" || e.Response == nil {
			continue
		}
		ttl, ok := e.Response.Data["ttl"].(float64)
		if !ok {
			t.Fatalf("audited answer of %s has no numeric ttl: %v", path, e.Response.Data["ttl"])
		}
		reads = append(reads, auditedRead{at: e.Time, ttl: int(ttl)})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return reads
}
