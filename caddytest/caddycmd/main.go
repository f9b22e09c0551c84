// Command caddycmd is Caddy with the standard modules, webank_sign and the
// Redis storage test fixture. The fleet tests build it once and run several
// of it as separate processes; for real use, build with ./xcaddy.build.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/webanksign/caddy-webanksign"
	_ "github.com/webanksign/caddy-webanksign/caddytest/redisstorage"
)

func main() {
	caddycmd.Main()
}
