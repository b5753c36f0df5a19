package sessiontoken

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Every mount has its own registry: with ServeMultiplex one plugin process serves every mount
// of the plugin, and a process-wide registry would show each mount the others' series. Label
// values come from fixed sets only (call kinds, outcomes, paths, health states): never a
// token, user, URL or error text.

// The label values, each series made at mount setup so that reads only add to a counter they
// already hold, and so that every series exists (at 0) before its first event, which is what
// rate() and increase() in alert rules need.
var (
	upstreamKinds    = []string{upstream.OpLogin, upstream.OpMFA, upstream.OpRefresh, upstream.OpLogout}
	upstreamOutcomes = []string{"ok", string(upstream.KindRejected), string(upstream.KindRateLimited), string(upstream.KindUnavailable),
		string(upstream.KindBadResponse), "error"}
	// Only a login is stopped by the hold, finds the config unable to log in (MFA required
	// and no totp_secret), or finds no room for a new host's record (config checks): these
	// outcomes exist for logins only.
	loginOnlyOutcomes = []string{string(upstream.KindMisconfigured), string(upstream.KindHeld), string(upstream.KindNoRoom)}
	healthStates      = []string{"ok", "degraded", "failing", "held"}
)

// Reads by path and outcome, and renewals by outcome: indexes into mountMetrics' arrays.
const (
	readToken = iota
	readStaticToken
)

const (
	readOK = iota
	readWarned
	readError
)

const (
	renewSameToken = iota
	renewNewToken
	renewRefused
	renewError
)

// Why an auth call was sent: who started it (auth_calls_total's reason label).
type authReason int

const (
	authByReader authReason = iota
	authByRenewal
	authByPeriodic
	authByRotate
	authByConfig
)

var (
	authReasons = [...]string{
		authByReader:   "reader",
		authByRenewal:  "renewal",
		authByPeriodic: "periodic",
		authByRotate:   "rotate",
		authByConfig:   "config",
	}
	readPaths     = [...]string{readToken: "token", readStaticToken: "static-token"}
	readOutcomes  = [...]string{readOK: "ok", readWarned: "served_with_warning", readError: "error"}
	renewOutcomes = [...]string{
		renewSameToken: "same",
		renewNewToken:  "new_token",
		renewRefused:   "refused",
		renewError:     "error",
	}
)

type callKey struct{ kind, outcome string }

// mountMetrics is one mount's registry and counters. The counters live on the mount (the
// backend), not on the upstream client or the account, which a config write replaces.
type mountMetrics struct {
	reg      *prometheus.Registry
	calls    map[callKey]prometheus.Counter // read-only after setup
	callVec  *prometheus.CounterVec
	reads    [len(readPaths)][len(readOutcomes)]prometheus.Counter
	waited   prometheus.Counter
	renewals [len(renewOutcomes)]prometheus.Counter
	auth     [len(authReasons)]prometheus.Counter

	// lastServed is when this node last handled a token or static-token read or a lease
	// renewal (Unix ns; 0: none since the process started). The periodic run keeps the
	// session warm only within keep_warm of it. It is the mount's, not the account's: a
	// config write that keeps the account keeps it warm.
	lastServed atomic.Int64
}

