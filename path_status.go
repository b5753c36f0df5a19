package sessiontoken

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const pathStatusHelpSyn = `Show the upstream session's state, without secrets.`

const pathStatusHelpDesc = `
provider and url; the shared session (state, issued_at, expires_at, how and when it was last
obtained); the last upstream error and when to retry; counts of upstream calls by kind
(login, mfa, refresh) and outcome since the plugin started;
the host's auth budget (the smallest max_auth_per_minute of the mounts on that
host in this plugin process) and the rule that set it; and how many reads had to wait on
the upstream. Never a token or credential.
`

func (b *backend) pathStatus() *framework.Path {
	return &framework.Path{
		Pattern:      "status",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sessiontoken", OperationSuffix: "status"},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.statusRead, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: statusFields}}}},
		},
		HelpSynopsis:    pathStatusHelpSyn,
		HelpDescription: strings.TrimSpace(pathStatusHelpDesc),
	}
}

var statusFields = map[string]*framework.FieldSchema{
	"provider":                 {Type: framework.TypeString, Description: "The upstream provider."},
	"url":                      {Type: framework.TypeString, Description: "The upstream base URL."},
	"session":                  {Type: framework.TypeMap, Description: "The shared session: state (none, valid, expired), issued_at, expires_at, ttl, obtained_by, last_refresh."},
	"upstream_calls":           {Type: framework.TypeMap, Description: "Upstream calls by kind (login, mfa, refresh, logout) and outcome since the plugin started."},
	"reads_waited_on_upstream": {Type: framework.TypeInt, Description: "Reads that had to wait on an upstream call."},
	"last_error":               {Type: framework.TypeString, Description: "The last upstream failure, scrubbed of secrets."},
	"last_error_at":            {Type: framework.TypeString, Description: "When it happened, RFC 3339."},
	"retry_after":              {Type: framework.TypeString, Description: "No upstream attempt before this time, RFC 3339."},
	"limiter":                  {Type: framework.TypeMap, Description: "The host's auth budget: host, max_auth_per_minute, rule, mounts_on_host, this_mount_asked, tokens_left, blocked_until."},
}

func rfc3339(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func (b *backend) statusRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	a, err := b.account(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return logical.ErrorResponse("this mount is not configured: write %sconfig first", req.MountPoint), nil
	}
	now := b.clock.Now()
	a.mu.Lock()
	t, lastRefresh, lastErr, lastErrAt, retryAt := a.tok, a.lastRefresh, a.lastErr, a.lastErrAt, a.retryAt
	a.mu.Unlock()

	session := map[string]any{"state": "none"}
	if t != nil {
		session = map[string]any{"state": "valid", "issued_at": rfc3339(t.IssuedAt), "expires_at": rfc3339(t.ExpiresAt),
			"ttl": int(t.ExpiresAt.Sub(now).Seconds()), "obtained_by": t.ObtainedBy, "last_refresh": rfc3339(lastRefresh)}
		if !a.usable(t) {
			session["state"] = "expired"
		}
	}
	data := map[string]any{"provider": a.cfg.Provider, "url": a.cfg.URL, "session": session,
		"upstream_calls": a.prov.HTTP().Stats().Snapshot(), "reads_waited_on_upstream": a.waits.Load()}
	if lastErr != nil {
		data["last_error"] = lastErr.Error()
		data["last_error_at"] = rfc3339(lastErrAt)
		if retryAt.After(now) {
			data["retry_after"] = rfc3339(retryAt)
		}
	}
	ls := a.prov.HTTP().Limiter().State(now)
	data["limiter"] = map[string]any{"host": a.prov.HTTP().Host(), "max_auth_per_minute": ls.PerMinute, "rule": ls.Rule(),
		"mounts_on_host": ls.Mounts, "this_mount_asked": a.cfg.MaxAuthPerMinute,
		"tokens_left": int(ls.TokensLeft), "blocked_until": rfc3339(ls.BlockedUntil)}
	return &logical.Response{Data: data}, nil
}
