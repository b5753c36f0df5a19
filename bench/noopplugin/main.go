// Command noopplugin is a minimal external secrets plugin built only for the benchmarks; its
// paths do nothing but answer with static data:
//   - `token`: a leased secret. The ceiling for any leased read from an external plugin (gRPC
//     plus lease creation), against which `make bench` compares sessiontoken's token read.
//   - `static`: one field, no lease. The ceiling for any unleased read from an external plugin
//     (the gRPC hop).
//   - `static-sized`: no lease, an answer of the shape and size of sessiontoken's static-token
//     answer (a 283-character JWT twice, times, provider, tenant, ttl, rotation fields). The
//     ceiling for an unleased read of that answer (gRPC hop and encoding), against which
//     `make bench` compares sessiontoken's lease-free static-token read.
package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		os.Exit(1)
	}
	if err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	}); err != nil {
		os.Exit(1)
	}
}

// jwtSized is as long as the simulator's PlexTrac JWTs (283 characters).
var jwtSized = strings.Repeat("x", 283)

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	secret := &framework.Secret{
		Type: "noop",
		Renew: func(_ context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
			return &logical.Response{Secret: req.Secret}, nil
		},
		Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
			return nil, nil
		},
	}
	b := &framework.Backend{
		BackendType: logical.TypeLogical,
		Secrets:     []*framework.Secret{secret},
		Paths: []*framework.Path{{
			Pattern: "token",
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
					resp := secret.Response(map[string]any{"token": "static-benchmark-value"}, nil)
					resp.Secret.TTL = 15 * time.Minute
					return resp, nil
				}},
			},
		}, {
			Pattern: "static",
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
					return &logical.Response{Data: map[string]any{"token": "static-benchmark-value"}}, nil
				}},
			},
		}, {
			Pattern: "static-sized",
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
					return &logical.Response{Data: map[string]any{
						"token":               jwtSized,
						"authorization":       jwtSized,
						"provider":            "plextrac",
						"tenant_id":           7,
						"expires_at":          "2026-11-23T12:15:00Z",
						"issued_at":           "2026-11-23T12:00:00Z",
						"ttl":                 600,
						"rotation_period":     600,
						"last_vault_rotation": "2026-11-23T12:00:00.123456789Z",
					}}, nil
				}},
			},
		}},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}
