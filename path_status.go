package sessiontoken

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

const pathStatusHelpSyn = `Show the upstream session's state, without secrets.`

const pathStatusHelpDesc = `
provider and url; the shared session (state, issued_at, expires_at, how and when it was last
obtained); the last upstream error and when to retry; counts of upstream calls by kind
(login, mfa, refresh, logout) and outcome since the plugin started (kept across config writes);
the host's auth budget (the smallest max_auth_per_minute of the mounts on that
host in this plugin process), the rule that set it, and the host's state summed over those
mounts (calls left, a 429 block); whether the periodic run keeps the session warm (keep_warm)
and until when; and how many reads had to wait on the upstream. Never a token or credential.
`

func (b *backend) pathStatus() *framework.Path {
	return &framework.Path{
		Pattern: "status",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "sessiontoken",
			OperationSuffix: "status",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.statusRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields:      statusFields,
				}}},
			},
		},
		HelpSynopsis:    pathStatusHelpSyn,
		HelpDescription: strings.TrimSpace(pathStatusHelpDesc),
	}
}

var statusFields = map[string]*framework.FieldSchema{
	"provider": {Type: framework.TypeString, Description: "The upstream provider."},
	"url":      {Type: framework.TypeString, Description: "The upstream base URL."},
	"session": {
		Type:        framework.TypeMap,
		Description: "The shared session: state (none, valid, expired), issued_at, expires_at, ttl, obtained_by, last_refresh.",
	},
	"upstream_calls": {
		Type:        framework.TypeMap,
		Description: "Upstream calls by kind (login, mfa, refresh, logout) and outcome since the plugin started.",
	},
	"reads_waited_on_upstream": {
		Type:        framework.TypeInt,
		Description: "Reads that had to wait on an upstream call.",
	},
	"last_error": {
		Type:        framework.TypeString,
		Description: "The last upstream failure, in the plugin's words (see docs/security.md).",
	},
	"last_error_at": {Type: framework.TypeString, Description: "When it happened, RFC 3339."},
	"retry_after": {
		Type:        framework.TypeString,
		Description: "No upstream attempt before this time, RFC 3339.",
	},
	"health": {
		Type:        framework.TypeString,
		Description: "ok, degraded (serving a valid token while refreshes fail), failing (no token that can be served) or held (credentials refused, no more attempts); held wins over failing, failing over degraded.",
	},
	"reason": {Type: framework.TypeString, Description: "Why, in one line."},
	"action": {Type: framework.TypeString, Description: "What an operator should do."},
	"credentials_hold": {
		Type:        framework.TypeMap,
		Description: "held, refused_in_a_row, max_refused_logins, since, last_refused_at.",
	},
	"limiter": {
		Type:        framework.TypeMap,
		Description: "The host's auth budget: host, max_auth_per_minute, rule, mounts_on_host, this_mount_asked, tokens_left, blocked_until.",
	},
	"keep_warm": {
		Type:        framework.TypeMap,
		Description: "Whether the periodic run keeps the session warm (refreshes it ahead of expiry): kept_warm, until, last_served (the last token or static-token read or lease renewal this node handled), reason.",
	},
}

