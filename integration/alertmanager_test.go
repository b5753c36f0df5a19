//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The alert a credentials hold raises reaches a person: a real Prometheus scrapes a real
// Vault's mount and evaluates the shipped rules (1 s intervals), a real Alertmanager (Debian's
// prometheus-alertmanager; ALERTMANAGER_BIN to use another) routes it as docs/monitoring.md's
// route does, and its webhook delivers it, with the mount label and the runbook link, to a
// receiver on loopback. After rotate with good credentials ends the hold, the resolved
// notification arrives (send_resolved).
func TestAlertmanagerDeliversTheCredentialsHold(t *testing.T) {
	t.Parallel()
	promBin := debianBinary(t, "PROMETHEUS_BIN", "prometheus")
	amBin := debianBinary(t, "ALERTMANAGER_BIN", "prometheus-alertmanager")
	const alert = "SessiontokenCredentialsHeld"
	runbook := runbookURL(t, alert)

	sim := startSim(t, 15*time.Minute)
	const mount = "alerts/plextrac"
	const user = "svc-nomfa@acme.com" // no MFA: no wait for a TOTP step
	enable(t, mount, "provider=plextrac", "url="+sim.url, "allow_insecure_http=true", "username="+user,
		"password=plextrac-demo-pass", "max_refused_logins=1")
	readJSON(t, mount+"/token")

	oncall, other := newWebhook(t), newWebhook(t)
	dir := t.TempDir()
	amAddr := startAlertmanager(t, amBin, dir, oncall.url, other.url)
	_, tokenFile := metricsToken(t, dir, mount)
	promAddr, promLog := startPrometheus(t, promBin, dir, prometheusConfig(t, tokenFile, mount,
		fmt.Sprintf("alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [%q]\n", amAddr)))
	if !waitFor(time.Minute, func() bool {
		held, scraped := promQuery(t, promAddr, `sessiontoken_credentials_held`)[mount]
		return scraped && held == 0 && rulesHealthy(t, promAddr)
	}) {
		t.Fatalf("Prometheus does not scrape %s and evaluate the rules:\n%s", mount, promLog())
	}

	// Upstream no longer takes the stored password: one refused login holds the mount.
	sim.admin(t, http.MethodPost, "/_sim/users/plextrac", map[string]any{"name": user, "password": "changed-by-an-admin", "tenant_id": 7}, nil)
	if _, errOut, err := vault.cli("write", "-f", mount+"/rotate"); err == nil {
		t.Fatalf("rotate with refused credentials succeeded: %s", errOut)
	}
	if h := readJSON(t, mount+"/status").Data["health"]; h != "held" {
		t.Fatalf("health %v after a refused login with max_refused_logins=1", h)
	}
	heldAt := time.Now()
	firing := oncall.await(t, time.Minute, alert, "firing", promLog)
	t.Logf("firing notification %.1f s after the hold", time.Since(heldAt).Seconds())
	if firing.Labels["mount"] != mount || firing.Labels["severity"] != "critical" {
		t.Errorf("notification labels %v: want mount=%s, severity=critical", firing.Labels, mount)
	}
	if firing.Annotations["runbook_url"] != runbook {
		t.Errorf("runbook_url %q, want %q", firing.Annotations["runbook_url"], runbook)
	}
	if !strings.Contains(firing.Annotations["summary"], mount) {
		t.Errorf("summary %q does not name the mount", firing.Annotations["summary"])
	}

	// The account is fixed upstream; rotate logs in with the stored credentials and ends the hold.
	// A rotate right after a failed one is spaced out (429 with the time to retry, sending
	// nothing), as an operator's retry loop would be: retry until the spacing is over.
	sim.admin(t, http.MethodPost, "/_sim/users/plextrac", map[string]any{"name": user, "password": "plextrac-demo-pass", "tenant_id": 7}, nil)
	var rotateErr string
	if !waitFor(time.Minute, func() bool {
		_, errOut, err := vault.cli("write", "-f", mount+"/rotate")
		if err != nil && !strings.Contains(errOut, "Code: 429") {
			t.Fatalf("rotate after the account was fixed: %v %s", err, errOut)
		}
		if rotateErr = errOut; err != nil {
			time.Sleep(time.Second) // each try is one CLI process; the spacing is seconds long
		}
		return err == nil
	}) {
		t.Fatalf("rotate still spaced out a minute after the failed one: %s", rotateErr)
	}
	rotatedAt := time.Now()
	resolved := oncall.await(t, time.Minute, alert, "resolved", promLog)
	t.Logf("resolved notification %.1f s after rotate", time.Since(rotatedAt).Seconds())
	if resolved.Labels["mount"] != mount || resolved.Annotations["runbook_url"] != runbook {
		t.Errorf("resolved notification: labels %v, annotations %v", resolved.Labels, resolved.Annotations)
	}
	if n := other.count(alert); n != 0 {
		t.Errorf("the critical alert also went to the default receiver (%d notifications): the route's matchers do not hold", n)
	}
	for _, body := range append(oncall.bodies(), other.bodies()...) {
		for _, s := range knownSecrets() {
			if strings.Contains(body, s) {
				t.Fatalf("a notification carries a secret (%.8s…)", s)
			}
		}
	}
}

