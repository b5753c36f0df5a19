package sessiontoken

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

const pathMetricsHelpSyn = `This mount's metrics, as JSON or in the Prometheus text format.`

const pathMetricsHelpDesc = `
This mount's series only, with labels from fixed sets (never a token, user, URL or error
text): upstream calls by kind and outcome, reads by path and outcome, reads that waited on
the upstream, renewals by outcome (counters, kept across config writes, since the plugin
started); and, as of the read, the session's expiry and when it was obtained (Unix time), the
health state, the credentials hold, the failure backoff's end and the host's auth budget.
format=prometheus answers in the Prometheus text exposition format (text/plain;
version=0.0.4), for a Prometheus scrape job, as sys/metrics does; the default is JSON: series,
a list of {name, type, labels, value}.
`

// promFormat is the text exposition format, which Prometheus expects as
// "text/plain; version=0.0.4; charset=utf-8".
var promFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

func (b *backend) pathMetrics() *framework.Path {
	return &framework.Path{
		Pattern: "metrics",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "sessiontoken",
			OperationSuffix: "metrics",
		},
		Fields: map[string]*framework.FieldSchema{
			"format": {
				Type:          framework.TypeString,
				Query:         true,
				AllowedValues: []any{"json", "prometheus"},
				Description:   "json (the default) or prometheus (the text exposition format, served raw with its content type).",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.metricsRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK (JSON; format=prometheus answers text/plain)",
					Fields:      metricsFields,
				}}},
			},
		},
		HelpSynopsis:    pathMetricsHelpSyn,
		HelpDescription: strings.TrimSpace(pathMetricsHelpDesc),
	}
}

var metricsFields = map[string]*framework.FieldSchema{
	"series": {
		Type:        framework.TypeSlice,
		Description: "Every series of this mount: name, type (counter or gauge), labels (an object) and value.",
	},
}

func (b *backend) metricsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	format := d.Get("format").(string)
	switch format {
	case "", "json", "prometheus":
	default:
		return logical.ErrorResponse("format: %q is not json or prometheus; leave it out for JSON, or write format=prometheus for the Prometheus text format", format), nil
	}
	// Loads the account if this node has not yet, so that a scrape right after a restart
	// shows the stored session and hold. No config: only the counters and configured 0.
	if _, err := b.slot.Account(ctx, req.Storage); err != nil {
		return nil, err
	}
	families, err := b.metrics.reg.Gather()
	if err != nil {
		return nil, err
	}
	if format == "prometheus" {
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, promFormat)
		for _, f := range families {
			if err := enc.Encode(f); err != nil {
				return nil, err
			}
		}
		// []byte, not string: Vault base64-decodes a string raw body when it can.
		return &logical.Response{Data: map[string]any{
			logical.HTTPContentType: string(promFormat),
			logical.HTTPStatusCode:  http.StatusOK,
			logical.HTTPRawBody:     buf.Bytes(),
		}}, nil
	}
	return &logical.Response{Data: map[string]any{"series": seriesJSON(families)}}, nil
}

