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

// SaveTOTPStep records the last TOTP step p used, after any login attempt that may have sent
// a code, so that another node or a restarted plugin never resends it.
func SaveTOTPStep(ctx context.Context, s logical.Storage, p upstream.Provider) error {
	st := p.TOTP()
	if st == nil || st.LastTOTPStep() == 0 {
		return nil
	}
	return WriteTOTPStep(ctx, s, st.LastTOTPStep())
}
