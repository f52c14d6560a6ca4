package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"regexp"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/virtbgp/virtbgp/internal/yamlutil"
	"github.com/virtbgp/virtbgp/mapping"
)

// API defaults and limits.
const (
	// DefaultWriteRate is api.write-rate: write calls per second.
	DefaultWriteRate = 10
	// MinTokenLen is the shortest bearer token accepted, in bytes.
	MinTokenLen = 16
)

// API is the api section: the HTTP API's manual routes and its optional
// TCP listener. The unix control socket always serves the API (to root).
type API struct {
	// Allow is what a manual route may be: allowed-prefixes (none: no
	// manual route is accepted), min-prefix-length (default host routes
	// only), allowed-next-hops.
	Allow mapping.Allow
	// WriteRate is write-rate: the write calls (announce, withdraw, drain,
	// undrain, reload) served per second, with a burst of as many; more
	// are answered 429. Default 10.
	WriteRate int
	// Listen is listen: host:port of the TCP listener; "" (the default)
	// means none. It needs tokens, or tls with a client-ca.
	Listen string
	// Tokens are the bearer tokens of the TCP listener.
	Tokens []Token
	// TLS is tls: the TCP listener's certificate and, with ClientCA,
	// client certificates as authentication.
	TLS TLS
}

// Token is one item of api.tokens. Its secret is read from a file at load
// time and never logged.
type Token struct {
	Name   string // name: who it is, in logs and in the manual routes' creator
	Secret string // from file
	Write  bool   // access: read-write (true) or read-only
}

// String hides the secret.
func (t Token) String() string { return fmt.Sprintf("token %q (write %t)", t.Name, t.Write) }

