package sessiontoken

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// benchEnv is a configured mount with a warm session, plus a no-op path on the same framework
// backend: the floor of any read through the framework.
func benchEnv(b *testing.B) *env {
	e := newEnv(b)
	e.b.Backend.Paths = append(e.b.Backend.Paths, &framework.Path{
		Pattern: "noop",
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				return &logical.Response{Data: map[string]any{"ok": true}}, nil
			}},
		},
	})
	e.write("config", e.plextracConfig(false))
	if resp, err := e.do(logical.ReadOperation, "token", nil); err != nil || resp.IsError() {
		b.Fatal(err, errText(resp))
	}
	return e
}

func benchRead(b *testing.B, path string) {
	e := benchEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := e.b.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: path, Storage: e.s})
		if err != nil || resp == nil || resp.IsError() {
			b.Fatal(err)
		}
	}
}

// BenchmarkWarmTokenRead: a token read served from the shared session, through HandleRequest.
func BenchmarkWarmTokenRead(b *testing.B) { benchRead(b, "token") }

// BenchmarkNoopRead: the same framework backend answering a path that does nothing.
func BenchmarkNoopRead(b *testing.B) { benchRead(b, "noop") }
