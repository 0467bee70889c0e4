package config_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/config"
	"github.com/mcpes/mcpes/domain"
	"github.com/mcpes/mcpes/internal/testnpm"
)

// libreChatEnv is the environment LibreChat's schema sees: the ${VAR} references of
// the corpus that a real deployment would set. mcpes does not read the environment
// at load (it expands at connect), so its verdicts do not depend on it.
var libreChatEnv = []string{
	"MCP_PROXY_URL=http://proxy.example.com:3128",
	"MCP_URL=https://mcp.example.com/mcp",
}

// libreChatVerdict is what config/testdata/librechat/verdicts.mjs prints per case.
type libreChatVerdict struct {
	OK      bool   `json:"ok"`
	Error   string `json:"error"`
	Servers map[string]struct {
		Type   string   `json:"type"`
		Fields []string `json:"fields"`
	} `json:"servers"`
}

// TestLibreChatCorpus_SameVerdicts loads every case of config/testdata/librechat with
// LibreChat's own schema (librechat-data-provider, pinned in testdata/npm) and with
// mcpes's loader, and fails on any case where they disagree (accepted vs refused,
// server names, transport, or a field LibreChat uses that mcpes would ignore), unless
// the README's "Deliberate differences" list names the case.
func TestLibreChatCorpus_SameVerdicts(t *testing.T) {
	// given LibreChat's verdict on every case
	env := testnpm.Require(t)
	dir := filepath.Join("testdata", "librechat")
	cmd := exec.Command(env.Node, filepath.Join(dir, "verdicts.mjs"), env.Dir)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, libreChatEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("verdicts.mjs: %v\n%s", err, stderr.String())
	}
	var want map[string]libreChatVerdict
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("verdicts.mjs output: %v", err)
	}
	deliberate := deliberateDifferences(t)

	// when mcpes loads each case
	agree := 0
	for _, file := range slices.Sorted(mapsKeys(want)) {
		lc := want[file]
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, perr := config.Parse(data, file)
		diff := compareVerdict(lc, cfg, perr)
		name := strings.TrimSuffix(file, ".yaml")

		// then both say the same, or the README says why not
		switch {
		case diff == "":
			agree++
			if deliberate[name] {
				t.Errorf("%s: listed as a deliberate difference but mcpes agrees with LibreChat; remove it from the README", name)
			}
		case deliberate[name]:
			t.Logf("%s: deliberate difference: %s", name, diff)
		default:
			t.Errorf("%s: %s", name, diff)
		}
	}
	t.Logf("LibreChat agreement: %d/%d cases (%d deliberate differences listed)", agree, len(want), len(deliberate))
	if len(want) < 80 {
		t.Errorf("corpus has %d cases, want at least 80", len(want))
	}
}

func mapsKeys[M ~map[string]V, V any](m M) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// compareVerdict returns "" when mcpes's result matches LibreChat's, else what differs.
func compareVerdict(lc libreChatVerdict, cfg *config.Config, err error) string {
	switch {
	case lc.OK && err != nil:
		return "LibreChat accepts, mcpes refuses: " + err.Error()
	case !lc.OK && err == nil:
		return "LibreChat refuses (" + lc.Error + "), mcpes accepts"
	case !lc.OK:
		return ""
	}
	var diffs []string
	for name, s := range lc.Servers {
		sc, ok := cfg.MCPServers[name]
		if !ok {
			diffs = append(diffs, "server "+name+" missing in mcpes")
			continue
		}
		wantType := s.Type
		if wantType == domain.TransportHTTP {
			wantType = domain.TransportStreamableHTTP
		}
		if got := sc.TransportType(); got != wantType {
			diffs = append(diffs, name+": transport "+got+", LibreChat "+wantType)
		}
		for _, f := range s.Fields {
			if _, unknown := sc.Extra[f]; unknown {
				diffs = append(diffs, name+": field "+f+" is used by LibreChat but unknown to mcpes")
			}
		}
	}
	for name := range cfg.MCPServers {
		if _, ok := lc.Servers[name]; !ok {
			diffs = append(diffs, "server "+name+" only in mcpes")
		}
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "; ")
}

// deliberateDifferences reads the case names (`case-name`) listed under the README's
// "Deliberate differences" heading, up to the next heading.
func deliberateDifferences(tb testing.TB) map[string]bool {
	tb.Helper()
	root, err := testnpm.ModuleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]bool{}
	_, section, found := strings.Cut(string(readme), "### Deliberate differences")
	if !found {
		return out
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	for _, m := range regexp.MustCompile("corpus case `([a-z0-9-]+)`").FindAllStringSubmatch(section, -1) {
		out[m[1]] = true
	}
	return out
}
