// Command noopplugin is a minimal external secrets plugin built only for the benchmarks. Its
// `token` path returns a static leased secret and does nothing else: reading it measures the
// ceiling for any leased read from an external plugin (gRPC plus lease creation), against
// which `make bench` compares sessiontoken's token read. Its `static` path returns static data
// with no lease: the ceiling for any unleased read from an external plugin (the gRPC hop),
// against which `make bench` compares sessiontoken's lease-free static-token read.
package main

import (
	"context"
	"os"
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
		}},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}
