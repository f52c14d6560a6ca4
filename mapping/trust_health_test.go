package mapping_test

import (
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/mapping"
)

// TestHealthTrust: what the element may declare of health checks, and the
// reason a route is refused for each rule.
func TestHealthTrust(t *testing.T) {
	ops := &mapping.Health{Checks: []mapping.Check{{Name: "exec", Kind: mapping.CheckExec, Command: []string{"/bin/true"}, Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1}}}
	for _, tc := range []struct {
		name  string
		trust mapping.HealthTrust
		xml   string
		opts  *mapping.MetadataOptions
		want  []string // the refusals; the other routes are accepted
	}{
		{"agent, tcp and http on the entry's own IP", mapping.HealthTrust{},
			`<vm><health><check type="agent"/><check type="tcp" address="{ip}:22"/><check type="http" url="https://{ip}:8443/h?q={ip}"/></health>` +
				`<ip prefix="192.0.2.1"/><ip prefix="2001:db8::1"/></vm>`, nil, nil},
		{"no checks", mapping.HealthTrust{}, `<vm><ip prefix="192.0.2.1"/></vm>`, nil, nil},
		{"exec is refused", mapping.HealthTrust{},
			`<vm><ip prefix="192.0.2.1"><health><check type="exec" command="/bin/rm -rf /"/></health></ip><ip prefix="192.0.2.2"/></vm>`, nil,
			[]string{`192.0.2.1/32 refused: health check "exec": exec checks are not allowed from metadata (they would run a command on the hypervisor)`}},
		{"exec is refused even if listed", mapping.HealthTrust{Types: []mapping.CheckKind{mapping.CheckExec}},
			`<vm><health><check type="exec" command="/bin/true"/></health><ip prefix="192.0.2.1"/></vm>`, nil,
			[]string{`192.0.2.1/32 refused: health check "exec": exec checks are not allowed from metadata (they would run a command on the hypervisor)`}},
		{"maintenance file", mapping.HealthTrust{},
			`<vm><health><check type="agent" maintenance="/etc/shadow"/></health><ip prefix="192.0.2.1"/></vm>`, nil,
			[]string{`192.0.2.1/32 refused: health check "agent": maintenance files are not allowed from metadata (a path on the hypervisor)`}},
		{"tcp to another address", mapping.HealthTrust{},
			`<vm><health><check type="tcp" address="169.254.169.254:80"/></health><ip prefix="192.0.2.1"/></vm>`, nil,
			[]string{`192.0.2.1/32 refused: health check "tcp": address "169.254.169.254:80": the host must be {ip} (the IP the check guards)`}},
		{"http to another host", mapping.HealthTrust{},
			`<vm><health><check type="http" url="http://10.0.0.1/?{ip}"/></health><ip prefix="192.0.2.1"/></vm>`, nil,
			[]string{`192.0.2.1/32 refused: health check "http": url "http://10.0.0.1/": the host must be {ip} (the IP the check guards)`}},
		{"http with {ip} only in the path", mapping.HealthTrust{},
			`<vm><health><check type="http" url="http://192.0.2.9/{ip}"/></health><ip prefix="192.0.2.1"/></vm>`, nil,
			[]string{`192.0.2.1/32 refused: health check "http": url "http://192.0.2.9/{ip}": the host must be {ip} (the IP the check guards)`}},
		{"a type the operator does not allow", mapping.HealthTrust{Types: []mapping.CheckKind{mapping.CheckAgent}},
			`<vm><ip prefix="192.0.2.1"><health><check type="tcp" address="{ip}:22"/></health></ip><ip prefix="192.0.2.2"><health><check type="agent"/></health></ip></vm>`, nil,
			[]string{`192.0.2.1/32 refused: health check "tcp": type tcp is not allowed from metadata (the operator allows agent)`}},
		{"interval below the default minimum", mapping.HealthTrust{},
			`<vm><health><check type="agent" interval="500ms"/></health><ip prefix="192.0.2.1"/></vm>`, nil,
			[]string{`192.0.2.1/32 refused: health check "agent": interval 500ms is shorter than the 1s this source may use`}},
		{"interval the operator allows", mapping.HealthTrust{MinInterval: 200 * time.Millisecond},
			`<vm><health><check type="agent" interval="500ms"/></health><ip prefix="192.0.2.1"/></vm>`, nil, nil},
		{"the probe budget, in prefix order", mapping.HealthTrust{MaxChecks: 3},
			`<vm><health><check type="agent"/><check type="tcp" address="{ip}:1"/></health><ip prefix="192.0.2.3"/><ip prefix="192.0.2.1"/>` +
				`<ip prefix="192.0.2.2"><health><check type="agent"/></health></ip><ip prefix="192.0.2.4"/></vm>`, nil,
			[]string{
				`192.0.2.3/32 refused: its health checks would exceed the 3 probes this source may run per domain (each check counts once for each IP it guards)`,
				`192.0.2.4/32 refused: its health checks would exceed the 3 probes this source may run per domain (each check counts once for each IP it guards)`,
			}},
		{"the default budget", mapping.HealthTrust{},
			`<vm><health><check type="agent"/><check type="tcp" address="{ip}:1"/><check type="tcp" name="b" address="{ip}:2"/></health>` +
				`<ip prefix="192.0.2.1"/><ip prefix="192.0.2.2"/><ip prefix="192.0.2.3"/></vm>`, nil,
			[]string{`192.0.2.3/32 refused: its health checks would exceed the 8 probes this source may run per domain (each check counts once for each IP it guards)`}},
		{"the operator's defaults are trusted", mapping.HealthTrust{Defaults: ops, MaxChecks: 1},
			`<vm><ip prefix="192.0.2.1"/><ip prefix="192.0.2.2"/><ip prefix="192.0.2.3"><health><check type="agent"/></health></ip></vm>`,
			&mapping.MetadataOptions{Health: ops}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.opts.Parse("web-01", []byte(tc.xml))
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.trust.Validate(); err != nil && !strings.Contains(tc.name, "even if listed") {
				t.Fatal(err)
			}
			accepted, refused := tc.trust.Filter("web-01", m.Routes, m.Health)
			var got []string
			for _, r := range refused {
				if r.Domain != "web-01" {
					t.Errorf("refusal of domain %q", r.Domain)
				}
				got = append(got, r.Prefix.String()+" refused: "+r.Reason)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("refused:\n got %q\nwant %q", got, tc.want)
			}
			if len(accepted)+len(refused) != len(m.Routes) {
				t.Errorf("%d accepted and %d refused of %d routes", len(accepted), len(refused), len(m.Routes))
			}
			for _, r := range accepted {
				for _, x := range refused {
					if r.Prefix == x.Prefix {
						t.Errorf("%s accepted and refused", r.Prefix)
					}
				}
			}
		})
	}
}

// TestHealthTrustValidate: the operator cannot allow exec from metadata,
// nor set bounds out of range.
func TestHealthTrustValidate(t *testing.T) {
	for _, tc := range []struct {
		t    mapping.HealthTrust
		want string
	}{
		{mapping.HealthTrust{}, ""},
		{mapping.HealthTrust{Types: []mapping.CheckKind{mapping.CheckAgent, mapping.CheckHTTP}, MinInterval: time.Second, MaxChecks: 64}, ""},
		{mapping.HealthTrust{Types: []mapping.CheckKind{mapping.CheckExec}}, "exec checks cannot be allowed from metadata"},
		{mapping.HealthTrust{Types: []mapping.CheckKind{"ping"}}, `want agent, tcp or http, got "ping"`},
		{mapping.HealthTrust{MinInterval: time.Millisecond}, "min-interval: want a duration from 100ms to 1h, got 1ms"},
		{mapping.HealthTrust{MaxChecks: 65}, "max-checks: want 1 to 64, got 65"},
	} {
		err := tc.t.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.t, err, tc.want)
		}
	}
}