// runbookURL is the runbook_url the shipped rules should give alert: docs/monitoring.md on the
// repository's main branch, at the anchor of alert's runbook row, which must exist.
func runbookURL(t *testing.T, alert string) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/monitoring.md")
	if err != nil {
		t.Fatal(err)
	}
	anchor := strings.ToLower(alert)
	if !strings.Contains(string(doc), `<a id="`+anchor+`"></a>`) {
		t.Fatalf("docs/monitoring.md has no runbook row for %s", alert)
	}
	return "https://github.com/sessiontoken/vault-plugin-secrets-sessiontoken/blob/main/docs/monitoring.md#" + anchor
}

// startAlertmanager runs Alertmanager on a free loopback port, with storage of its own and no
// cluster listener, routing as docs/monitoring.md's route does, with short group timings:
// critical sessiontoken alerts to the on-call webhook, the rest to the other one.
func startAlertmanager(t *testing.T, amBin, dir, oncallURL, otherURL string) string {
	t.Helper()
	cfg := filepath.Join(dir, "alertmanager.yml")
	writeFile(t, cfg, fmt.Sprintf(`route:
  receiver: team-chat
  group_by: [alertname, mount]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1m
  routes:
    - matchers: ['alertname=~"Sessiontoken.+"', 'severity="critical"']
      receiver: on-call
receivers:
  - name: on-call
    webhook_configs:
      - url: %q
        send_resolved: true
  - name: team-chat
    webhook_configs:
      - url: %q
        send_resolved: true
`, oncallURL, otherURL))
	addr := freeAddr()
	log := startDaemon(t, dir, "alertmanager", exec.Command(amBin, "--config.file="+cfg,
		"--storage.path="+filepath.Join(dir, "alertmanager-data"), "--web.listen-address="+addr,
		"--cluster.listen-address=", "--log.level=warn"))
	if !waitFor(20*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("alertmanager is not ready:\n%s", log())
	}
	return addr
}

// webhook is a loopback receiver of Alertmanager's webhook notifications.
type webhook struct {
	url string
	mu  sync.Mutex
	got []notification
	raw []string
}

// notification is Alertmanager's webhook payload (version 4), the fields the test reads.
type notification struct {
	Status string
	Alerts []notifiedAlert
}

type notifiedAlert struct {
	Status      string
	Labels      map[string]string
	Annotations map[string]string
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var n notification
		if err == nil {
			err = json.Unmarshal(b, &n)
		}
		if err != nil {
			http.Error(rw, "not a webhook notification", http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.got, w.raw = append(w.got, n), append(w.raw, string(b))
		w.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	w.url = srv.URL + "/alerts"
	return w
}

// find returns the first alert named alert delivered in a notification with that status.
func (w *webhook) find(alert, status string) (notifiedAlert, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.got {
		for _, a := range n.Alerts {
			if n.Status == status && a.Status == status && a.Labels["alertname"] == alert {
				return a, true
			}
		}
	}
	return notifiedAlert{}, false
}

// await waits, up to timeout, for alert to arrive with status.
func (w *webhook) await(t *testing.T, timeout time.Duration, alert, status string, promLog func() string) notifiedAlert {
	t.Helper()
	var a notifiedAlert
	found := func() bool {
		var ok bool
		a, ok = w.find(alert, status)
		return ok
	}
	if !waitFor(timeout, found) {
		w.mu.Lock()
		defer w.mu.Unlock()
		t.Fatalf("no %s notification of %s within %s; received:\n%s\nPrometheus log:\n%s", status, alert, timeout, strings.Join(w.raw, "\n"), promLog())
	}
	return a
}

func (w *webhook) count(alert string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, g := range w.got {
		for _, a := range g.Alerts {
			if a.Labels["alertname"] == alert {
				n++
			}
		}
	}
	return n
}

func (w *webhook) bodies() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.raw...)
}
