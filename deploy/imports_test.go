package deploy

// The Caddy modules the recipes' Caddyfiles use, for adapting and running
// them in-process.
import (
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/pberkel/caddy-storage-redis"

	_ "github.com/webanksign/caddy-webanksign"
)
