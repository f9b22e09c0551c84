module github.com/webanksign/caddy-webanksign/deploy

go 1.26.0

// The deploy recipes' checks run the module from this checkout.
replace github.com/webanksign/caddy-webanksign => ../

require github.com/webanksign/caddy-webanksign v0.0.0-00010101000000-000000000000
