package session

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Rotate replaces the session with a full login, after any refresh in flight: it joins the
// shared upstream call's singleflight, so no reader's refresh runs beside it. It skips the
// failure backoff and the hold (its one attempt counts), not the host's budget or the TOTP
// rules. The login runs under the shared call's own bounded context: readers that joined it
// are not failed by the Rotate request ending. The call reports how its login ended to noted
// (once, whether or not the request is still waiting); a Rotate that joined no call of its own
// sent nothing and notes nothing. It returns the replaced token and the new one.
func (a *Account) Rotate(ctx context.Context, s logical.Storage, noted func(error)) (*upstream.Token, *upstream.Token, error) {
	for range 3 { // a reader's refresh, or an ended rotate's call, may hold the key: wait for it, then try again
		me := new(byte) // not a zero-size value: pointers to those may be equal
		ch := a.sf.DoChan("refresh", func() (any, error) {
			ctx, cancel := a.sharedCallContext(ctx)
			defer cancel()
			r := rotation{by: me, prev: a.Current()}
			t, err := a.login(ctx, s, true)
			if err != nil {
				err = a.noteFailure(err)
				noted(err)
				return r, err
			}
			t.ObtainedBy = ObtainedByRotate // renewals of the replaced token move to it
			r.next = t
			err = a.store(ctx, s, t)
			noted(err)
			return r, err
		})
		select {
		case r := <-ch:
			rot, _ := r.Val.(rotation)
			if rot.by != me {
				continue
			}
			if r.Err != nil {
				return nil, nil, r.Err
			}
			return rot.prev, rot.next, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	return nil, nil, errors.New("readers kept refreshing the session; write rotate again")
}