func newMountMetrics() *mountMetrics {
	m := &mountMetrics{reg: prometheus.NewRegistry(), calls: map[callKey]prometheus.Counter{}}
	m.callVec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiontoken_upstream_calls_total",
		Help: "Upstream calls by kind (login, mfa, refresh, logout) and outcome; held: a login the credentials hold stopped before it was sent.",
	},
		[]string{"kind", "outcome"})
	for _, k := range upstreamKinds {
		outcomes := upstreamOutcomes
		if k == upstream.OpLogin {
			outcomes = append(slices.Clone(outcomes), loginOnlyOutcomes...)
		}
		for _, o := range outcomes {
			m.calls[callKey{k, o}] = m.callVec.WithLabelValues(k, o)
		}
	}
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiontoken_reads_total",
		Help: "Reads of token and static-token by outcome: ok, served_with_warning (a valid token while the refresh failed), error.",
	},
		[]string{"path", "outcome"})
	for p, path := range readPaths {
		for o, outcome := range readOutcomes {
			m.reads[p][o] = reads.WithLabelValues(path, outcome)
		}
	}
	m.waited = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sessiontoken_reads_waited_total",
		Help: "Reads and renewals that waited on an upstream call because the shared token had too little life left.",
	})
	renewals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiontoken_renewals_total",
		Help: "Lease renewals by outcome: same (token kept), new_token (handed the session's newer token), refused, error.",
	},
		[]string{"outcome"})
	for o, outcome := range renewOutcomes {
		m.renewals[o] = renewals.WithLabelValues(outcome)
	}
	auth := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sessiontoken_auth_calls_total",
		Help: "Auth calls (logins, MFA steps, refreshes) sent upstream, by who started them: reader, renewal, periodic, rotate, config. A call that others join counts once.",
	},
		[]string{"reason"})
	for r, reason := range authReasons {
		m.auth[r] = auth.WithLabelValues(reason)
	}
	m.reg.MustRegister(m.callVec, reads, m.waited, renewals, auth)
	return m
}

// ObserveUpstream is upstream.Deps.Observe: it counts one upstream call.
func (m *mountMetrics) ObserveUpstream(kind, outcome string) {
	c, ok := m.calls[callKey{kind, outcome}]
	if !ok { // not in the fixed sets (a new Kind, or a kind/outcome pair not expected): counted under error, never a new label value
		c, ok = m.calls[callKey{kind, "error"}]
	}
	if ok {
		c.Inc()
	}
}

type authReasonKey struct{}

// startedBy marks ctx as a request that may start an upstream call for reason. A shared call
// runs under the context of the request that started it (sharedCallContext keeps its values),
// so its calls are credited to that request, however many others join it.
func startedBy(ctx context.Context, reason authReason) context.Context {
	return context.WithValue(ctx, authReasonKey{}, reason)
}

// AuthSent is upstream.Deps.AuthSent: it counts one auth call under the reason of the request
// that started it. Every path that can start one marks its context; a call from an unmarked
// one is not counted (a test checks that the reasons add up to the upstream's count).
func (m *mountMetrics) AuthSent(ctx context.Context) {
	if r, ok := ctx.Value(authReasonKey{}).(authReason); ok {
		m.auth[r].Inc()
	}
}

// served records a token or static-token read or a lease renewal at now, failed ones included.
func (m *mountMetrics) served(now time.Time) { m.lastServed.Store(now.UnixNano()) }

// servedAt is when this node last served a read or renewal (zero: not since it started).
func (m *mountMetrics) servedAt() time.Time {
	if ns := m.lastServed.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Waited counts a read or renewal that waited on an upstream call.
func (m *mountMetrics) Waited() { m.waited.Inc() }

// upstreamCalls is status's upstream_calls: kind -> outcome -> count, the ones above zero.
func (m *mountMetrics) upstreamCalls() map[string]map[string]int {
	out := map[string]map[string]int{}
	for k, c := range m.calls {
		if n := int(counterValue(c)); n > 0 {
			if out[k.kind] == nil {
				out[k.kind] = map[string]int{}
			}
			out[k.kind][k.outcome] = n
		}
	}
	return out
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if c.Write(&d) != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}

// readDone counts a read of path (readToken, readStaticToken) that served a token, with a
// warning when its refresh failed.
func (m *mountMetrics) readDone(path int, warned bool) {
	if warned {
		m.reads[path][readWarned].Inc()
		return
	}
	m.reads[path][readOK].Inc()
}

// readFailed counts a read of path that served no token, except one refused as read-only:
// Vault forwards it to the active node, which counts it.
func (m *mountMetrics) readFailed(path int, err error) {
	if errors.Is(err, logical.ErrReadOnly) {
		return
	}
	m.reads[path][readError].Inc()
}
