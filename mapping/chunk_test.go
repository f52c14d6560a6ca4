package mapping

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// parseWith parses data in one piece, or in chunks as small as possible
// (one entry each), and tells whether the chunked read was used.
func parseWith(data []byte, chunked bool) (m *Mapping, err error, usedChunks bool) {
	b := newBuilder()
	if chunked {
		b.chunkMin, b.chunkSize = 0, 0
	} else {
		b.chunkMin = math.MaxInt
	}
	b.addData("m.yaml", data)
	m, err = b.finish()
	return m, err, b.chunked > 0
}

// sameResult fails the test unless reading in chunks gives what reading in
// one piece gives, and reports whether the chunked read was used.
func sameResult(t *testing.T, data []byte) bool {
	t.Helper()
	whole, werr, used := parseWith(data, false)
	if used {
		t.Fatal("whole read used chunks")
	}
	chunked, cerr, used := parseWith(data, true)
	if !reflect.DeepEqual(werr, cerr) {
		t.Fatalf("problems differ:\nwhole:   %v\nchunked: %v\ninput:\n%s", werr, cerr, data)
	}
	if !reflect.DeepEqual(whole, chunked) {
		t.Fatalf("mappings differ (chunks used: %v):\nwhole:   %+v\nchunked: %+v\ninput:\n%s", used, whole, chunked, data)
	}
	return used
}

func TestPlanChunks(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		size int
		// want is the first line of each chunk, nil if the file cannot be
		// cut.
		want    []int
		indent  int
		entries int
	}{
		{name: "usual", src: "version: 1\nvms:\n  a:\n    ips: [1]\n  b: {}\n  c:\n", want: []int{3, 5, 6}, indent: 2, entries: 3},
		{name: "comments and blanks", src: "# c\nversion: 1\nvms: # the VMs\n\n# c\n    a: {}\n\n  # c\n    b: {}\n", want: []int{4, 9}, indent: 4, entries: 2},
		{name: "bigger chunks", src: "vms:\n a: 1\n b: 2\n c: 3\n d: 4\n", size: 12, want: []int{2, 4}, indent: 1, entries: 4},
		{name: "only safe key starts", src: "vms:\n  a: 1\n  ? b\n  : 2\n  - c\n  \"d\": 3\n  'e': 4\n  [f]: 5\n  {g: 1}: 6\n  &h i: 7\n  *j : 8\n  !k l: 9\n  é: 10\n",
			want: []int{2, 6, 7, 13}, indent: 2, entries: 4},
		{name: "vms not last", src: "vms:\n  a: {}\nversion: 1\n"},
		{name: "vms with a value", src: "version: 1\nvms: {}\n"},
		{name: "vms with an anchor", src: "version: 1\nvms: &x\n  a: {}\n"},
		{name: "vms key not plain", src: "version: 1\n\"vms\":\n  a: {}\n"},
		{name: "nothing after vms", src: "version: 1\nvms:\n"},
		{name: "only comments after vms", src: "version: 1\nvms:\n# nothing\n\n"},
		{name: "carriage returns", src: "version: 1\r\nvms:\r\n  a: {}\r\n"},
		{name: "line separator", src: "version: 1\nvms:\n  a: {x: \"\u2028\"}\n"},
		{name: "next line", src: "version: 1\nvms:\n  a: {}\n  b: {x: \"\u0085\"}\n"},
		{name: "byte order mark", src: "\ufeffversion: 1\nvms:\n  a: {}\n"},
		{name: "directive", src: "%YAML 1.2\n---\nvms:\n  a: {}\n"},
		{name: "tab", src: "vms:\n  a: {}\n\tb: {}\n"},
		{name: "tab indented body", src: "vms:\n \ta: {}\n"},
		{name: "tab at start", src: "vms:\n\ta: {}\n"},
		{name: "empty", src: ""},
		{name: "line too long", src: "version: 1\nvms:\n  a: {ips: [" + strings.Repeat(" ", maxPlanLine) + "]}\n"},
		{name: "no final line break", src: "version: 1\nvms:\n  a: {}\n  b: {}", want: []int{3, 4}, indent: 2, entries: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, ok := planChunks(strings.NewReader(tc.src), int64(len(tc.src)), tc.size)
			if !ok {
				if tc.want != nil {
					t.Fatalf("cannot cut, want chunks at lines %v", tc.want)
				}
				return
			}
			if tc.want == nil {
				t.Fatalf("cut into %+v, want no cutting", plan)
			}
			var lines []int
			end := plan.headerEnd
			for _, c := range plan.chunks {
				lines = append(lines, c.line)
				if c.start != end {
					t.Errorf("chunk at line %d starts at %d, want %d", c.line, c.start, end)
				}
				if got := 1 + strings.Count(tc.src[:c.start], "\n"); got != c.line {
					t.Errorf("chunk starting at offset %d says line %d, is at line %d", c.start, c.line, got)
				}
				end = c.end
			}
			if end != int64(len(tc.src)) {
				t.Errorf("chunks end at %d, want %d", end, len(tc.src))
			}
			if !reflect.DeepEqual(lines, tc.want) || plan.indent != tc.indent || plan.entries != tc.entries {
				t.Errorf("chunks at lines %v, indent %d, %d entries; want %v, %d, %d",
					lines, plan.indent, plan.entries, tc.want, tc.indent, tc.entries)
			}
		})
	}
}

