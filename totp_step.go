package sessiontoken

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

// newProvider builds cfg's provider, told which TOTP step was used last by any node.
func (b *backend) newProvider(ctx context.Context, s logical.Storage, cfg *config) (upstream.Provider, error) {
	p, err := upstream.New(cfg.upstreamConfig(), upstream.Deps{Clock: b.clock, Limiters: b.limiters,
		Observe: b.metrics.observeUpstream, AuthSent: b.metrics.authSent, DialCheck: b.dialCheck})
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

// saveTOTPStep records the last TOTP step p used, after any login attempt that may have sent
// a code, so that another node or a restarted plugin never resends it.
func saveTOTPStep(ctx context.Context, s logical.Storage, p upstream.Provider) error {
	st, ok := p.(upstream.TOTPStepper)
	if !ok || st.LastTOTPStep() == 0 {
		return nil
	}
	return writeTOTPStep(ctx, s, st.LastTOTPStep())
}
