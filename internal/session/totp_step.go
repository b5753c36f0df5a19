package session

import (
	"context"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// The account's upstream provider, and the records it shares with every other mount of the
// plugin process (upstream.Limiters): the host's login budget, and the TOTP step the account
// used last. The step is also kept in the mount's storage (totp_step/v2, storage.go), since a
// restart, a reload or a failover starts a process with no memory of it: upstream refuses a
// code it already took, and refused codes count towards locking the account out.

// NewProvider builds cfg's provider, told which TOTP step was used last by any node.
func (b *Slot) NewProvider(ctx context.Context, s logical.Storage, cfg *Config) (upstream.Provider, error) {
	p, err := upstream.New(cfg.upstreamConfig(), upstream.Deps{Clock: b.Clock, Limiters: b.Limiters,
		Observe: b.Counters.ObserveUpstream, AuthSent: b.Counters.AuthSent, DialCheck: b.DialCheck})
	if err != nil {
		return nil, err
	}
	if st, ok := p.(upstream.TOTPStepper); ok && cfg.TOTPSecret != "" {
		step, err := readTOTPStep(ctx, s)
		if err != nil {
			return nil, err
		}
		if step > 0 { // no step stored: leave the process's record (if any) as it is
			st.SkipTOTPStepsThrough(step)
		}
	}
	return p, nil
}

// SaveTOTPStep records the last TOTP step p used, after any login attempt that may have sent
// a code, so that another node or a restarted plugin never resends it.
func SaveTOTPStep(ctx context.Context, s logical.Storage, p upstream.Provider) error {
	st, ok := p.(upstream.TOTPStepper)
	if !ok || st.LastTOTPStep() == 0 {
		return nil
	}
	return WriteTOTPStep(ctx, s, st.LastTOTPStep())
}
