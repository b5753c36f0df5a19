package session

import (
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// The plugin's time rules, each written once with its reason. Help text and docs quote them;
// TestDocsQuoteTheTimeRules (docs_test.go) fails when a quote disagrees with a constant here.

const (
	// LeaseMargin: a lease ends this long before its token expires, so that no holder keeps an
	// expired token while its lease says valid, even with some clock difference to the upstream.
	// (upstream.ClockSkew: the clients' MinServableLife is built on it.)
	LeaseMargin = upstream.ClockSkew

	// LifeShare: reads move to a newer token, and lease renewals hand one out, in the last
	// 1/LifeShare of a token's life (its last third). One share for both, so that a lease
	// holder and a reader switch alike; the read's min_ttl is capped at it, so short-lived
	// tokens are still served for two thirds of their life.
	LifeShare     = 3
	LifeShareWord = "third" // how help text and docs say 1/lifeShare

	// PeriodicSlack: Vault calls the periodic function about once a minute, so it refreshes a
	// session this much earlier than readers would need: readers almost never wait upstream.
	PeriodicSlack = 75 * time.Second

	// After a failed upstream attempt (a refresh, a login, a config's check, rotate), no new one
	// for FirstFailureBackoff, doubling to maxFailureBackoff: a broken upstream or a wrong
	// password never causes a retry storm, nor spends the host's shared budget.
	FirstFailureBackoff = 10 * time.Second
	MaxFailureBackoff   = 5 * time.Minute

	// totpStep is one TOTP step: the longest an MFA login waits for the next one.
	totpStep = 30 * time.Second
)

// LeaseEnd is when a lease on a token that expires at expiresAt must end.
func LeaseEnd(expiresAt time.Time) time.Time { return expiresAt.Add(-LeaseMargin) }

// servable says whether t can still be served at now: a lease on it would last a second or more.
func servable(t *upstream.Token, now time.Time) bool {
	return t != nil && now.Before(LeaseEnd(t.ExpiresAt).Add(-time.Second))
}

// ReadFloor is the least life a read wants left on the token it is served: want (min_ttl),
// capped at the token's last share of life, and never less than a servable lease.
func ReadFloor(t *upstream.Token, want time.Duration) time.Duration {
	return max(min(want, t.Lifetime()/LifeShare), LeaseMargin+time.Second)
}

// InLastShare says whether a token that expires at expiresAt after lifetime is in its last
// share of life at now: a lease renewal then hands out the session's newer token.
func InLastShare(expiresAt time.Time, lifetime time.Duration, now time.Time) bool {
	return !now.Before(expiresAt.Add(-lifetime / LifeShare))
}

// lookAhead is how long before t expires the periodic run refreshes it: readers' floor plus
// the slack, but never in the first half of its life (with tokens shorter than the look-ahead
// every run would refresh) and never later than its last share.
func lookAhead(t *upstream.Token, floor time.Duration) time.Duration {
	return min(max(floor+PeriodicSlack, t.Lifetime()/LifeShare), t.Lifetime()/2)
}

// FailureBackoff is the wait after the given number of failures in a row (1 or more).
func FailureBackoff(failures int) time.Duration {
	return min(FirstFailureBackoff<<min(failures-1, 10), MaxFailureBackoff)
}