// TLS is api.tls.
type TLS struct {
	Cert, Key string // cert, key: PEM files
	// ClientCA is client-ca: a PEM file of the CAs whose client
	// certificates are accepted (read-write); "" means none.
	ClientCA string
	// Config is the tls.Config built at load time (nil without cert).
	Config *tls.Config
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// api reads the api section.
func (l *loader) api(k, v *yaml.Node, a *API) {
	const what = "api"
	var tn trustNodes
	var listenNode, tokensNode *yaml.Node
	l.r.Map(v, what, append(l.allowFields(what, &a.Allow, &tn, true),
		yamlutil.Field{Key: "write-rate", Do: func(_, v *yaml.Node) {
			if n, ok := l.r.Uint(v, what+".write-rate", 1, 10000); ok {
				a.WriteRate = int(n)
			}
		}},
		yamlutil.Field{Key: "listen", Do: func(_, v *yaml.Node) {
			listenNode = v
			s, ok := l.r.String(v, what+".listen")
			if !ok {
				return
			}
			if s != "" && !validListen(s) {
				l.r.Errorf(v, `api.listen: want host:port like "127.0.0.1:9480" (port 1..65535), or "" for none, got %s`, yamlutil.Describe(v))
				return
			}
			a.Listen = s
		}},
		yamlutil.Field{Key: "tokens", Do: func(_, v *yaml.Node) {
			tokensNode = v
			l.tokens(v, a)
		}},
		yamlutil.Field{Key: "tls", Do: func(_, v *yaml.Node) { l.apiTLS(v, &a.TLS) }},
	)...)
	l.checkAllow(k, what, false, &a.Allow, &tn)
	switch {
	case a.Listen != "" && len(a.Tokens) == 0 && a.TLS.ClientCA == "":
		l.r.Errorf(listenNode, "api.listen: the TCP listener needs authentication: give api.tokens, or api.tls with a client-ca")
	case a.Listen == "" && (len(a.Tokens) > 0 || a.TLS.Cert != ""):
		at := tokensNode
		if at == nil {
			at = k
		}
		l.r.Errorf(at, "api: tokens and tls are for the TCP listener, and api.listen is not set")
	}
}

// tokens reads api.tokens: [{name, file, access}].
func (l *loader) tokens(v *yaml.Node, a *API) {
	seen := map[string]int{}
	for i, it := range l.r.Seq(v, "api.tokens") {
		what := fmt.Sprintf("api.tokens[%d]", i)
		var tok Token
		var file string
		var fileNode *yaml.Node
		access := ""
		l.r.Map(it, what,
			yamlutil.Field{Key: "name", Do: func(_, v *yaml.Node) {
				if s, ok := l.r.String(v, what+".name"); ok {
					if !tokenName.MatchString(s) {
						l.r.Errorf(v, "%s.name: want letters, digits, '.', '_' or '-' (at most 64), got %s", what, yamlutil.Describe(v))
						return
					}
					if line, dup := seen[s]; dup {
						l.r.Errorf(v, "%s.name: %q is used already (line %d)", what, s, line)
						return
					}
					seen[s] = v.Line
					tok.Name = s
				}
			}},
			yamlutil.Field{Key: "file", Do: func(_, v *yaml.Node) {
				fileNode = v
				file, _ = l.nonEmptyPath(v, what+".file")
			}},
			yamlutil.Field{Key: "access", Do: func(_, v *yaml.Node) {
				s, ok := l.r.String(v, what+".access")
				if !ok {
					return
				}
				if s != "read-only" && s != "read-write" {
					l.r.Errorf(v, "%s.access: want read-only or read-write, got %s", what, yamlutil.Describe(v))
					return
				}
				access = s
			}},
		)
		l.required(it, what, it.Line, "name", "file", "access")
		tok.Write = access == "read-write"
		if file != "" {
			secret, err := l.readPassword(file)
			switch {
			case err != nil:
				l.r.Errorf(fileNode, "%s.file: %v", what, err)
				continue
			case len(secret) < MinTokenLen:
				l.r.Errorf(fileNode, "%s.file: the token is %d bytes, want at least %d", what, len(secret), MinTokenLen)
				continue
			case !printableToken(secret):
				l.r.Errorf(fileNode, "%s.file: the token must be printable ASCII without white space", what)
				continue
			}
			tok.Secret = secret
		}
		if tok.Name != "" && tok.Secret != "" && access != "" {
			a.Tokens = append(a.Tokens, tok)
		}
	}
}

func printableToken(s string) bool {
	for _, c := range s {
		if c > unicode.MaxASCII || !unicode.IsPrint(c) || unicode.IsSpace(c) {
			return false
		}
	}
	return true
}

// apiTLS reads api.tls and loads its files.
func (l *loader) apiTLS(v *yaml.Node, t *TLS) {
	const what = "api.tls"
	var certNode, caNode *yaml.Node
	l.r.Map(v, what,
		yamlutil.Field{Key: "cert", Do: func(_, v *yaml.Node) { certNode = v; t.Cert, _ = l.nonEmptyPath(v, what+".cert") }},
		yamlutil.Field{Key: "key", Do: func(_, v *yaml.Node) { t.Key, _ = l.nonEmptyPath(v, what+".key") }},
		yamlutil.Field{Key: "client-ca", Do: func(_, v *yaml.Node) { caNode = v; t.ClientCA, _ = l.nonEmptyPath(v, what+".client-ca") }},
	)
	l.required(v, what, v.Line, "cert", "key")
	if t.Cert == "" || t.Key == "" {
		return
	}
	pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		l.r.Errorf(certNode, "%s: cannot load the certificate and key: %v", what, err)
		return
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if t.ClientCA != "" {
		pem, err := os.ReadFile(t.ClientCA)
		if err != nil {
			l.r.Errorf(caNode, "%s.client-ca: %v", what, err)
			return
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			l.r.Errorf(caNode, "%s.client-ca: no PEM certificate in %s", what, t.ClientCA)
			return
		}
		cfg.ClientCAs = pool
		// Verified when presented; a client without one may still use a
		// token.
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	t.Config = cfg
}
