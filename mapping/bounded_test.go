package mapping

import (
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/fileerr"
)

// TestMessagesAreBounded: a huge value is cut in the message that quotes
// it (a 100 MB scalar made a 100 MB log line and /status), and a byte YAML
// refuses is reported at its own line, not at line 1.
func TestMessagesAreBounded(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	for _, tc := range []struct {
		name, text string
		want       string // the one problem, file:line: ...
	}{
		{"huge IP", "version: 1\nvms:\n  web:\n    ips: [" + huge + "]\n",
			`m.yaml:4: vm "web": invalid IP address "` + strings.Repeat("x", 64) + `... (1048512 more bytes)"`},
		{"huge MED", "version: 1\nvms:\n  web:\n    med: " + huge + "\n    ips: [192.0.2.1]\n",
			`m.yaml:4: vm "web": med: want an integer from 0 to 4294967295, got "` + strings.Repeat("x", 64) + `... (1048512 more bytes)"`},
		{"huge key", "version: 1\nvms:\n  web:\n    ? " + huge + "\n    : 1\n    ips: [192.0.2.1]\n",
			`m.yaml:4: vm "web": unknown key "` + strings.Repeat("x", 64) + `... (1048512 more bytes)"`},
		{"NUL deep in the file", "version: 1\nvms:\n  web:\n    ips: [192.0.2.1]\n  db:\n    ips: [\x00192.0.2.2]\n",
			"m.yaml:6: YAML syntax: "},
		{"bad UTF-8 deep in the file", "version: 1\nvms:\n  web:\n    ips: [192.0.2.1]\n\n  db: \xff\n",
			"m.yaml:6: YAML syntax: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(tc.text))
			list := fileerr.Errors(err)
			if len(list) == 0 {
				t.Fatalf("no error")
			}
			got := list[0].Error()
			if !strings.HasPrefix(got, tc.want) || len(got) > 512 {
				t.Fatalf("problem (%d bytes) %.300q, want one starting %.300q, under 512 bytes", len(got), got, tc.want)
			}
		})
	}
}
