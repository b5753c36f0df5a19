package sessiontoken

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
)

// failOn is a storage whose Put or Delete of one key fails.
type failOn struct {
	logical.Storage
	put, del string
}

func (f failOn) Put(ctx context.Context, e *logical.StorageEntry) error {
	if e.Key == f.put {
		return errors.New("storage put failed")
	}
	return f.Storage.Put(ctx, e)
}

func (f failOn) Delete(ctx context.Context, k string) error {
	if k == f.del {
		return errors.New("storage delete failed")
	}
	return f.Storage.Delete(ctx, k)
}

// Issue 33, "a failed config write stores nothing and leaks nothing": when storing the config
// fails after the check's login, nothing is stored and the check's session is logged out; a
// legacy key that cannot be deleted once the new config is stored is logged, and the write
// stands.
func TestAFailedConfigWriteStoresNothingAndLeaksNothing(t *testing.T) {
	f := &fakeLogin{}
	var logouts atomic.Int64
	var loggedOut atomic.Value
	e := newEnvWrapped(t, func(next http.Handler) http.Handler {
		inner := f.wrap(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/logout" {
				logouts.Add(1)
				loggedOut.Store(r.Header.Get("Authorization"))
				w.WriteHeader(http.StatusNoContent)
				return
			}
			inner.ServeHTTP(w, r)
		})
	})
	f.login.Store(answer(200, map[string]any{"token": "opaque-check-token", "expires": e.clock.Now().Add(time.Hour).Unix()}))
	write := func(s logical.Storage) (*logical.Response, error) {
		return e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "config",
			Data: with(genericFake(e), "logout_path", "/logout"), Storage: s, MountPoint: "plextrac/"})
	}

	resp, err := write(failOn{Storage: e.s, put: configKey})
	if err == nil && !resp.IsError() {
		t.Fatal("the write succeeded although its config could not be stored")
	}
	if c, _ := session.ReadConfig(context.Background(), e.s); c != nil {
		t.Fatal("a config was stored")
	}
	if logouts.Load() != 1 || loggedOut.Load() != "Bearer opaque-check-token" {
		t.Fatalf("the check's session was logged out %d times (%v), want once", logouts.Load(), loggedOut.Load())
	}
	if strings.Contains(e.logs.String(), "logout of a failed config write") {
		t.Fatal("a logout that succeeded was logged as failed")
	}

	resp, err = write(failOn{Storage: e.s, del: legacyConfigKey})
	if err != nil || resp.IsError() {
		t.Fatalf("a legacy key that could not be deleted failed the write: %v %v", err, errText(resp))
	}
	if c, _ := session.ReadConfig(context.Background(), e.s); c == nil {
		t.Fatal("the config was not stored")
	}
	if !strings.Contains(e.logs.String(), "could not delete") {
		t.Fatal("the failed delete was not logged")
	}
}
