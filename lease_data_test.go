package sessiontoken

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// An upstream answer past the bounds on extras and token size is a bad response, and a
// lease's internal data has a fixed shape: unbounded, they were copied into every lease (one
// read made 900 KiB of response data and as much lease data, past raft's 1 MiB entry).
func TestOversizedUpstreamAnswersAreRefused(t *testing.T) {
	huge := strings.Repeat("x", upstream.MaxTokenLen+1)
	cases := map[string]any{
		"token":        map[string]any{"token": huge},
		"tenant_id":    map[string]any{"token": "opaque-ok", "tenant_id": strings.Repeat("7", upstream.MaxExtraValueLen+1)},
		"nested extra": map[string]any{"token": "opaque-ok", "tenant_id": map[string]any{"a": strings.Repeat("b", 1000)}},
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnvWrapped(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/api/v1/authenticate" {
						next.ServeHTTP(w, r)
						return
					}
					w.Header().Set("Content-Type", "application/json")
					_ = json.NewEncoder(w).Encode(body)
				})
			})
			resp, err := e.do(logical.UpdateOperation, "config", e.plextracConfig(false))
			if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "cannot be kept") {
				t.Fatalf("an oversized answer was accepted: %v %s", err, errText(resp))
			}
		})
	}
}

func TestLeaseInternalDataHoldsOnlyWhatRenewalNeeds(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	lease := e.read("token", nil)
	b, _ := json.Marshal(lease.Secret.InternalData)
	if len(b) > 400 {
		t.Errorf("lease internal data is %d bytes: %s", len(b), b)
	}
	if strings.Contains(string(b), lease.Data["token"].(string)) {
		t.Error("lease internal data holds the token itself")
	}
	// Renewal gets the token back from the lease's stored response data.
	lease.Secret.IssueTime = e.clock.Now()
	e.clock.Advance(time.Minute)
	if r := renew(t, e, lease.Secret); r.Data["token"] != lease.Data["token"] {
		t.Fatal("renewal did not return the lease's token")
	}
}

// A stored session is checked like a login's answer: one that says it expires in five years
// is not served (unchecked, it got a five-year lease).
func TestImplausibleStoredSessionIsNotServed(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	first := e.read("token", nil).Data["token"].(string)
	e.rewriteStoredSession(func(r *sessionRecord) { r.ExpiresAt = e.clock.Now().Add(5 * 365 * 24 * time.Hour) })
	resp := e.read("token", nil)
	if resp.Data["token"] == first || resp.Secret.TTL > 16*time.Minute {
		t.Fatalf("served the implausible stored session: ttl %s", resp.Secret.TTL)
	}
	if !strings.Contains(e.logs.String(), "not plausible") {
		t.Error("the log does not say why the stored session was not used")
	}
}
