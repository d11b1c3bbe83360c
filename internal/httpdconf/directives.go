package httpdconf

import "strings"

// apacheOnly are the directives about Apache itself (its processes,
// modules, logs, files), which have nothing to translate: the balancer's
// own flags cover its process and logs. Translate lists them in one note.
var apacheOnly = setOf(
	"ServerRoot", "ServerName", "ServerAlias", "ServerAdmin", "ServerTokens", "ServerSignature",
	"User", "Group", "PidFile", "DefaultRuntimeDir", "Mutex", "ScoreBoardFile", "CoreDumpDirectory",
	"ErrorLog", "ErrorLogFormat", "LogLevel", "LogFormat", "CustomLog", "TransferLog", "BufferedLogs",
	"LoadModule", "LoadFile", "StartServers", "MinSpareThreads", "MaxSpareThreads", "ThreadLimit",
	"ThreadsPerChild", "MaxRequestWorkers", "MaxConnectionsPerChild", "ServerLimit", "MaxClients",
	"MinSpareServers", "MaxSpareServers", "MaxRequestsPerChild", "ThreadStackSize", "AsyncRequestWorkerFactor",
	"GracefulShutdownTimeout", "ListenBacklog", "KeepAlive", "MaxKeepAliveRequests", "KeepAliveTimeout",
	"HostnameLookups", "AccessFileName", "DocumentRoot", "DirectoryIndex", "AddDefaultCharset",
	"EnableSendfile", "EnableMMAP", "TraceEnable", "UseCanonicalName", "TypesConfig", "AddType",
	"AddEncoding", "AddLanguage", "AddCharset", "DefaultType", "Options", "AllowOverride", "AllowOverrideList",
	"IncludesNOEXEC", "SSLRandomSeed", "SSLSessionCache", "SSLSessionCacheTimeout", "SSLStaplingCache",
	"SSLPassPhraseDialog", "SSLMutex", "ServerSignature", "FileETag", "UnDefine",
)

// notTranslatedWhy says why a directive shoal has no equivalent for is
// not translated, by name or by name prefix (a key ending in '*').
var notTranslatedWhy = map[string]string{
	"Rewrite*":                     "shoal's balancer does not rewrite URLs: do it in the application, or keep a proxy in front for it",
	"Header":                       "shoal's balancer does not edit response headers: set them in the application",
	"RequestHeader":                "shoal's balancer does not edit request headers (it sets X-Forwarded-For, -Host and -Proto itself)",
	"Alias*":                       "shoal's balancer serves no files: it sends every request to a member",
	"ScriptAlias*":                 "shoal's balancer runs no scripts: it sends every request to a member",
	"Redirect*":                    "shoal's balancer sends no redirects of its own: answer them in the application",
	"Require":                      "shoal's balancer does no access control: do it in the application, or in a proxy in front",
	"Order":                        "shoal's balancer does no access control: do it in the application, or in a proxy in front",
	"Allow":                        "shoal's balancer does no access control: do it in the application, or in a proxy in front",
	"Deny":                         "shoal's balancer does no access control: do it in the application, or in a proxy in front",
	"Satisfy":                      "shoal's balancer does no access control: do it in the application, or in a proxy in front",
	"Auth*":                        "shoal's balancer does no authentication: do it in the application, or in a proxy in front",
	"SSLVerifyClient":              "shoal's balancer does not ask clients for certificates",
	"SSLCACertificate*":            "shoal's balancer does not ask clients for certificates",
	"SSLCertificateChainFile":      "shoal reads the chain from tls-cert's file: append the chain to the certificate file",
	"SSLProxy*":                    "this shoal version talks plain HTTP to members",
	"ErrorDocument":                "shoal's balancer has no error pages of its own to replace",
	"ProxyPassMatch":               "shoal's balancer sends every path to the members; it does not route by regular expression",
	"ProxyRemote":                  "shoal's balancer does not chain to another proxy",
	"ProxyRemoteMatch":             "shoal's balancer does not chain to another proxy",
	"ProxyBlock":                   "shoal's balancer is not a forward proxy",
	"ProxyDomain":                  "shoal's balancer is not a forward proxy",
	"ProxySourceAddress":           "shoal's balancer connects to members from the address the system picks",
	"ProxyHCExpr":                  "shoal's health checks pass on 200 (503: alive, not ready); they have no expressions",
	"ProxyHCTemplate":              "shoal's health checks are set once for all members (health-path and the health-* keys)",
	"ProxyPassReverseCookiePath":   "shoal's balancer does not rewrite cookies: members see the client's paths, so there is nothing to rewrite when the paths match",
	"ProxyPassReverseCookieDomain": "shoal's balancer does not rewrite cookies: members see the client's Host, so their cookies already name its domain",
	"ProxyErrorOverride":           "shoal's balancer passes the members' error pages on as they are",
	"ProxyFCGI*":                   "shoal's balancer talks HTTP to members, not FastCGI",
	"ProxyHTML*":                   "shoal's balancer does not rewrite HTML",
	"ProxyExpress*":                "shoal's balancer does not map hosts to backends from a database",
	"SetEnv*":                      "shoal's balancer has no environment variables for requests",
	"BrowserMatch*":                "shoal's balancer has no environment variables for requests",
	"SetOutputFilter":              "shoal's balancer has no filters (compression, substitution): do it in the application",
	"SetInputFilter":               "shoal's balancer has no filters: do it in the application",
	"AddOutputFilter*":             "shoal's balancer has no filters (compression, substitution): do it in the application",
	"Deflate*":                     "shoal's balancer does not compress responses: do it in the application",
	"Expires*":                     "shoal's balancer does not edit response headers: set them in the application",
	"LimitRequestFields":           "shoal's balancer has its own fixed limits on request heads",
	"LimitRequestFieldSize":        "shoal's balancer has its own fixed limits on request heads",
	"LimitRequestLine":             "shoal's balancer has its own fixed limits on request heads",
	"RemoteIP*":                    "this shoal version replaces X-Forwarded-For with the client's address: it trusts no proxy in front yet",
	"Protocols":                    "shoal's balancer speaks HTTP/1.1 and HTTP/2 (h2 over TLS, h2c in clear) without a setting",
	"H2*":                          "shoal's balancer speaks HTTP/2 without settings",
}