// fleetYAML generates a mapping of n entries in every style the format
// allows.
func fleetYAML(n int) []byte {
	var b strings.Builder
	b.WriteString("# generated\nversion: 1\ndefaults:\n  communities: [\"65001:100\"]\n  med: 10\nvms:\n")
	for i := range n {
		v4 := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		v6 := fmt.Sprintf("2001:db8::%x:%x", i>>16, i&0xffff)
		switch i % 7 {
		case 0:
			fmt.Fprintf(&b, "  vm-%d:\n    ips: [%s, \"%s\"]\n", i, v4, v6)
		case 1:
			fmt.Fprintf(&b, "  vm-%d: {med: %d, ips: [%s, %s]}\n", i, i, v4, v6)
		case 2:
			fmt.Fprintf(&b, "  6695eb01-f6a4-8304-79aa-%012X:\n    local-pref: 5\n    ips:\n    - %s\n    - prefix: %s\n      communities: [no-export]\n", i, v4, v6)
		case 3:
			fmt.Fprintf(&b, "\n  # entry %d\n  \"vm %d\":\n    uuid: 6695eb01-f6a4-8304-79aa-%012x\n    ips:\n      - %s # v4\n\n      - %s\n", i, i, i, v4, v6)
		case 4:
			fmt.Fprintf(&b, "  'vm-%d':\n    next-hop: 192.0.2.1\n    ips:\n      - %s\n      - prefix: %s\n        next-hop: self\n", i, v4, v6)
		case 5:
			fmt.Fprintf(&b, "  vm-%d:\n    next-hop: |-\n      self\n    ips: [%s, %s]\n", i, v4, v6)
		case 6:
			fmt.Fprintf(&b, "  vm-%d:\n    large-communities:\n      - \"1:2:%d\"\n    ips:\n      - \"%s\"\n      - >-\n        %s\n", i, i, v4, v6)
		}
	}
	return []byte(b.String())
}

func TestChunkedMatchesWhole(t *testing.T) {
	data := fleetYAML(700)
	if used := sameResult(t, data); !used {
		t.Error("chunked read not used")
	}
	m, err, _ := parseWith(data, true)
	if err != nil {
		t.Fatal(err)
	}
	if n, r := m.Stats(); n != 700 || r != 1400 {
		t.Errorf("Stats() = %d, %d", n, r)
	}
	// A problem in one entry: the chunked read gives up, and both report
	// the same problems. (Problems found across entries, like a prefix
	// mapped twice, do not make it give up: they are found from the entries
	// read, the same either way.)
	bad := strings.Replace(string(data), "    next-hop: |-\n", "    nexthop: |-\n", 1)
	if used := sameResult(t, []byte(bad)); used {
		t.Error("chunked read used despite problems")
	}
}