func rfc3339(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func (b *backend) statusRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	a, err := b.slot.Account(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return logical.ErrorResponse("this mount is not configured: write %sconfig first", req.MountPoint), nil
	}
	now := b.clock.Now()
	st := a.Snapshot()
	t := st.Token
	session := map[string]any{"state": "none"}
	if t != nil {
		session = map[string]any{
			"state":        "valid",
			"issued_at":    rfc3339(t.IssuedAt),
			"expires_at":   rfc3339(t.ExpiresAt),
			"ttl":          int(t.ExpiresAt.Sub(now).Seconds()),
			"obtained_by":  t.ObtainedBy,
			"last_refresh": rfc3339(st.LastRefresh),
		}
		if !a.Usable(t) {
			session["state"] = "expired"
		}
	}
	health, reason, action := health(st, a.Usable(t))
	data := map[string]any{
		"provider":                 a.Config().Provider,
		"url":                      a.Config().URL,
		"session":                  session,
		"health":                   health,
		"reason":                   reason,
		"action":                   action,
		"upstream_calls":           b.metrics.upstreamCalls(),
		"reads_waited_on_upstream": int64(counterValue(b.metrics.waited)),
	}
	if st.LastErr != nil {
		data["last_error"] = st.LastErr.Error()
		data["last_error_at"] = rfc3339(st.LastErrAt)
		if st.RetryAt.After(now) {
			data["retry_after"] = rfc3339(st.RetryAt)
		}
	}
	data["credentials_hold"] = map[string]any{
		"held":               st.Hold.Held,
		"refused_in_a_row":   st.Hold.Refused,
		"max_refused_logins": a.Config().RefusalsBeforeHold(),
		"since":              rfc3339(st.Hold.Since),
		"last_refused_at":    rfc3339(st.Hold.At),
	}
	ls := a.Provider().Limiter().State(now)
	data["limiter"] = map[string]any{
		"host":                a.Provider().Host(),
		"max_auth_per_minute": ls.PerMinute,
		"rule":                ls.Rule(),
		"mounts_on_host":      ls.Mounts,
		"this_mount_asked":    a.Config().MaxAuthPerMinute,
		"tokens_left":         int(ls.TokensLeft),
		"blocked_until":       rfc3339(ls.BlockedUntil),
	}
	data["keep_warm"] = b.warmth(a, t, now)
	return &logical.Response{Data: data}, nil
}

// warmth is status's keep_warm: whether the periodic run keeps the session t warm, until
// when, and why.
func (b *backend) warmth(a *session.Account, t *upstream.Token, now time.Time) map[string]any {
	out := map[string]any{
		"kept_warm":   false,
		"until":       nil,
		"last_served": rfc3339(b.metrics.servedAt()),
	}
	switch {
	case !b.WriteSafeReplicationState():
		out["reason"] = "this node does not run the periodic refresh (a standby or performance secondary): the active node decides, from the requests it handles"
	case t == nil:
		out["reason"] = "no session: the first read logs in"
	case a.Config().KeepWarm(t) == 0:
		out["reason"] = "keep_warm is 0: the session is never refreshed ahead; a read that needs a newer token refreshes it"
	case b.keepsWarm(a, t, now):
		out["kept_warm"], out["until"] = true, rfc3339(b.metrics.servedAt().Add(a.Config().KeepWarm(t)))
		out["reason"] = fmt.Sprintf("read within keep_warm (%s): the periodic run refreshes the session ahead of expiry until then", a.Config().KeepWarm(t))
	default:
		out["reason"] = fmt.Sprintf("no token or static-token read or lease renewal on this node within keep_warm (%s): the session lapses, and the next reader refreshes it or logs in", a.Config().KeepWarm(t))
	}
	return out
}

// health says how the mount is doing, for status and metrics: held wins over failing, which
// wins over degraded. A mount that has never been read (no session, no error) is ok: nothing
// has failed, and its first read logs in.
func health(st session.State, usable bool) (health, reason, action string) {
	switch {
	case st.Hold.Held:
		why := fmt.Sprintf("upstream refused the stored credentials %d times in a row, the last at %s", st.Hold.Refused, rfc3339(st.Hold.At))
		if st.Hold.Misconfigured {
			why = "the config cannot log in: " + st.Hold.Reason
		}
		return "held", why + "; the plugin stopped logging in to protect the account",
			"fix the account or config, then write the credentials to config, or write rotate"
	case !usable && st.LastErr != nil && st.Failures > 0:
		return "failing", "no token can be served: the last attempt failed", "see last_error; readers get errors until the upstream answers"
	case usable && st.Failures > 0:
		return "degraded", fmt.Sprintf("serving a valid token (it expires at %s) while refreshes fail", rfc3339(st.Token.ExpiresAt)),
			"see last_error before the token expires"
	case st.Token == nil:
		return "ok", "no session yet: the first read logs in", "none"
	case !usable:
		return "ok", "the token expired while nothing read the mount: the next read logs in", "none"
	}
	return "ok", fmt.Sprintf("serving a token that expires at %s", rfc3339(st.Token.ExpiresAt)), "none"
}