// noteWhy says what shoal does instead of a directive that needs no
// translation, by name or name prefix.
var noteWhy = map[string]string{
	"ProxyVia":                "not translated: shoal's balancer adds no Via header",
	"ProxyIOBufferSize":       "not needed: shoal's balancer sizes its buffers itself",
	"ProxyReceiveBufferSize":  "not needed: shoal's balancer sizes its buffers itself",
	"ProxyMaxForwards":        "not translated: shoal's balancer does not touch Max-Forwards",
	"ProxyBadHeader":          "shoal's balancer refuses a member's malformed response header (Apache's IsError, the default)",
	"ProxyStatus":             "not needed: shoal's manager (admin-listen) always shows the members' state",
	"ProxyPassInherit":        "not needed: shoal's config has no virtual hosts to inherit from",
	"ProxyPassInterpolateEnv": "not needed: shoal's config has no environment variables to interpolate",
	"BalancerInherit":         "not needed: shoal's config has no virtual hosts to inherit from",
	"BalancerPersist":         "not needed: shoal keeps members changed in its manager until the balancer restarts; edit the config file and reload (SIGHUP) to keep a change",
	"BalancerGrowth":          "not needed: shoal adds members when its config file is reloaded (SIGHUP)",
	"ProxyHCTPsize":           "not needed: shoal checks members from its own goroutines",
	"SSLProtocol":             "shoal's TLS is Go's: TLS 1.2 and 1.3",
	"SSLCipherSuite":          "shoal's TLS uses Go's cipher suites, which cannot be chosen",
	"SSLHonorCipherOrder":     "shoal's TLS uses Go's cipher suites, which cannot be chosen",
	"SSLCompression":          "shoal's TLS never compresses",
	"SSLSessionTickets":       "shoal's TLS uses Go's session tickets",
	"SSLUseStapling":          "shoal's TLS staples no OCSP response",
	"SSLOptions":              "not translated: shoal passes no TLS variables to members",
}

// lookupWhy finds name in a table keyed by names and name prefixes
// ("Rewrite*"), ignoring case.
func lookupWhy(table map[string]string, name string) (string, bool) {
	for k, why := range table {
		if prefix, ok := strings.CutSuffix(k, "*"); ok {
			if len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
				return why, true
			}
		} else if strings.EqualFold(k, name) {
			return why, true
		}
	}
	return "", false
}

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = true
	}
	return m
}
