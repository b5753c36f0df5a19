package sessiontoken

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// sharedRead is the mount's shared token as a read serves it, with the least life it was read
// with (readFloor) and the refresh error, if the token is served in spite of one.
type sharedRead struct {
	a          *account
	tok        *upstream.Token
	floor      time.Duration
	refreshErr error
}

func (r sharedRead) warn(resp *logical.Response) {
	if r.refreshErr != nil {
		resp.AddWarning("serving the current token until it expires: " + r.refreshErr.Error())
	}
}

// readShared is what token and static-token share: the mount's token with at least min_ttl
// left, refreshed first when it has less. When it returns no token, the response and error
// are the request's answer. (A value, not a pointer: reads are hot.)
func (b *backend) readShared(ctx context.Context, req *logical.Request, d *framework.FieldData) (sharedRead, *logical.Response, error) {
	b.noteServed()
	a, err := b.account(ctx, req.Storage)
	if err != nil {
		return sharedRead{}, nil, err
	}
	if a == nil {
		return sharedRead{}, logical.ErrorResponse("this mount is not configured: write %sconfig first", req.MountPoint), nil
	}
	want := a.cfg.minTTL()
	if v, ok := d.GetOk("min_ttl"); ok {
		if want = time.Duration(v.(int)) * time.Second; want < 0 {
			return sharedRead{}, logical.ErrorResponse("min_ttl: must not be negative"), nil
		}
	}
	t, err := a.get(startedBy(ctx, authByReader), req.Storage, func(t *upstream.Token) bool {
		return t.ExpiresAt.Sub(b.clock.Now()) >= readFloor(t, want)
	})
	if t == nil {
		resp, err := upstreamFailure(err)
		return sharedRead{}, resp, err
	}
	return sharedRead{a: a, tok: t, floor: readFloor(t, want), refreshErr: err}, nil, nil
}
