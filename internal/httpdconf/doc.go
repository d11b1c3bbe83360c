// Package httpdconf reads Apache httpd's configuration files and
// translates the balancer they set up with mod_proxy_balancer into the
// config file of `shoal balancer` (the TOML that internal/balancerconf
// reads). It is what `shoal balancer --from-httpd FILE` runs.
//
// Parse reads the file's syntax as httpd does (directives, quoting,
// continuation lines, nested <Section> blocks) and refuses, with the
// file and line, what httpd could not read either. It follows no
// Include: a translation must not depend on files the user did not name.
//
// Translate takes one balancer (the one the first ProxyPass to a
// balancer:// URL uses) with its BalancerMember lines, ProxySet lines
// and the ProxyPass parameters, and the few server directives that have
// a shoal setting (Listen, Timeout, LimitRequestBody, the TLS
// certificate). It promises:
//
//   - Every directive and parameter of the file is either translated,
//     reported as not translated (with the file, the line and why), or
//     reported as a note (translated, with a difference worth knowing),
//     or is about Apache itself (modules, logs, processes) and listed in
//     one note. Nothing is dropped silently.
//   - A translation with nothing "not translated" is a config file that
//     internal/balancerconf accepts, and that makes shoal's balancer do
//     what Apache's did. Members the balancer cannot proxy to (such as
//     ajp:// before it supports them) are still written, and reported.
package httpdconf
