// Command caddycmd is Caddy with the standard modules, webank_sign and the
// Redis storage module a fleet deploys (github.com/pberkel/caddy-storage-redis,
// `storage redis`). The fleet tests build it once and run several of it as
// separate processes; for real use, build with xcaddy (see README).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/pberkel/caddy-storage-redis"

	_ "github.com/webanksign/caddy-webanksign"
)

func main() {
	caddycmd.Main()
}