// TestChunkedGivesUp checks files that a chunked read must not take as they
// seem: each must be read in one piece, with the same result.
func TestChunkedGivesUp(t *testing.T) {
	for _, src := range []string{
		// A duplicate key in another chunk.
		"version: 1\nvms:\n  a: {ips: [192.0.2.1]}\n  a: {ips: [192.0.2.2]}\n",
		// A flow sequence spanning the cut.
		"version: 1\nvms:\n  a: {ips: [192.0.2.1,\n  b, 192.0.2.2]}\n",
		// A quoted scalar spanning the cut.
		"version: 1\nvms:\n  a: {ips: [\"192.0.2.1\", \"x\n  b: 1\"]}\n",
		// An anchor in one chunk, its alias in another.
		"version: 1\nvms:\n  a: &x {ips: [192.0.2.1]}\n  b: *x\n",
		// A block scalar spanning the cut: not possible, it ends there.
		"version: 1\nvms:\n  a:\n    ips: [192.0.2.1]\n    x: |\n      y\n  b: {ips: [192.0.2.2]}\n",
		// Less indented lines.
		"version: 1\nvms:\n    a: {ips: [192.0.2.1]}\n  b: {ips: [192.0.2.2]}\n",
		// A stray line at the entries' indentation.
		"version: 1\nvms:\n  a: {ips: [192.0.2.1]}\n  b\n  c: {ips: [192.0.2.2]}\n",
		// A problem in the header.
		"version: 2\nvms:\n  a: {ips: [192.0.2.1]}\n",
		// vms in a flow mapping.
		"{version: 1,\nvms:\n  {a: {ips: [192.0.2.1]}}}\n",
		// Two documents, the second before vms.
		"version: 1\n---\nvms:\n  a: {ips: [192.0.2.1]}\n",
	} {
		if sameResult(t, []byte(src)) {
			t.Errorf("chunked read used for\n%s", src)
		}
	}
}

// FuzzChunked checks that reading a file in chunks, with a cut at every
// place an entry may start, gives exactly what reading it in one piece
// gives.
func FuzzChunked(f *testing.F) {
	for _, s := range FuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add(fleetYAML(15))
	f.Fuzz(func(t *testing.T, data []byte) {
		sameResult(t, data)
	})
}

// TestLoadBigFile checks that Load of a file big enough to be read in
// chunks (straight from the file, a piece at a time) gives what Parse of its
// contents gives: the same mapping when the file is
// good, and, when the chunked read gives up late (a key defined twice, far
// apart), the same problems, which Load finds by reading the file again.
func TestLoadBigFile(t *testing.T) {
	var good strings.Builder
	good.WriteString("version: 1\ndefaults:\n  med: 10\nvms:\n")
	n := 0
	for good.Len() < 3*chunkMinFile {
		fmt.Fprintf(&good, "  vm-%d:\n    communities: [\"65001:%d\"]\n    ips:\n      - 10.%d.%d.%d\n      - prefix: 2001:db8::%x\n        med: 5\n",
			n, n%7, n>>16&255, n>>8&255, n&255, n)
		n++
	}
	for _, tc := range []struct {
		name, src   string
		wantChunked bool
	}{
		{"good", good.String(), true},
		{"duplicate key far apart", good.String() + "  vm-1:\n    ips: [192.0.2.1]\n", false},
		{"overlap far apart", good.String() + "  other:\n    ips: [10.0.0.0/24]\n", true}, // found in finish
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m.yaml")
			if err := os.WriteFile(path, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			want, werr := Parse(path, []byte(tc.src))
			got, gerr := Load(path)
			if !reflect.DeepEqual(werr, gerr) {
				t.Fatalf("problems differ:\nParse: %v\nLoad:  %v", werr, gerr)
			}
			if !reflect.DeepEqual(want, got) {
				t.Fatal("Load and Parse give different mappings")
			}
			if werr == nil {
				if vms, _ := got.Stats(); vms != n {
					t.Errorf("%d VMs, want %d", vms, n)
				}
			} else {
				t.Log(strings.SplitN(werr.Error(), "\n", 2)[0])
			}
			for name, add := range map[string]func(b *builder){
				"Load":  func(b *builder) { b.loadFile(path) },
				"Parse": func(b *builder) { b.addData(path, []byte(tc.src)) },
			} {
				b := newBuilder()
				add(b)
				if used := b.chunked > 0; used != tc.wantChunked {
					t.Errorf("%s: chunked read used: %v, want %v", name, used, tc.wantChunked)
				}
			}
		})
	}
}
