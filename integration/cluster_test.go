//go:build integration

package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// on runs the CLI against another server than the shared dev one.
func on(t *testing.T, v *vaultServer, args ...string) string {
	t.Helper()
	out, errOut, err := v.cli(args...)
	if err != nil {
		t.Fatalf("vault %s (on %s): %v\n%s%s", strings.Join(args, " "), v.addr, err, out, errOut)
	}
	return out
}

func readOn(t *testing.T, v *vaultServer, path string) secretJSON {
	t.Helper()
	var s secretJSON
	if err := json.Unmarshal([]byte(on(t, v, "read", "-format=json", path)), &s); err != nil {
		t.Fatal(err)
	}
	if tok, ok := s.Data["token"].(string); ok {
		rememberSecret(tok)
	}
	return s
}

func pluginSHA(t *testing.T) string {
	b, err := os.ReadFile(pluginBin)
	if err != nil {
		t.Fatal(err)
	}
	return sha256sum(b)
}

func sha256sum(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func setupMount(t *testing.T, v *vaultServer, sim *simulator) {
	t.Helper()
	on(t, v, "plugin", "register", "-sha256="+pluginSHA(t), "-command=vault-plugin-secrets-sessiontoken",
		"-version="+pluginVersion, "secret", "sessiontoken")
	on(t, v, "secrets", "enable", "-path=plextrac", "sessiontoken")
	on(t, v, append([]string{"write", "plextrac/config"}, plextracConfig(sim)...)...)
}

// A restart of Vault (file storage) serves the stored session without a new upstream login,
// and leases issued before the restart still renew and revoke.
func TestRestartKeepsSessionAndLeases(t *testing.T) {
	t.Parallel()
	sim := startSim(t, 15*time.Minute)
	dir := t.TempDir()
	addr := freeAddr()
	hcl := fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address = %q
  tls_disable = true
}
api_addr = "http://%s"
plugin_directory = %q
disable_mlock = true
`, filepath.Join(dir, "data"), addr, addr, filepath.Join(dir, "plugins"))
	v, err := startServer(dir, addr, hcl)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { v.stop() }()
	key, err := v.initVault()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.unseal(key); err != nil {
		t.Fatal(err)
	}
	if _, err := v.installPlugin(); err != nil {
		t.Fatal(err)
	}
	setupMount(t, v, sim)
	before := readOn(t, v, "plextrac/token")
	logins := sim.stats(t, "plextrac")["mfa"]

	v.stop()
	token := v.token
	if v, err = startServer(dir, addr, hcl); err != nil {
		t.Fatal(err)
	}
	v.token = token
	if err := v.unseal(key); err != nil {
		t.Fatal(err)
	}
	var after secretJSON
	if !waitFor(30*time.Second, func() bool {
		out, _, err := v.cli("read", "-format=json", "plextrac/token")
		return err == nil && json.Unmarshal([]byte(out), &after) == nil
	}) {
		t.Fatalf("no token after restart; log: %s", v.logPath)
	}
	if after.Data["token"] != before.Data["token"] {
		t.Error("the restart lost the stored session")
	}
	st := sim.stats(t, "plextrac")
	if st["mfa"] != logins || st["refreshes"] != 0 {
		t.Errorf("restart cost upstream calls: %v MFA logins (before %v), %v refreshes", st["mfa"], logins, st["refreshes"])
	}
	var r renewJSON
	if err := json.Unmarshal([]byte(on(t, v, "lease", "renew", "-format=json", before.LeaseID)), &r); err != nil || r.Data["token"] != before.Data["token"] {
		t.Fatalf("a pre-restart lease did not renew: %v %+v", err, r)
	}
	on(t, v, "lease", "revoke", before.LeaseID)
	t.Logf("restart: extra upstream logins %v, refreshes %v", st["mfa"]-logins, st["refreshes"])
}

// A 3-node raft cluster: reads through a standby (forwarded) and the active node; the active
// node stops; once a new leader is elected, reads succeed and existing leases renew, with no
// upstream login beyond the first.
func TestRaftFailoverKeepsServing(t *testing.T) {
	t.Parallel()
	sim := startSim(t, 15*time.Minute)
	root := t.TempDir()
	type node struct {
		dir, addr, cluster, hcl string
		v                       *vaultServer
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		n := &node{dir: filepath.Join(root, fmt.Sprintf("node%d", i+1)), addr: freeAddr(), cluster: freeAddr()}
		if err := os.MkdirAll(filepath.Join(n.dir, "raft"), 0o755); err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
	}
	for i, n := range nodes {
		join := ""
		for j, o := range nodes {
			if j != i {
				join += fmt.Sprintf("  retry_join { leader_api_addr = \"http://%s\" }\n", o.addr)
			}
		}
		n.hcl = fmt.Sprintf(`storage "raft" {
  path = %q
  node_id = "node%d"
%s}
listener "tcp" {
  address = %q
  cluster_address = %q
  tls_disable = true
}
api_addr = "http://%s"
cluster_addr = "https://%s"
plugin_directory = %q
disable_mlock = true
`, filepath.Join(n.dir, "raft"), i+1, join, n.addr, n.cluster, n.addr, n.cluster, filepath.Join(n.dir, "plugins"))
		v, err := startServer(n.dir, n.addr, n.hcl)
		if err != nil {
			t.Fatal(err)
		}
		n.v = v
		defer func() { n.v.stop() }()
		if _, err := v.installPlugin(); err != nil {
			t.Fatal(err)
		}
	}
	key, err := nodes[0].v.initVault()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		n.v.token = nodes[0].v.token
	}
	if err := nodes[0].v.unseal(key); err != nil {
		t.Fatal(err)
	}
	if !waitFor(60*time.Second, func() bool { return isActive(nodes[0].v) }) {
		t.Fatal("node1 did not become active")
	}
	for _, n := range nodes[1:] {
		// A follower joins through retry_join, then needs the unseal key.
		if !waitFor(60*time.Second, func() bool { return n.v.unseal(key) == nil && !sealed(n.v) }) {
			t.Fatalf("%s did not join and unseal; log: %s", n.addr, n.v.logPath)
		}
	}
	if !waitFor(90*time.Second, func() bool { return voters(nodes[0].v) == 3 }) {
		t.Fatalf("the cluster never had 3 voters: %s", on(t, nodes[0].v, "operator", "raft", "list-peers"))
	}
	setupMount(t, nodes[0].v, sim)
	viaActive := readOn(t, nodes[0].v, "plextrac/token")
	viaStandby := readOn(t, nodes[1].v, "plextrac/token") // forwarded to the active node
	if viaStandby.Data["token"] != viaActive.Data["token"] {
		t.Fatal("a standby read returned another session")
	}

	nodes[0].v.stop() // the active node goes away
	var leader *vaultServer
	if !waitFor(60*time.Second, func() bool {
		for _, n := range nodes[1:] {
			if isActive(n.v) {
				leader = n.v
				return true
			}
		}
		return false
	}) {
		t.Fatal("no new leader")
	}
	var after secretJSON
	if !waitFor(30*time.Second, func() bool {
		out, _, err := leader.cli("read", "-format=json", "plextrac/token")
		return err == nil && json.Unmarshal([]byte(out), &after) == nil
	}) {
		t.Fatal("no token read after failover")
	}
	if after.Data["token"] != viaActive.Data["token"] {
		t.Error("failover lost the stored session")
	}
	var r renewJSON
	if err := json.Unmarshal([]byte(on(t, leader, "lease", "renew", "-format=json", viaStandby.LeaseID)), &r); err != nil || r.Data["token"] == nil {
		t.Fatalf("a lease from before the failover did not renew: %v", err)
	}
	st := sim.stats(t, "plextrac")
	if st["mfa"] != 1 || st["refreshes"] != 0 {
		t.Errorf("failover cost upstream calls: %v MFA logins (want 1, the config check), %v refreshes", st["mfa"], st["refreshes"])
	}
	t.Logf("failover: extra upstream logins %v, refreshes %v", st["mfa"]-1, st["refreshes"])

	// A failover figure, not a pin of the rule that periodic refresh runs only where storage is
	// writable: open-source standbys never run mounts, so no count here could tell a plugin
	// without that rule apart (unit tests pin it with a system view that is not write-safe).
	// What it does show: the new active node keeps the session fresh in the background, by a
	// refresh call, not a login. Periodic refresh never touches a token in the first half of its
	// life and looks ahead min_ttl+75 s at most, so with 180 s tokens and min_ttl 10s a token is
	// due from 95 s of age until it expires: 85 s, more than one periodic interval (about a
	// minute), so one run falls inside. (With 90 s tokens the window is 45 s and a run can miss
	// it: the session lapses and the next run logs in again.)
	const life = 180 * time.Second
	sim.admin(t, "POST", "/_sim/lifetime", map[string]any{"seconds": int(life / time.Second)}, nil)
	on(t, leader, "write", "plextrac/config", "min_ttl=10") // the check's login: a new 180 s session
	base := sim.stats(t, "plextrac")
	start := time.Now()
	var st2 map[string]float64
	refreshed := waitFor(life+30*time.Second, func() bool {
		time.Sleep(900 * time.Millisecond) // poll about once a second
		st2 = sim.stats(t, "plextrac")
		return st2["refreshes"] > base["refreshes"]
	})
	took := time.Since(start).Round(time.Second)
	calls, refreshes := st2["auth_calls"]-base["auth_calls"], st2["refreshes"]-base["refreshes"]
	if !refreshed || calls != refreshes {
		t.Errorf("after failover, in %s with %s tokens: %v auth calls, %v of them refreshes (logins %v, MFA %v); want one periodic refresh and nothing else",
			took, life, calls, refreshes, st2["logins"]-base["logins"], st2["mfa"]-base["mfa"])
	}
	t.Logf("after failover the new active node refreshed the %s session in the background %s after it began; %v upstream auth calls, all refreshes", life, took, calls)
}

func isActive(v *vaultServer) bool {
	out, _, _ := v.cli("status", "-format=json")
	var s struct {
		Sealed bool `json:"sealed"`
		IsSelf bool `json:"is_self"` // this node is the leader
	}
	_ = json.Unmarshal([]byte(out), &s)
	return !s.Sealed && s.IsSelf
}

func sealed(v *vaultServer) bool {
	out, _, _ := v.cli("status", "-format=json")
	var s struct{ Sealed bool }
	return json.Unmarshal([]byte(out), &s) != nil || s.Sealed
}

func voters(v *vaultServer) int {
	out, _, err := v.cli("operator", "raft", "list-peers", "-format=json")
	if err != nil {
		return 0
	}
	var r struct {
		Data struct {
			Config struct {
				Servers []struct{ Voter bool }
			}
		}
	}
	_ = json.Unmarshal([]byte(out), &r)
	n := 0
	for _, s := range r.Data.Config.Servers {
		if s.Voter {
			n++
		}
	}
	return n
}
