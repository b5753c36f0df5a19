package upstream

import "time"

// Bounds on every input the plugin takes from a config writer or an upstream, defined once
// here and used by the backend's field table and by the clients. The plugin process serves
// every mount of every team: an input that could make it allocate without bound would take
// all of them down. Vault accepts request bodies up to its listener's max_request_size
// (32 MiB) and hands them to the plugin; these bounds are on what the plugin keeps and derives.
const (
	MaxURLLen        = 2048     // url
	MaxNameLen       = 256      // username, email: the account's name
	MaxSecretLen     = 1024     // password, api_key
	MaxTOTPSecretLen = 128      // a base32 seed (160-bit seeds are 32 characters)
	MaxCACertLen     = 64 << 10 // ca_cert: a few PEM certificates
	MaxSettingLen    = 256      // short generic settings: methods, paths, field names, auth_scheme
	MaxLoginBodyLen  = 4096     // login_body: the template's size (the rendered body is capped at 64 KiB)

	MaxHeaders        = 16   // headers: how many
	MaxHeaderNameLen  = 64   // headers: each name
	MaxHeaderValueLen = 8192 // headers: each value (a Cloudflare Access JWT is 1-3 KiB)

	MaxTokenLen      = 16 << 10 // an upstream token; a longer one is a bad response
	MaxExtras        = 8        // non-secret extras kept from an answer (tenant_id, org_id)
	MaxExtraValueLen = 256      // each extra's value

	// MaxIdleRecords: the host budgets, and apart from them the TOTP accounts, that the
	// process keeps with no mount registered on them (config checks against other hosts or
	// accounts, a 429 blocking a host for up to 10 minutes). Past it, a call that needs a
	// new one is not sent (Limiters).
	MaxIdleRecords = 1024
)

// DefaultRequestTimeout bounds every upstream call when request_timeout is not set.
const DefaultRequestTimeout = 10 * time.Second