// seriesJSON flattens the gathered families into the JSON form's series list, in the
// registry's order (by name, then labels).
func seriesJSON(families []*dto.MetricFamily) []any {
	var out []any
	for _, f := range families {
		typ := strings.ToLower(f.GetType().String())
		for _, m := range f.GetMetric() {
			labels := map[string]any{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := m.GetGauge().GetValue()
			if f.GetType() == dto.MetricType_COUNTER {
				v = m.GetCounter().GetValue()
			}
			out = append(out, map[string]any{
				"name":   f.GetName(),
				"type":   typ,
				"labels": labels,
				"value":  v,
			})
		}
	}
	return out
}

// stateCollector makes the gauges that mirror the mount's state when Prometheus scrapes,
// from the account it has then: a config write never leaves a stale gauge behind.
type stateCollector struct{ b *backend }

// registerStateGauges adds the mount's state gauges to its registry, beside the counters.
func (b *backend) registerStateGauges() { b.metrics.reg.MustRegister(stateCollector{b}) }

var (
	descConfigured   = prometheus.NewDesc("sessiontoken_configured", "1 when the mount has a config, else 0 (and no other gauge).", nil, nil)
	descExpiry       = prometheus.NewDesc("sessiontoken_session_expiry_timestamp_seconds", "When the shared session's token expires, Unix time; 0 when there is none.", nil, nil)
	descObtained     = prometheus.NewDesc("sessiontoken_session_obtained_timestamp_seconds", "When the mount obtained the shared session's token, Unix time; 0 when there is none.", nil, nil)
	descHealth       = prometheus.NewDesc("sessiontoken_health", "1 for the mount's health state (ok, degraded, failing, held), 0 for the others; as status shows it.", []string{"state"}, nil)
	descHeld         = prometheus.NewDesc("sessiontoken_credentials_held", "1 while the mount holds its credentials (no login until config gets credentials or rotate is written).", nil, nil)
	descRefused      = prometheus.NewDesc("sessiontoken_credentials_refused_in_a_row", "Logins upstream refused in a row; the mount holds at max_refused_logins.", nil, nil)
	descBackoffEnd   = prometheus.NewDesc("sessiontoken_failure_backoff_end_timestamp_seconds", "No upstream attempt before this Unix time after failures; 0 when there is no backoff.", nil, nil)
	descBudget       = prometheus.NewDesc("sessiontoken_host_auth_budget_per_minute", "The upstream host's auth budget in this plugin process: the smallest max_auth_per_minute of its mounts.", nil, nil)
	descTokensLeft   = prometheus.NewDesc("sessiontoken_host_auth_tokens_left", "Auth calls the upstream host's budget allows right now.", nil, nil)
	descBlockedUntil = prometheus.NewDesc("sessiontoken_host_auth_blocked_until_timestamp_seconds", "No auth call to the host before this Unix time (a 429 from upstream); 0 when not blocked.", nil, nil)
	descKeptWarm     = prometheus.NewDesc("sessiontoken_session_kept_warm", "1 while the periodic run refreshes the session ahead of expiry (a read or renewal on this node within keep_warm), else 0: a session not kept warm lapses by design.", nil, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConfigured, descExpiry, descObtained, descHealth, descHeld, descRefused, descBackoffEnd, descBudget, descTokensLeft, descBlockedUntil, descKeptWarm} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	a, _ := c.b.slot.Loaded()
	if a == nil {
		gauge(descConfigured, 0)
		return
	}
	gauge(descConfigured, 1)
	now := c.b.clock.Now()
	st := a.Snapshot()
	var expiry, obtained float64
	if st.Token != nil {
		expiry, obtained = unixOrZero(st.Token.ExpiresAt), unixOrZero(st.Token.ObtainedAt)
	}
	gauge(descExpiry, expiry)
	gauge(descObtained, obtained)
	health, _, _ := health(st, a.Usable(st.Token))
	for _, s := range healthStates {
		gauge(descHealth, boolFloat(s == health), s)
	}
	gauge(descHeld, boolFloat(st.Hold.Held))
	gauge(descRefused, float64(st.Hold.Refused))
	gauge(descBackoffEnd, unixIfAfter(st.RetryAt, now))
	ls := a.Provider().Limiter().State(now)
	gauge(descBudget, float64(ls.PerMinute))
	gauge(descTokensLeft, max(ls.TokensLeft, 0))
	gauge(descBlockedUntil, unixIfAfter(ls.BlockedUntil, now))
	gauge(descKeptWarm, boolFloat(c.b.keepsWarm(a, st.Token, now)))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixOrZero(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMilli()) / 1000
}

// unixIfAfter is t as Unix time while it is still ahead of now, else 0: a backoff or block
// that has ended is none.
func unixIfAfter(t, now time.Time) float64 {
	if !t.After(now) {
		return 0
	}
	return unixOrZero(t)
}
