// Package balancerconf reads the config file of `shoal balancer`
// (--config FILE): every setting its flags have, in TOML, one key per
// flag with the flag's name, and the members as [[member]] tables.
//
// It promises that a file it accepts gives a balancer.Config that passes
// balancer.Config.Check (when the file names members or a cluster), and
// that a file it refuses is refused with errors of type *Error, each
// naming the file, the line and the reason:
//
//	balancer.toml:12: member "n2": url "ftp://x": want http:// URL (http://host:port, optionally with a path) or ajp://host:port
//
// That holds for TOML syntax errors, keys given twice, unknown keys (a
// typo is never ignored: "weigth" is refused, with "did you mean
// weight?"), values of the wrong type, and values the balancer would
// refuse (the balancer's own checks run on each value, so the file and
// the flags accept exactly the same things).
//
// # Why TOML
//
// TOML, not YAML: every value carries its type in its syntax, so the
// surprises of YAML's implicit typing cannot happen (a route named no,
// on or 0755 stays a string, and "08:00" is not a number); indentation
// carries no meaning, so a misplaced space cannot move a member into the
// wrong table; and a flat list of key = value lines with [[member]]
// blocks reads like the flags it mirrors, and like the INI-style files
// that Apache and Tomcat operators already edit.
//
// The library is github.com/pelletier/go-toml/v2 because it gives the
// position of every error it finds (syntax, duplicate keys) and, through
// its parser, of every key, which the checks that come after decoding
// need to point at a line. github.com/BurntSushi/toml gives a line for
// syntax errors only, and no position for an unknown key. The parser is
// go-toml's "unstable" package: it is pinned by go.mod, and the tests
// here cover every position it gives.
//
// # Layout of a file
//
//	listen = "127.0.0.1:8000"
//	method = "bybusyness"
//	retry = "30s"
//	failonstatus = [503]
//
//	[[member]]
//	route = "n1"
//	url = "http://10.0.0.1:8080"
//	weight = 2
//
//	[[member]]
//	route = "n2"
//	url = "http://10.0.0.2:8080"
//	lbset = 1
//
// Durations are strings such as "60s" or "1m30s"; sizes are bytes as an
// integer, or strings such as "32MiB"; lists (failonstatus,
// cluster-join) are arrays. Relative file names (tls-cert, tls-key,
// admin-token-file, cluster-key-file) are relative to the directory of
// the config file, so that the file means the same whatever the
// balancer's working directory. docs/balancer.example.toml lists every
// key.
package balancerconf
